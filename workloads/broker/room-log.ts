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

/**
 * head: the room's newest room_seq; floor: its oldest one still kept; base:
 * in a partition that took the room over in a doubling, its head then (what
 * is at or below it is kept by the partition it came from).
 */
export interface RoomPosition { head: number; floor: number; base: number }

/** A doubling's move of rooms: those r with r % partitions === partition. */
export interface Inheritance { partition: number; partitions: number }

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

type DecodedBatch = { messages: RoomDelivery[]; appendedAtMs: number };

/**
 * The entries decoded last, by their data: what the room log applied is
 * read again soon after (by the sequencer of a new leader, by the history
 * pages of members resuming, by compaction) and decoded once. Bounded by the
 * messages it holds, not by entries: a decoded message costs about 400 bytes
 * of heap, and at full batches 512 entries would hold 260,000 of them on
 * every replica.
 */
const recentlyDecoded = new Map<Uint8Array, DecodedBatch>();
const RECENTLY_DECODED_MESSAGES = 4096;
let recentlyDecodedMessages = 0;

export function decodeBatch(data: Uint8Array): DecodedBatch {
  let decoded = recentlyDecoded.get(data);
  if (decoded) return decoded;
  const batch = peer.RoomLogBatch.decode(data);
  decoded = { messages: batch.messages as unknown as RoomDelivery[], appendedAtMs: Long.fromValue(batch.appendedAtMs ?? 0).toNumber() };
  recentlyDecoded.set(data, decoded);
  recentlyDecodedMessages += decoded.messages.length;
  for (const [oldest, { messages }] of recentlyDecoded) {
    if (recentlyDecodedMessages <= RECENTLY_DECODED_MESSAGES || oldest === data) break;
    recentlyDecoded.delete(oldest);
    recentlyDecodedMessages -= messages.length;
  }
  return decoded;
}

/** A control entry of a partition doubling (see peer.proto RoomLogBatch). */
export type DoublingStep =
  | { inherit: Inheritance }
  | { handOff: Inheritance }
  | { adopt: { from: number; heads: Array<{ roomId: number; headSeq: number; firstSeq: number }>; recent: RoomDelivery[] } };

export function encodeDoublingStep(step: DoublingStep): Uint8Array {
  return peer.RoomLogBatch.encode(step).finish();
}

/** Whether a log entry is a doubling's control entry rather than messages (their batches never start with field 3, 4 or 5). */
export function isDoublingStep(data: Uint8Array): boolean {
  const field = data.length > 0 ? data[0]! >>> 3 : 0;
  return field >= 3 && field <= 5;
}

const SLASH = 0x2f;

