// The ordering authority of a broker partition, on its leader: a publish is
// checked (duplicate, room rate), numbered with the room's next room_seq,
// and appended with the rest of its event-loop turn as one log entry; once
// the entry is committed (a majority of the partition's replicas hold it on
// disk) and applied, the message fans out and its publisher is acknowledged
// when every gateway with members has it. On every replica the same applied
// entries fill the duplicate table, so a publisher's retry after a failover
// finds its message under the new leader, which fans it out again if it has
// to (gateways drop what they already delivered) before acknowledging.
import { performance } from 'node:perf_hooks';
import { RecentIds } from '../collections/recent-ids.js';
import { HotCounter } from '../observability/hot-metrics.js';
import { ALL_VROOMS, Long, peer, type Publish, type RoomDelivery } from '../protocol/index.js';
import type { Entry } from '../replication/raft.js';
import type { TokenBuckets } from '../limits/token-bucket.js';
import { decodeBatch, DURABLE_SEQUENCER_ID, encodeBatch, isDoublingStep, type Inheritance, type RoomLog } from './room-log.js';

const DEDUP_ENTRIES = 200_000;
/** Messages per log entry at most; a busier turn appends several entries. */
const MAX_BATCH_MESSAGES = 512;
/**
 * Bytes of messages per log entry, beyond which the next message starts a new
 * entry: with the largest message (64 KiB) an entry stays well inside the
 * raft's append bound and a peer frame (1 MiB).
 */
const MAX_BATCH_BYTES = 256 * 1024;
/** A RoomDelivery's encoding beyond its payload, about (ids, seq, times, tags). */
const DELIVERY_OVERHEAD_BYTES = 48;
/**
 * Log entries this leader keeps appended and not yet applied, at most: what
 * is published meanwhile waits and goes into the next entry together. At a
 * moderate rate this makes one entry (a write, an fsync and a round trip on
 * every replica) carry the messages of a whole commit round instead of one
 * turn's; the wait is bounded by the commit of the entries in flight.
 */
const MAX_ENTRIES_IN_FLIGHT = 1;
/** Entries applied this recently as a follower are fanned out again by a new leader: their fan-out may have died with the old one. */
const REFANOUT_WINDOW_MS = 3000;

const publishes = new HotCounter({ name: 'groupchat_broker_publish_total', help: 'Publishes received', labelNames: ['result'] });
const publishedBy = {
  accepted: publishes.cell({ result: 'accepted' }), duplicate: publishes.cell({ result: 'duplicate' }),
  rateLimited: publishes.cell({ result: 'rate_limited' }), notLeader: publishes.cell({ result: 'not_leader' }),
};

/** What the sequencer needs of the partition's replicated log. */
export interface PartitionLog {
  /** Leader, with its lease, and every entry of earlier terms applied: it may number new messages. */
  readonly ready: boolean;
  readonly isLeader: boolean;
  readonly term: number;
  /** The last entry applied to the room log here, and the last in the log. */
  readonly appliedIndex: number;
  readonly lastIndex: number;
  propose(data: Uint8Array): number | null;
  entryAt(index: number): Entry | undefined;
}

export type Ack = (status: number) => void;

/**
 * A message's progress on this replica. proposed: numbered, its entry not yet
 * committed; applied: committed, not fanned out from here; fanning: being
 * delivered from here; done: every gateway has it; lost: numbered by a
 * leadership that ended before it committed (unknown until a log shows it).
 */
interface Known {
  phase: 'proposed' | 'applied' | 'fanning' | 'done' | 'lost';
  waiters: Ack[];
  delivery: RoomDelivery | null;
}

interface Proposed { delivery: RoomDelivery; encoded: Uint8Array; known: Known }

export interface SequencerDeps {
  log: PartitionLog;
  rooms: RoomLog;
  roomLimits: TokenBuckets<number>;
  fanout(delivery: RoomDelivery, done: () => void, encoded?: Uint8Array): void;
  now?: () => number;
}

