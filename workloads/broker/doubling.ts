// A partition doubling (P → 2P) moves the rooms r of partition q with
// r % 2P = q + P to the new partition q + P. Their numbering must go on
// where it was and their history stay readable, so the move is three entries
// in the two partitions' logs:
// 1. inherit (new partition, while the topology is Expanding): whom it takes
//    rooms from. The new partition is not ready for the flip before this.
// 2. hand-off (old partition, asked by the new one after the flip): from this
//    entry on the old partition numbers none of those rooms; every message it
//    numbered before is applied before the entry, so the heads it answers are
//    final.
// 3. adopt (new partition): the rooms continue from those heads. It numbers
//    and serves nothing before this entry is applied (publishes meanwhile are
//    answered UNAVAILABLE and retried by the proxies).
// What a room had before its move stays in the old partition's log and is
// read from there (pageAcross), until retention removes it.
import { Counter } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import { metrics } from '../observability/http.js';
import { Long, peer, toNumber, type PeerFrame, type RoomDelivery } from '../protocol/index.js';
import type { Registry } from '../registry/registry.js';
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { encodeDoublingStep, MAX_HISTORY_PAGE, type HistoryPage, type Inheritance, type RoomLog } from './room-log.js';
import type { Sequencer } from './sequencer.js';

const RETRY_MS = 500;
const PREDECESSOR_TIMEOUT_MS = 3000;
/**
 * A hand-off carries what the old partition numbered in the moving rooms
 * since the doubling began, and in this long before (a publisher retries for
 * 15 s by default), at most RECENT_MAX_BYTES of it, the newest kept: a copy
 * of one of those messages that reaches the new partition is recognised, not
 * numbered again.
 */
const RECENT_WINDOW_MS = 60_000;
const RECENT_MAX_BYTES = 256 * 1024;

const steps = new Counter({ name: 'groupchat_broker_doubling_steps_total', help: 'Doubling entries this replica appended', labelNames: ['step'], registers: [metrics] });

type HandoffRequest = Extract<PeerFrame, { body: 'handoffRequest' }>['handoffRequest'];
type HistoryReply = Extract<PeerFrame, { body: 'historyReply' }>['historyReply'];

export interface DoublingDeps {
  partition: number;
  self: PeerIdentity;
  log: Logger;
  registry: Registry;
  rooms: RoomLog;
  sequencer: Sequencer;
  /** This replica leads its partition and holds its lease. */
  leader(): boolean;
}

export class Doubling {
  /** Links to the replicas of the partition this one inherits rooms from. */
  private readonly predecessors: PeerPool;
  private lastAttempt = 0;
  private nextCorrelation = 1;
  private readonly reads = new Map<number, { resolve: (reply: HistoryReply | null) => void; timer: NodeJS.Timeout }>();
  /** When this replica first saw the topology expanding, by the epoch it expands from. */
  private expanding: { epoch: number; since: number } | null = null;
  /** Hand-off requests waiting for the hand-off entry to apply here. */
  private waiting: Array<{ link: PeerLink; correlation: number; move: Inheritance }> = [];

  constructor(private readonly d: DoublingDeps) {
    this.predecessors = new PeerPool(d.self);
    this.predecessors.on('up', (_member, link) => link.on('frame', (frame) => {
      if (frame.body === 'handoffReply') this.onHandoffReply(frame.handoffReply);
      if (frame.body === 'historyReply') this.onHistoryReply(frame.historyReply);
    }));
  }