/** A position (below 2^53) as 8 big-endian bytes, without a BigInt per call (applied for every message). */
function writePosition(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

function indexKey(roomId: number, seq: number): Buffer {
  const key = Buffer.allocUnsafe(14);
  key[0] = 0x72; // 'r'
  key[1] = SLASH;
  key.writeUInt32BE(roomId, 2);
  writePosition(key, seq, 6);
  return key;
}

const ROOM_INDEX_START = Buffer.from('r/');
const ROOM_INDEX_END = Buffer.from('r0');
const HEAD_START = Buffer.from('h/');
const HEAD_END = Buffer.from('h0');

/** A room's position on disk: "h/" + room (4 bytes) → head (8) + floor (8) + base (8). */
function headWrite(roomId: number, p: RoomPosition): KvWrite {
  const key = Buffer.allocUnsafe(6);
  key[0] = 0x68; // 'h'
  key[1] = SLASH;
  key.writeUInt32BE(roomId, 2);
  const value = Buffer.allocUnsafe(24);
  writePosition(value, p.head, 0);
  writePosition(value, p.floor, 8);
  writePosition(value, p.base, 16);
  return { key, value };
}

const DOUBLING_KEY = Buffer.from('doubling');

export class RoomLog implements LogStateMachine {
  private readonly rooms = new Map<number, RoomPosition>();
  /** Doubling state: whom this partition inherits rooms from, whether it adopted them, whom it handed rooms to. */
  private inherit: Inheritance | null = null;
  private adopted = false;
  private handedOff: Inheritance[] = [];
  /** Bytes per applied entry still in the log, oldest first, for retention by bytes and age. */
  private readonly sizes: Array<{ index: number; bytes: number; at: number }> = [];
  private bytes = 0;

  constructor(private readonly kv: KvStore, private retention: Retention) {}

  /** Loads heads and floors persisted by earlier applies (the log replays the rest). */
  async load(): Promise<void> {
    for (const row of await this.kv.range(HEAD_START, HEAD_END, Number.MAX_SAFE_INTEGER)) {
      this.rooms.set(row.key.readUInt32BE(2), {
        head: Number(row.value.readBigUInt64BE(0)), floor: Number(row.value.readBigUInt64BE(8)),
        base: row.value.length >= 24 ? Number(row.value.readBigUInt64BE(16)) : 0,
      });
    }
    const doubling = await this.kv.get(DOUBLING_KEY);
    if (doubling) this.setDoubling(peer.RoomLogSnapshot.decode(doubling));
  }

  /** Rooms of this partition that a doubling gave to another: they are read here, never numbered. */
  movedAway(roomId: number): boolean {
    return this.handedOff.some((h) => roomId % h.partitions === h.partition);
  }

  /** Whether this partition's log holds the hand-off of move's rooms. */
  handedOffTo(move: Inheritance): boolean {
    return this.handedOff.some((h) => h.partition === move.partition && h.partitions === move.partitions);
  }

  /** The partition this one inherits rooms from, while it has not adopted them yet (it numbers nothing until then). */
  pendingInheritance(): Inheritance | null {
    return this.inherit && !this.adopted ? this.inherit : null;
  }

  inheritance(): Inheritance | null {
    return this.inherit;
  }

  /** Positions of the rooms a doubling moves to another partition, for its adoption. */
  headsFor(move: Inheritance): Array<{ roomId: number; headSeq: number; firstSeq: number }> {
    return [...this.rooms].filter(([roomId]) => roomId % move.partitions === move.partition)
      .map(([roomId, p]) => ({ roomId, headSeq: p.head, firstSeq: p.floor }));
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
    return this.rooms.get(roomId) ?? { head: 0, floor: 1, base: 0 };
  }

  // --- LogStateMachine ------------------------------------------------------

  apply(entries: Entry[]): KvWrite[] {
    const writes: KvWrite[] = [];
    const touched = new Set<number>();
    for (const entry of entries) {
      if (entry.data.length === 0) continue; // a leader's no-op
      if (isDoublingStep(entry.data)) {
        writes.push(...this.applyDoublingStep(peer.RoomLogBatch.decode(entry.data), touched));
        continue;
      }
      const { messages, appendedAtMs } = decodeBatch(entry.data);
      messages.forEach((m, slot) => {
        const seq = Long.fromValue(m.roomSeq).toNumber();
        const room = this.rooms.get(m.roomId) ?? { head: 0, floor: 1, base: 0 };
        if (seq <= room.head) return; // applied before (a replay after restart): idempotent
        room.head = seq;
        this.rooms.set(m.roomId, room);
        touched.add(m.roomId);
        const at = Buffer.allocUnsafe(10);
        writePosition(at, entry.index, 0);
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
    const heads = [...this.rooms].map(([roomId, p]) => ({ roomId, headSeq: p.head, firstSeq: p.floor, baseSeq: p.base }));
    return peer.RoomLogSnapshot.encode({ heads, ...this.doublingState() }).finish();
  }

  restore(data: Uint8Array): KvWrite[] {
    this.rooms.clear();
    this.sizes.length = 0;
    this.bytes = 0;
    // Everything before the snapshot is gone from the leader's log too: no room keeps history from before it.
    const snapshot = peer.RoomLogSnapshot.decode(data);
    for (const h of snapshot.heads) {
      const head = Long.fromValue(h.headSeq ?? 0).toNumber();
      const base = Long.fromValue(h.baseSeq ?? 0).toNumber();
      // What an inherited room kept before its base is still read from its old partition.
      this.rooms.set(h.roomId ?? 0, { head, floor: base > 0 ? Long.fromValue(h.firstSeq ?? 1).toNumber() : head + 1, base });
    }
    this.setDoubling(snapshot);
    return [
      { key: DOUBLING_KEY, value: peer.RoomLogSnapshot.encode(this.doublingState()).finish() },
      { key: ROOM_INDEX_START, rangeEnd: ROOM_INDEX_END, delete: true },
      { key: HEAD_START, rangeEnd: HEAD_END, delete: true },
      ...[...this.rooms].map(([roomId, p]) => headWrite(roomId, p)),
    ];
  }

  private applyDoublingStep(batch: ReturnType<typeof peer.RoomLogBatch.decode>, touched: Set<number>): KvWrite[] {
    if (batch.inherit && !this.inherit) this.inherit = { partition: batch.inherit.partition ?? 0, partitions: batch.inherit.partitions ?? 0 };
    if (batch.handOff) {
      const move = { partition: batch.handOff.partition ?? 0, partitions: batch.handOff.partitions ?? 0 };
      if (!this.handedOff.some((h) => h.partition === move.partition && h.partitions === move.partitions)) this.handedOff.push(move);
    }
    if (batch.adopt && !this.adopted) {
      for (const h of batch.adopt.heads ?? []) {
        const roomId = h.roomId ?? 0;
        const head = Long.fromValue(h.headSeq ?? 0).toNumber();
        const room = this.rooms.get(roomId) ?? { head: 0, floor: 1, base: 0 };
        // Nothing was numbered here before the adoption (the partition waited for it): the room continues from its old head.
        this.rooms.set(roomId, { head: Math.max(room.head, head), floor: Long.fromValue(h.firstSeq ?? 1).toNumber(), base: head });
        touched.add(roomId);
      }
      this.adopted = true;
    }
    return [{ key: DOUBLING_KEY, value: peer.RoomLogSnapshot.encode(this.doublingState()).finish() }];
  }

  private doublingState() {
    return { ...(this.inherit ? { inherit: this.inherit } : {}), adopted: this.adopted, handedOff: this.handedOff };
  }

  private setDoubling(state: ReturnType<typeof peer.RoomLogSnapshot.decode>): void {
    this.inherit = state.inherit ? { partition: state.inherit.partition ?? 0, partitions: state.inherit.partitions ?? 0 } : null;
    this.adopted = state.adopted ?? false;
    this.handedOff = (state.handedOff ?? []).map((h) => ({ partition: h.partition ?? 0, partitions: h.partitions ?? 0 }));
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
    const { head, floor, base } = this.position(roomId);
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
    // At or below an inherited room's base, messages are in the partition it came from (the broker reads them there).
    const low = Math.max(from, floor, base + 1);
    const rows = to < low ? [] : await this.kv.range(indexKey(roomId, low), indexKey(roomId, to + 1), to - low + 1);
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
