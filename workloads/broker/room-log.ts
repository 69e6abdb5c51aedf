// The state machine of a broker partition's replicated log: every replica
// applies the same committed batches of room messages in the same order, so
// every replica holds the same rooms. Per room it keeps the head (the last
// room_seq, which never restarts) and the floor (the oldest room_seq still
// kept); per message an index key from (room, room_seq) to where the message
// sits in the log, so history is read from the log itself (messages are
// stored once). Retention moves floors: a room over its message count on
// each apply, the whole partition by age and bytes through compaction of the
// log prefix (compactionPoint), after which the snapshot of heads and floors
// stands for what was dropped.
import { Counter, Gauge } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, Long, type RoomDelivery } from '../protocol/index.js';
import type { Entry } from '../replication/raft.js';
import type { LogStateMachine } from '../replication/replicated-log.js';
import type { KvStore, KvWrite } from '../store/kv-store.js';

/** Every durable room reports this sequencer_id: its numbering has one incarnation, for life. */
export const DURABLE_SEQUENCER_ID = 1;
/** The most messages one history page returns. */
export const MAX_HISTORY_PAGE = 1000;

export interface Retention {
  /** Messages kept per room (the newest). */
  messagesPerRoom: number;
  /** Messages older than this are removed (log compaction), in seconds; 0: no age limit. */
  maxAgeSeconds: number;
  /** The log of a partition is compacted to stay under this many bytes. */
  bytesPerPartition: number;
}

export const DEFAULT_RETENTION: Retention = { messagesPerRoom: 10_000, maxAgeSeconds: 7 * 24 * 3600, bytesPerPartition: 256 * 1024 * 1024 };

export interface RoomPosition { head: number; floor: number }

/** Where a message sits: the log entry and its place in the entry's batch. */
interface Located { index: number; slot: number }

export interface HistoryPage {
  /** False when retention removed some of what was asked for. */
  complete: boolean;
  deliveries: RoomDelivery[];
  head: number;
  first: number;
}

const compactedEntries = new Counter({ name: 'groupchat_log_compacted_entries_total', help: 'Room log entries removed by retention', registers: [metrics] });
const retainedBytes = new Gauge({ name: 'groupchat_log_bytes', help: 'Bytes of room messages in the partition log', registers: [metrics] });
const trimmedMessages = new Counter({ name: 'groupchat_room_messages_trimmed_total', help: 'Room messages dropped from history by the per-room limit', registers: [metrics] });

const BATCH_FIELD_TAG = (1 << 3) | 2;

/** A log entry's data from RoomDelivery encodings, without re-encoding them (RoomLogBatch.messages). */
export function encodeBatch(encoded: readonly Uint8Array[], appendedAtMs: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const message of encoded) parts.push(Uint8Array.of(BATCH_FIELD_TAG, ...varint(message.length)), message);
  // appended_at_ms (field 2, varint): the leader's clock, for retention by age.
  parts.push(Uint8Array.of(2 << 3, ...varint(appendedAtMs)));
  return Buffer.concat(parts);
}

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

export function decodeBatch(data: Uint8Array): { messages: RoomDelivery[]; appendedAtMs: number } {
  const batch = peer.RoomLogBatch.decode(data);
  return { messages: batch.messages as unknown as RoomDelivery[], appendedAtMs: Long.fromValue(batch.appendedAtMs ?? 0).toNumber() };
}

function indexKey(roomId: number, seq: number): Buffer {
  const key = Buffer.alloc(14);
  key.write('r/', 0);
  key.writeUInt32BE(roomId, 2);
  key.writeBigUInt64BE(BigInt(seq), 6);
  return key;
}

const ROOM_INDEX_START = Buffer.from('r/');
const ROOM_INDEX_END = Buffer.from('r0');
const HEAD_START = Buffer.from('h/');
const HEAD_END = Buffer.from('h0');