  /** Called every few tens of milliseconds: each step is retried until its entry is applied. */
  tick(): void {
    const topology = this.d.registry.topology();
    const partitions = topology.roles.broker.partitions;
    const next = topology.next?.roles.broker.partitions;
    if (topology.phase === 'Expanding' && this.expanding?.epoch !== topology.epoch) this.expanding = { epoch: topology.epoch, since: Date.now() };
    const inherit = this.d.rooms.inheritance();
    if (inherit) {
      this.predecessors.sync(this.d.registry.members().filter((m) => m.role === 'broker' && m.partition === inherit.partition));
    }
    if (!this.d.leader() || Date.now() - this.lastAttempt < RETRY_MS) return;
    if (!inherit && topology.phase === 'Expanding' && next === 2 * partitions && this.d.partition >= partitions && this.d.partition < next) {
      this.lastAttempt = Date.now();
      if (this.d.sequencer.proposeControl(encodeDoublingStep({ inherit: { partition: this.d.partition - partitions, partitions: next } }))) steps.inc({ step: 'inherit' });
      return;
    }
    const pending = this.d.rooms.pendingInheritance();
    // Only after the flip: until then the old partition still numbers these rooms, and is routed to.
    if (pending && this.d.partition < partitions) {
      this.lastAttempt = Date.now();
      const correlation = this.nextCorrelation++;
      for (const member of this.predecessors.members()) {
        this.predecessors.link(member.id)?.send({ handoffRequest: { correlation, inheritance: { partition: this.d.partition, partitions: pending.partitions } } });
      }
    }
  }

  /** A new partition is ready for the epoch to flip once it knows whom it inherits from. */
  readyForFlip(): boolean {
    const topology = this.d.registry.topology();
    const isNew = topology.phase === 'Expanding' && this.d.partition >= topology.roles.broker.partitions;
    return !isNew || this.d.rooms.inheritance() !== null;
  }

  /** The old partition's side: fence the rooms with a hand-off entry, answer their heads once it is applied. */
  onHandoffRequest(link: PeerLink, request: HandoffRequest): void {
    const move = { partition: request.inheritance?.partition ?? 0, partitions: request.inheritance?.partitions ?? 0 };
    const reply = (status: number): void => {
      link.send({ handoffReply: { correlation: request.correlation, status } });
    };
    const half = move.partitions / 2;
    if (!Number.isInteger(half) || half < 1 || move.partition >= move.partitions || move.partition % half !== this.d.partition || move.partition === this.d.partition) {
      return reply(peer.PublishStatus.REJECTED);
    }
    if (!this.d.leader()) return reply(peer.PublishStatus.NOT_LEADER);
    if (this.handedOff(move)) return this.answerHandoff(link, request.correlation, move);
    if (!this.waiting.some((w) => w.move.partition === move.partition)) {
      if (!this.d.sequencer.proposeControl(encodeDoublingStep({ handOff: move }), move)) return reply(peer.PublishStatus.UNAVAILABLE);
      steps.inc({ step: 'hand_off' });
      this.d.log.info({ to: move.partition, partitions: move.partitions }, 'doubling: handing rooms off to the new partition');
    }
    this.waiting.push({ link, correlation: request.correlation, move });
  }

  /** After each apply: answer the hand-offs that are now in the log here. */
  onApplied(): void {
    if (this.waiting.length === 0) return;
    const done = this.waiting.filter((w) => this.handedOff(w.move));
    this.waiting = this.waiting.filter((w) => !this.handedOff(w.move));
    for (const w of done) this.answerHandoff(w.link, w.correlation, w.move);
  }

  /** The moved rooms' final heads and recent messages, once the hand-off entry is applied here. */
  private answerHandoff(link: PeerLink, correlation: number, move: Inheritance): void {
    const since = Math.min(Date.now(), this.expanding?.since ?? Date.now()) - RECENT_WINDOW_MS;
    const recent = this.d.sequencer.numberedSince((roomId) => roomId % move.partitions === move.partition, since, RECENT_MAX_BYTES);
    link.send({ handoffReply: { correlation, status: peer.PublishStatus.DELIVERED, heads: this.d.rooms.headsFor(move), recent } });
  }