export class Sequencer {
  private readonly known = new RecentIds<Known>(DEDUP_ENTRIES);
  /** The leader's numbering: the last room_seq it gave each room (beyond what is applied). */
  private readonly assigned = new Map<number, number>();
  private turn: Proposed[] = [];
  private turnScheduled = false;
  /** Entries this leader appended and has not seen applied, by index, with the term they were appended in. */
  private readonly proposed = new Map<number, { term: number; batch: Proposed[] }>();
  /** Entries applied while following, with when: a new leader fans the recent ones out again. */
  private recentlyApplied: Array<{ index: number; at: number }> = [];
  private wasReady = false;
  /** The last applied entry whose messages are in the duplicate table. */
  private learnedThrough = 0;
  /** Rooms a hand-off being appended moves away: refused from the moment it is proposed, before it applies. */
  private fences: Inheritance[] = [];
  private readonly now: () => number;

  constructor(private readonly deps: SequencerDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  publish(publish: Publish, ack: Ack): void {
    // A change of leadership or lease since the last look takes effect before anything is numbered.
    this.checkReady();
    if (!this.deps.log.ready) {
      publishedBy.notLeader.count++;
      ack(this.deps.log.isLeader ? peer.PublishStatus.UNAVAILABLE : peer.PublishStatus.NOT_LEADER);
      return;
    }
    if (this.deps.rooms.movedAway(publish.roomId) || this.fences.some((f) => publish.roomId % f.partitions === f.partition)) {
      ack(peer.PublishStatus.WRONG_PARTITION); // a doubling gave the room to another partition
      return;
    }
    const { senderId, messageId } = publish;
    const seen = this.known.get(publish.roomId, senderId, messageId.high, messageId.low);
    if (seen && seen.phase !== 'lost') {
      // A retry or a redundant copy: never numbered twice; acked once it is everywhere.
      publishedBy.duplicate.count++;
      if (seen.phase === 'done') return ack(peer.PublishStatus.DELIVERED);
      seen.waiters.push(ack);
      if (seen.phase === 'applied') this.fanoutFromHere(seen);
      return;
    }
    if (!this.deps.roomLimits.take(publish.roomId)) {
      publishedBy.rateLimited.count++;
      ack(peer.PublishStatus.RATE_LIMITED);
      return;
    }
    publishedBy.accepted.count++;
    const seq = (this.assigned.get(publish.roomId) ?? this.deps.rooms.position(publish.roomId).head) + 1;
    this.assigned.set(publish.roomId, seq);
    const delivery: RoomDelivery = {
      messageId, roomId: publish.roomId, senderId, roomSeq: Long.fromNumber(seq, true), sequencerId: DURABLE_SEQUENCER_ID,
      payload: publish.payload, sentAtMs: publish.sentAtMs, vroomMask: ALL_VROOMS, priority: publish.priority,
    };
    const known: Known = { phase: 'proposed', waiters: [ack], delivery };
    this.known.set(publish.roomId, senderId, messageId.high, messageId.low, known);
    this.turn.push({ delivery, encoded: peer.RoomDelivery.encode(delivery).finish(), known });
    this.scheduleTurn();
  }

  /** Proposes the turn's messages at the end of the event-loop turn, unless enough entries are in flight (then when one applies). */
  private scheduleTurn(): void {
    if (this.turnScheduled || this.turn.length === 0 || this.proposed.size >= MAX_ENTRIES_IN_FLIGHT) return;
    this.turnScheduled = true;
    setImmediate(() => this.proposeTurn());
  }

  /**
   * Appends a doubling's control entry after every message numbered so far
   * (so a hand-off's heads include them); a hand-off fences its rooms at once.
   * False when this replica may not append now (not leader, or no lease).
   */
  proposeControl(data: Uint8Array, fence?: Inheritance): boolean {
    if (!this.deps.log.isLeader) return false;
    if (this.turn.length > 0) this.proposeTurn();
    if (this.deps.log.propose(data) === null) return false;
    if (fence) this.fences.push(fence);
    return true;
  }

  /**
   * Committed entries, in log order, as this replica applies them. Only a
   * leader keeps its duplicate table current; a follower reads the entries
   * it applied into the table when it becomes leader (learnThrough), so the
   * replicas that number nothing do not decode every message.
   */
  onApplied(entries: Entry[]): void {
    this.checkReady();
    const leader = this.deps.log.isLeader;
    for (const entry of entries) {
      const mine = this.proposed.get(entry.index);
      this.proposed.delete(entry.index);
      if (!leader) {
        if (entry.data.length > 0 && !isDoublingStep(entry.data)) this.recentlyApplied.push({ index: entry.index, at: this.now() });
        continue;
      }
      this.learnThrough(entry.index - 1);
      this.learnedThrough = entry.index;
      if (mine && mine.term === entry.term) {
        for (const p of mine.batch) this.startFanout(p.known, p.delivery, p.encoded);
        continue;
      }
      // Another leader's entry (or one of ours from before a restart): learn its ids, and fan it out from here.
      for (const known of this.learn(entry)) this.fanoutFromHere(known);
    }
    this.trimRecent();
    this.checkReady();
    this.scheduleTurn();
  }

  /**
   * What this partition numbered in the rooms `moving` selects since sinceMs
   * (the leader's clock when appended), in log order, the newest kept when
   * there is more than maxBytes of it: a doubling's hand-off carries it to
   * the rooms' new partition.
   */
  numberedSince(moving: (roomId: number) => boolean, sinceMs: number, maxBytes: number): RoomDelivery[] {
    const found: RoomDelivery[] = [];
    let bytes = 0;
    for (let index = this.deps.log.appliedIndex; bytes < maxBytes; index--) {
      const entry = this.deps.log.entryAt(index);
      if (!entry) break;
      if (entry.data.length === 0 || isDoublingStep(entry.data)) continue;
      const batch = decodeBatch(entry.data);
      if (batch.appendedAtMs < sinceMs) break;
      for (let i = batch.messages.length - 1; i >= 0 && bytes < maxBytes; i--) {
        const delivery = batch.messages[i]!;
        if (!moving(delivery.roomId)) continue;
        found.push(delivery);
        bytes += delivery.payload.length + DELIVERY_OVERHEAD_BYTES;
      }
    }
    return found.reverse();
  }

  /** Call when leadership changes or time passes: a leader that just became ready re-delivers the recent past. */
  checkReady(): void {
    const ready = this.deps.log.ready;
    if (ready === this.wasReady) return;
    this.wasReady = ready;
    if (!ready) return this.lostLeadership();
    this.learnThrough(this.deps.log.appliedIndex);
    // Numbering resumes after everything in the log, applied or not: entries
    // this leader appended before its lease lapsed may still commit.
    this.assigned.clear();
    // Their messages are adopted again, so a retry waits for them instead of being numbered twice.
    for (let index = this.deps.log.appliedIndex + 1; index <= this.deps.log.lastIndex; index++) {
      const entry = this.deps.log.entryAt(index);
      if (!entry || entry.data.length === 0 || isDoublingStep(entry.data)) continue;
      const batch: Proposed[] = [];
      for (const delivery of decodeBatch(entry.data).messages) {
        this.assigned.set(delivery.roomId, Math.max(this.assigned.get(delivery.roomId) ?? 0, delivery.roomSeq.toNumber()));
        const earlier = this.known.get(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low);
        const known: Known = { phase: 'proposed', waiters: earlier?.waiters ?? [], delivery };
        this.known.set(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low, known);
        batch.push({ delivery, encoded: peer.RoomDelivery.encode(delivery).finish(), known });
      }
      this.proposed.set(index, { term: entry.term, batch });
    }
    this.trimRecent();
    for (const { index } of this.recentlyApplied) {
      const entry = this.deps.log.entryAt(index);
      if (!entry) continue;
      for (const delivery of decodeBatch(entry.data).messages) {
        const known = this.known.get(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low);
        if (known?.phase === 'applied') this.fanoutFromHere(known);
      }
    }
    this.recentlyApplied = [];
  }

  private lostLeadership(): void {
    // Numbered but not committed here: the next leader commits or drops them;
    // their publishers retry there (the proxy re-routes NOT_LEADER).
    for (const p of [...[...this.proposed.values()].flatMap((e) => e.batch), ...this.turn]) {
      p.known.phase = 'lost';
      for (const ack of p.known.waiters.splice(0)) ack(peer.PublishStatus.NOT_LEADER);
    }
    this.turn = [];
    this.proposed.clear();
    this.assigned.clear();
    this.fences = [];
  }

  private proposeTurn(): void {
    this.turnScheduled = false;
    const turn = this.turn;
    this.turn = [];
    const appendedAt = Date.now();
    for (let i = 0; i < turn.length;) {
      const end = batchEnd(turn, i);
      const batch = turn.slice(i, end);
      const index = this.deps.log.propose(encodeBatch(batch.map((p) => p.encoded), appendedAt));
      if (index === null) {
        // The lease ran out between the publish and the end of its turn.
        this.turn = turn.slice(i);
        this.wasReady = false;
        this.lostLeadership();
        return;
      }
      this.proposed.set(index, { term: this.deps.log.term, batch });
      i = end;
    }
  }

  /**
   * Reads the applied entries after learnedThrough, up to index, into the
   * duplicate table: the newest DEDUP_ENTRIES messages of them (what the
   * table holds), from the log this replica keeps in memory.
   */
  private learnThrough(index: number): void {
    if (this.learnedThrough >= index) return;
    // Decoded once on the way back (to count), learned on the way forward.
    const pending: Array<{ entry: Entry; messages: RoomDelivery[] }> = [];
    let count = 0;
    for (let i = index; i > this.learnedThrough && count < DEDUP_ENTRIES; i--) {
      const entry = this.deps.log.entryAt(i);
      if (!entry) break; // compacted away
      const messages = entry.data.length > 0 && !isDoublingStep(entry.data) ? decodeBatch(entry.data).messages : [];
      pending.push({ entry, messages });
      count += messages.length;
    }
    for (const { entry, messages } of pending.reverse()) this.learn(entry, messages);
    this.learnedThrough = index;
  }

  /** An applied entry's messages into the duplicate table (numbered, committed); returns those now 'applied'. */
  private learn(entry: Entry, decoded?: RoomDelivery[]): Known[] {
    if (entry.data.length === 0) return [];
    if (isDoublingStep(entry.data)) {
      this.learnAdopted(entry.data);
      return [];
    }
    const learned: Known[] = [];
    for (const delivery of decoded ?? decodeBatch(entry.data).messages) {
      let known = this.known.get(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low);
      if (!known || known.phase === 'proposed' || known.phase === 'lost') {
        known = { phase: 'applied', waiters: known?.waiters ?? [], delivery };
        this.known.set(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low, known);
      }
      learned.push(known);
    }
    return learned;
  }

  /**
   * An adoption's recent messages were numbered by the rooms' old partition:
   * a copy that reaches this one is acknowledged once fanned out from here
   * (members' gateways drop what they already have), never numbered again.
   */
  private learnAdopted(data: Uint8Array): void {
    for (const delivery of (peer.RoomLogBatch.decode(data).adopt?.recent ?? []) as RoomDelivery[]) {
      if (this.known.get(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low)) continue;
      this.known.set(delivery.roomId, delivery.senderId, delivery.messageId.high, delivery.messageId.low, { phase: 'applied', waiters: [], delivery });
    }
  }

  private fanoutFromHere(known: Known): void {
    if (known.phase !== 'applied' || !known.delivery) return;
    this.startFanout(known, known.delivery);
  }

  private startFanout(known: Known, delivery: RoomDelivery, encoded?: Uint8Array): void {
    known.phase = 'fanning';
    known.delivery = delivery;
    this.deps.fanout(delivery, () => {
      known.phase = 'done';
      known.delivery = null;
      const waiters = known.waiters;
      known.waiters = [];
      for (const ack of waiters) ack(peer.PublishStatus.DELIVERED);
    }, encoded);
  }

  private trimRecent(): void {
    const since = this.now() - REFANOUT_WINDOW_MS;
    let drop = 0;
    while (drop < this.recentlyApplied.length && this.recentlyApplied[drop]!.at < since) drop++;
    if (drop > 0) this.recentlyApplied = this.recentlyApplied.slice(drop);
  }
}

/** Where the log entry starting at turn[start] ends: MAX_BATCH_MESSAGES or MAX_BATCH_BYTES, at least one message. */
function batchEnd(turn: readonly Proposed[], start: number): number {
  let bytes = 0;
  let end = start;
  while (end < turn.length && end - start < MAX_BATCH_MESSAGES) {
    bytes += turn[end]!.encoded.length;
    if (end > start && bytes > MAX_BATCH_BYTES) break;
    end++;
  }
  return end;
}