/** A room's head and floor on disk: "h/" + room (4 bytes) → head (8) + floor (8). */
function headWrite(roomId: number, p: RoomPosition): KvWrite {
  const key = Buffer.alloc(6);
  key.write('h/', 0);
  key.writeUInt32BE(roomId, 2);
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(BigInt(p.head), 0);
  value.writeBigUInt64BE(BigInt(p.floor), 8);
  return { key, value };
}

export class RoomLog implements LogStateMachine {
  private readonly rooms = new Map<number, RoomPosition>();
  /** Bytes per applied entry still in the log, oldest first, for retention by bytes and age. */
  private readonly sizes: Array<{ index: number; bytes: number; at: number }> = [];
  private bytes = 0;

  constructor(private readonly kv: KvStore, private retention: Retention) {}

  /** Loads heads and floors persisted by earlier applies (the log replays the rest). */
  async load(): Promise<void> {
    for (const row of await this.kv.range(HEAD_START, HEAD_END, Number.MAX_SAFE_INTEGER)) {
      this.rooms.set(row.key.readUInt32BE(2), { head: Number(row.value.readBigUInt64BE(0)), floor: Number(row.value.readBigUInt64BE(8)) });
    }
  }

  /** Counts entries applied before a restart toward retention by bytes and age (they are not applied again). */
  account(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.data.length === 0) continue;
      this.sizes.push({ index: entry.index, bytes: entry.data.length, at: decodeBatch(entry.data).appendedAtMs });
      this.bytes += entry.data.length;
    }
    retainedBytes.set(this.bytes);
  }

  setRetention(retention: Retention): void {
    this.retention = retention;
  }

  position(roomId: number): RoomPosition {
    return this.rooms.get(roomId) ?? { head: 0, floor: 1 };
  }

  // --- LogStateMachine ------------------------------------------------------

  apply(entries: Entry[]): KvWrite[] {
    const writes: KvWrite[] = [];
    const touched = new Set<number>();
    for (const entry of entries) {
      if (entry.data.length === 0) continue; // a leader's no-op
      const { messages, appendedAtMs } = decodeBatch(entry.data);
      messages.forEach((m, slot) => {
        const seq = Long.fromValue(m.roomSeq).toNumber();
        const room = this.rooms.get(m.roomId) ?? { head: 0, floor: 1 };
        if (seq <= room.head) return; // applied before (a replay after restart): idempotent
        room.head = seq;
        this.rooms.set(m.roomId, room);
        touched.add(m.roomId);
        const at = Buffer.alloc(10);
        at.writeBigUInt64BE(BigInt(entry.index));
        at.writeUInt16BE(slot, 8);
        writes.push({ key: indexKey(m.roomId, seq), value: at });
        // The per-room limit: the oldest message of a full room leaves its history.
        while (room.head - room.floor + 1 > this.retention.messagesPerRoom) {
          writes.push({ key: indexKey(m.roomId, room.floor), delete: true });
          room.floor++;
          trimmedMessages.inc();
        }
      });
      this.sizes.push({ index: entry.index, bytes: entry.data.length, at: appendedAtMs });
      this.bytes += entry.data.length;
    }
    retainedBytes.set(this.bytes);
    for (const roomId of touched) writes.push(headWrite(roomId, this.rooms.get(roomId)!));
    return writes;
  }

  snapshot(): Uint8Array {
    const heads = [...this.rooms].map(([roomId, p]) => ({ roomId, headSeq: p.head, firstSeq: p.floor }));
    return peer.RoomLogSnapshot.encode({ heads }).finish();
  }

  restore(data: Uint8Array): KvWrite[] {
    this.rooms.clear();
    this.sizes.length = 0;
    this.bytes = 0;
    // Everything before the snapshot is gone from the leader's log too: no room keeps history from before it.
    for (const h of peer.RoomLogSnapshot.decode(data).heads) {
      const head = Long.fromValue(h.headSeq ?? 0).toNumber();
      this.rooms.set(h.roomId ?? 0, { head, floor: head + 1 });
    }
    return [
      { key: ROOM_INDEX_START, rangeEnd: ROOM_INDEX_END, delete: true },
      { key: HEAD_START, rangeEnd: HEAD_END, delete: true },
      ...[...this.rooms].map(([roomId, p]) => headWrite(roomId, p)),
    ];
  }

  // --- retention by age and bytes ---------------------------------------------

  /**
   * The last log index retention lets go of (0: none), and the writes that
   * drop its messages' index keys: entries older than the age limit, and the
   * oldest entries while the log is over its byte budget.
   */
  compactionPoint(nowMs: number, entryAt: (index: number) => Entry | undefined): { index: number; writes: KvWrite[] } {
    const oldest = this.retention.maxAgeSeconds > 0 ? nowMs - this.retention.maxAgeSeconds * 1000 : -Infinity;
    let bytes = this.bytes;
    let cut = 0;
    while (cut < this.sizes.length && (this.sizes[cut]!.at < oldest || bytes > this.retention.bytesPerPartition)) {
      bytes -= this.sizes[cut]!.bytes;
      cut++;
    }
    if (cut === 0) return { index: 0, writes: [] };
    const last = this.sizes[cut - 1]!.index;
    const floors = new Map<number, number>();
    for (const { index } of this.sizes.splice(0, cut)) {
      const entry = entryAt(index);
      if (!entry) continue;
      for (const m of decodeBatch(entry.data).messages) {
        const seq = Long.fromValue(m.roomSeq).toNumber();
        floors.set(m.roomId, Math.max(floors.get(m.roomId) ?? 0, seq + 1));
      }
      compactedEntries.inc();
    }
    const writes: KvWrite[] = [];
    for (const [roomId, floor] of floors) {
      const room = this.rooms.get(roomId);
      if (!room || floor <= room.floor) continue;
      // One range deletion per room: the index keys of every message the compacted entries held.
      writes.push({ key: indexKey(roomId, room.floor), rangeEnd: indexKey(roomId, floor), delete: true });
      room.floor = floor;
      writes.push(headWrite(roomId, room));
    }
    this.bytes = bytes;
    retainedBytes.set(this.bytes);
    return { index: last, writes };
  }

  // --- reads ----------------------------------------------------------------

  /**
   * A page of a room's history. Forward (before 0): the messages after
   * `after`, oldest first. Backward (before > 0): the newest before `before`.
   */
  async page(roomId: number, after: number, before: number, limit: number, read: (index: number) => Promise<Entry | null>): Promise<HistoryPage> {
    const { head, floor } = this.position(roomId);
    const count = Math.max(1, Math.min(limit || MAX_HISTORY_PAGE, MAX_HISTORY_PAGE));
    let from: number;
    let to: number;
    if (before > 0) {
      to = Math.min(before - 1, head);
      from = Math.max(1, to - count + 1);
    } else {
      from = after + 1;
      to = Math.min(head, after + count);
    }
    const complete = from >= floor || to < from;
    const rows = to < Math.max(from, floor) ? [] : await this.kv.range(indexKey(roomId, Math.max(from, floor)), indexKey(roomId, to + 1), to - Math.max(from, floor) + 1);
    const deliveries: RoomDelivery[] = [];
    let entryIndex = -1;
    let messages: RoomDelivery[] = [];
    for (const row of rows) {
      const at: Located = { index: Number(row.value.readBigUInt64BE(0)), slot: row.value.readUInt16BE(8) };
      if (entryIndex !== at.index) {
        const raw = await read(at.index);
        if (!raw) return { complete: false, deliveries, head, first: floor }; // compacted while we read
        entryIndex = at.index;
        messages = decodeBatch(raw.data).messages;
      }
      const message = messages[at.slot];
      if (message) deliveries.push(message);
    }
    return { complete, deliveries, head, first: Math.max(floor, 1) };
  }
}