  /**
   * A page of an inherited room's history: at or below base it comes from the
   * old partition, above it from here (local).
   */
  async pageAcross(roomId: number, base: number, after: number, before: number, limit: number,
    local: (after: number, before: number, limit: number) => Promise<HistoryPage>): Promise<HistoryPage> {
    const count = Math.max(1, Math.min(limit || MAX_HISTORY_PAGE, MAX_HISTORY_PAGE));
    if (before === 0) {
      if (after >= base) return local(after, 0, count);
      const old = await this.readPredecessor({ roomId, afterSeq: after, limit: count });
      if (!old) return { complete: false, deliveries: [], ...this.bounds(roomId) };
      const mine = old.deliveries.length < count ? await local(base, 0, count - old.deliveries.length) : { complete: true, deliveries: [], ...this.bounds(roomId) };
      return { complete: old.complete && mine.complete, deliveries: [...old.deliveries as RoomDelivery[], ...mine.deliveries], ...this.bounds(roomId) };
    }
    const mine = await local(0, before, count);
    const lowest = Math.max(1, Math.min(before - 1, mine.head) - count + 1);
    if (lowest > base) return mine;
    const old = await this.readPredecessor({ roomId, beforeSeq: Math.min(before - 1, base) + 1, limit: count - mine.deliveries.length });
    if (!old) return { ...mine, complete: false };
    return { complete: old.complete && mine.complete, deliveries: [...old.deliveries as RoomDelivery[], ...mine.deliveries], ...this.bounds(roomId) };
  }

  close(): void {
    this.predecessors.close();
    for (const read of this.reads.values()) clearTimeout(read.timer);
  }

  private bounds(roomId: number): { head: number; first: number } {
    const p = this.d.rooms.position(roomId);
    return { head: p.head, first: p.floor };
  }

  private handedOff(move: Inheritance): boolean {
    return this.d.rooms.handedOffTo(move);
  }

  private onHandoffReply(reply: Extract<PeerFrame, { body: 'handoffReply' }>['handoffReply']): void {
    const pending = this.d.rooms.pendingInheritance();
    if (!pending || reply.status !== peer.PublishStatus.DELIVERED || !this.d.leader()) return;
    const heads = reply.heads.map((h) => ({ roomId: h.roomId, headSeq: toNumber(h.headSeq), firstSeq: toNumber(h.firstSeq) }));
    const recent = reply.recent as RoomDelivery[];
    if (this.d.sequencer.proposeControl(encodeDoublingStep({ adopt: { from: pending.partition, heads, recent } }))) {
      steps.inc({ step: 'adopt' });
      this.d.log.info({ from: pending.partition, rooms: heads.length, recent: recent.length }, 'doubling: adopting rooms from the old partition');
    }
  }

  /** Asks the old partition's replicas (its leader answers) for a page of what a moved room had there. */
  private readPredecessor(query: { roomId: number; afterSeq?: number; beforeSeq?: number; limit: number }): Promise<HistoryReply | null> {
    const correlation = this.nextCorrelation++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.reads.delete(correlation); resolve(null); }, PREDECESSOR_TIMEOUT_MS);
      this.reads.set(correlation, { resolve, timer });
      for (const member of this.predecessors.members()) {
        this.predecessors.link(member.id)?.send({
          historyRequest: {
            correlation, roomId: query.roomId, sequencerId: 1, afterSeq: Long.fromNumber(query.afterSeq ?? 0, true),
            beforeSeq: Long.fromNumber(query.beforeSeq ?? 0, true), limit: query.limit, predecessorRead: true,
          },
        });
      }
    });
  }

  private onHistoryReply(reply: HistoryReply): void {
    const read = this.reads.get(reply.correlation);
    // Followers answer NOT_LEADER; the leader's answer is the one.
    if (!read || reply.status !== peer.PublishStatus.DELIVERED) return;
    this.reads.delete(reply.correlation);
    clearTimeout(read.timer);
    read.resolve(reply);
  }
}
