// A key-value store replicated from one leader to its followers, for the
// roles that hold hard state (pi, xiu). Every write is a log entry (index,
// term, key-value ops) applied atomically with the data it changes; the
// leader ships entries to followers and a write counts as done only once a
// follower has it on disk too (unless that is turned off), so losing one pod
// loses nothing acknowledged. Leadership is a registry lease, taken only by a
// replica no live peer is ahead of; a follower whose log diverged from the
// new leader's (an unacknowledged tail) drops it and takes the leader's.
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import type { Logger } from '../observability/logger.js';
import { peer, toNumber, type Long, type PeerFrame } from '../protocol/index.js';
import type { Registry } from '../registry/registry.js';
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { KvStore, type KvWrite } from './kv-store.js';

export interface ReplicatedStoreOptions {
  role: 'pi' | 'xiu';
  partition: number;
  self: PeerIdentity;
  dataDir: string;
  registry: Registry;
  log: Logger;
  /** Acknowledge a write only once a follower has it (default true). */
  requireFollowerAck?: boolean;
  ackTimeoutMs?: number;
  leaseTtlMs?: number;
}

export class StoreUnavailable extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface Position { index: number; term: number }
interface FollowerState { link: PeerLink; nextIndex: number; matchIndex: number; probing: boolean; sending: boolean }
interface Waiter { index: number; resolve: () => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
type LogEntry = { index: number; term: number; ops: Array<{ key: Uint8Array; value: Uint8Array; delete: boolean }> };

const DATA = 0x64; // 'd'
const LOG = 0x6c; // 'l'
const META = Buffer.from('m/last');
const RECENT_ENTRIES = 4096;
const BATCH_ENTRIES = 128;
const WINDOW_ENTRIES = 2048;

function logKey(index: number): Buffer {
  const key = Buffer.alloc(9);
  key[0] = LOG;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}

function dataKey(key: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(DATA), key]);
}

function ahead(a: Position, b: Position): boolean {
  return a.term > b.term || (a.term === b.term && a.index > b.index);
}

export class ReplicatedStore extends EventEmitter<{ leadership: [boolean] }> {
  leader = false;
  private term = 0;
  private last: Position = { index: 0, term: 0 };
  private durable = Promise.resolve();
  private leaseValidUntil = 0;
  private readonly recent = new Map<number, LogEntry>();
  private readonly followers = new Map<string, FollowerState>();
  private readonly positions = new Map<string, Position>();
  private waiters: Waiter[] = [];
  private readonly peers: PeerPool;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly leaseName: string;
  private readonly requireFollowerAck: boolean;
  private readonly ackTimeoutMs: number;
  private readonly leaseTtlMs: number;
  private electing = false;
  private replicaCount = 1;

  private constructor(private readonly kv: KvStore, private readonly o: ReplicatedStoreOptions) {
    super();
    this.leaseName = `${o.role}-${o.partition}`;
    this.requireFollowerAck = o.requireFollowerAck ?? true;
    this.ackTimeoutMs = o.ackTimeoutMs ?? 3000;
    this.leaseTtlMs = o.leaseTtlMs ?? 2000;
    this.peers = new PeerPool(o.self);
    this.peers.on('up', (member, link) => {
      link.on('frame', (frame) => this.handleFrame(link, frame));
      if (this.leader) this.probe(member.id, link);
    });
    this.peers.on('down', (member) => this.followers.delete(member.id));
    const sync = () => {
      const replicas = o.registry.members().filter((m) => m.role === o.role && m.partition === o.partition);
      this.replicaCount = Math.max(replicas.length, o.registry.topology().roles[o.role]?.replicas ?? 1);
      this.peers.sync(replicas.filter((m) => m.id !== o.self.memberId));
    };
    o.registry.on('members', sync);
    sync();
    this.timers.push(setInterval(() => void this.elect(), Math.max(100, this.leaseTtlMs / 4)));
    this.timers.push(setInterval(() => this.announce(), 250));
  }

  static async open(options: ReplicatedStoreOptions): Promise<ReplicatedStore> {
    mkdirSync(options.dataDir, { recursive: true });
    const kv = await KvStore.open(options.dataDir);
    const store = new ReplicatedStore(kv, options);
    const meta = await kv.get(META);
    if (meta) store.last = { index: Number(meta.readBigUInt64BE(0)), term: Number(meta.readBigUInt64BE(8)) };
    options.log.info({ lastIndex: store.last.index, lastTerm: store.last.term }, 'store opened');
    return store;
  }

  get position(): Position {
    return this.last;
  }

  /**
   * Appends ops as the next log entry (leader only). The returned promise
   * settles when the entry is durable here and, by default, on a follower.
   * Callers compute ops synchronously from state they hold, then call this.
   */
  propose(ops: KvWrite[]): Promise<void> {
    this.assertLeader();
    const entry: LogEntry = {
      index: this.last.index + 1, term: this.term,
      ops: ops.map((op) => ({ key: op.key, value: op.value ?? new Uint8Array(), delete: op.delete ?? false })),
    };
    const local = this.applyLocally(entry);
    for (const [id, follower] of this.followers) if (!follower.probing) this.pump(id, follower);
    return Promise.all([local, this.replicated(entry.index)]).then(() => undefined);
  }

  /** Settles when everything written so far is durable and replicated (for idempotent retries). */
  settled(): Promise<void> {
    this.assertLeader();
    return Promise.all([this.durable, this.replicated(this.last.index)]).then(() => undefined);
  }

  async get(key: Uint8Array): Promise<Buffer | null> {
    return this.kv.get(dataKey(key));
  }

  async range(gte: Uint8Array, lt: Uint8Array, limit: number, reverse = false): Promise<Array<{ key: Buffer; value: Buffer }>> {
    const rows = await this.kv.range(dataKey(gte), dataKey(lt), limit, reverse);
    return rows.map((r) => ({ key: r.key.subarray(1), value: r.value }));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.peers.close();
    if (this.leader) await this.o.registry.releaseLease(this.leaseName, this.o.self.memberId).catch(() => undefined);
    this.stepDown('closing');
    await this.durable;
    await this.kv.close();
  }

  /** Frames of the replication protocol; returns false for any other frame. */
  handleFrame(link: PeerLink, frame: PeerFrame): boolean {
    const from = link.remote?.memberId ?? '';
    const replication = frame.body === 'replicateProbe' || frame.body === 'replicate' || frame.body === 'replicateAck';
    if (replication && !this.isReplica(from)) {
      // Terms and log entries are trusted only from replicas of this partition.
      link.fail(13, `${from} is not a replica of ${this.leaseName}`);
      return true;
    }
    switch (frame.body) {
      case 'replicateProbe': void this.onProbe(link, frame.replicateProbe); return true;
      case 'replicate': void this.onEntries(link, frame.replicate); return true;
      case 'replicateAck': void this.onAck(from, link, frame.replicateAck); return true;
      default: return false;
    }
  }

  private isReplica(memberId: string): boolean {
    return this.o.registry.members().some((m) => m.id === memberId && m.role === this.o.role && m.partition === this.o.partition);
  }

  private assertLeader(): void {
    if (!this.leader || Date.now() > this.leaseValidUntil) {
      throw new StoreUnavailable(peer.StoreStatus.NOT_LEADER, `${this.o.self.memberId} is not the ${this.leaseName} leader`);
    }
  }

  private applyLocally(entry: LogEntry): Promise<void> {
    this.last = { index: entry.index, term: entry.term };
    this.recent.set(entry.index, entry);
    if (this.recent.size > RECENT_ENTRIES) this.recent.delete(this.recent.keys().next().value!);
    const meta = Buffer.alloc(16);
    meta.writeBigUInt64BE(BigInt(entry.index), 0);
    meta.writeBigUInt64BE(BigInt(entry.term), 8);
    const writes: KvWrite[] = [
      { key: logKey(entry.index), value: peer.LogEntry.encode(entry).finish() },
      { key: META, value: meta },
      ...entry.ops.map((op) => (op.delete ? { key: dataKey(op.key), delete: true } : { key: dataKey(op.key), value: op.value })),
    ];
    // The store writes in call order (group commit), so the latest write's promise covers all before it.
    this.durable = this.kv.write(writes);
    return this.durable;
  }

  private replicated(index: number): Promise<void> {
    if (!this.requireFollowerAck || this.replicaCount <= 1) return Promise.resolve();
    if ([...this.followers.values()].some((f) => f.matchIndex >= index)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        index, resolve, reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new StoreUnavailable(peer.StoreStatus.NOT_REPLICATED, `no follower of ${this.leaseName} confirmed entry ${index} within ${this.ackTimeoutMs} ms`));
        }, this.ackTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private releaseWaiters(): void {
    const best = Math.max(0, ...[...this.followers.values()].map((f) => f.matchIndex));
    const done = this.waiters.filter((w) => w.index <= best);
    if (done.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.index > best);
    for (const w of done) { clearTimeout(w.timer); w.resolve(); }
  }

  // --- leadership --------------------------------------------------------

  private async elect(): Promise<void> {
    if (this.electing) return;
    this.electing = true;
    try {
      if (!this.leader) {
        // Only a replica that no live peer is ahead of may lead: it holds every acknowledged write.
        for (const [id, position] of this.positions) {
          if (this.peers.isUp(id) && ahead(position, this.last)) return;
        }
      }
      const requestedAt = Date.now();
      const lease = await this.o.registry.acquireLease(this.leaseName, this.o.self.memberId, this.leaseTtlMs);
      if (lease.holder === this.o.self.memberId) {
        this.leaseValidUntil = requestedAt + this.leaseTtlMs * 0.8;
        if (!this.leader) await this.becomeLeader(lease.term);
      } else if (this.leader) {
        this.stepDown(`lease is held by ${lease.holder}`);
      }
    } catch (err) {
      if (this.leader && Date.now() > this.leaseValidUntil) this.stepDown(`lease renewal failed: ${(err as Error).message}`);
    } finally {
      this.electing = false;
    }
  }

  private async becomeLeader(term: number): Promise<void> {
    await this.durable;
    this.term = Math.max(term, this.last.term + 1);
    this.leader = true;
    this.o.log.info({ term: this.term, lastIndex: this.last.index }, 'became leader');
    for (const member of this.peers.members()) {
      const link = this.peers.link(member.id);
      if (link) this.probe(member.id, link);
    }
    this.emit('leadership', true);
  }

  private stepDown(reason: string): void {
    if (!this.leader) return;
    this.leader = false;
    this.followers.clear();
    for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new StoreUnavailable(peer.StoreStatus.NOT_LEADER, `leadership lost: ${reason}`)); }
    this.waiters = [];
    this.o.log.warn({ reason }, 'stepped down');
    this.emit('leadership', false);
  }

  /** Tells peers where this replica's log ends (eligibility, and acks to a leader). */
  private announce(): void {
    for (const member of this.peers.members()) {
      this.peers.link(member.id)?.send({ replicateAck: { lastIndex: this.last.index, lastTerm: this.last.term } });
    }
  }

  // --- leader side ---------------------------------------------------------

  private probe(memberId: string, link: PeerLink, reset = false): void {
    this.followers.set(memberId, { link, nextIndex: this.last.index + 1, matchIndex: 0, probing: true, sending: false });
    link.send({ replicateProbe: { term: this.term, reset, leaderLastIndex: this.last.index } });
  }

  private async onAck(from: string, link: PeerLink, ack: { lastIndex: Long; lastTerm: Long }): Promise<void> {
    const position = { index: toNumber(ack.lastIndex), term: toNumber(ack.lastTerm) };
    this.positions.set(from, position);
    if (!this.leader) return;
    const follower = this.followers.get(from);
    if (!follower || follower.link !== link) return; // a position broadcast on the peer's own link
    if (follower.probing) {
      const consistent = position.index <= this.last.index && (position.index === 0 || (await this.termAt(position.index)) === position.term);
      if (!consistent) {
        this.o.log.warn({ follower: from, position }, 'follower log diverged; resending from the start');
        this.probe(from, link, true);
        return;
      }
      follower.probing = false;
      follower.nextIndex = position.index + 1;
    } else if (position.index < follower.nextIndex - 1) {
      follower.nextIndex = position.index + 1; // it missed some: resend from there
    }
    follower.matchIndex = Math.max(follower.matchIndex, position.index);
    this.releaseWaiters();
    this.pump(from, follower);
  }

  private async termAt(index: number): Promise<number> {
    const cached = this.recent.get(index);
    if (cached) return cached.term;
    const raw = await this.kv.get(logKey(index));
    return raw ? toNumber(peer.LogEntry.decode(raw).term) : -1;
  }

  private async entries(from: number, to: number): Promise<LogEntry[]> {
    if (this.recent.has(from)) {
      const out: LogEntry[] = [];
      for (let i = from; i <= to && this.recent.has(i); i++) out.push(this.recent.get(i)!);
      return out;
    }
    await this.durable;
    const rows = await this.kv.range(logKey(from), logKey(to + 1), to - from + 1);
    return rows.map((r) => {
      const e = peer.LogEntry.decode(r.value);
      return { index: toNumber(e.index), term: toNumber(e.term), ops: e.ops.map((op) => ({ key: op.key!, value: op.value!, delete: op.delete ?? false })) };
    });
  }

  private pump(id: string, follower: FollowerState): void {
    if (follower.sending || follower.probing || !this.leader) return;
    follower.sending = true;
    void (async () => {
      try {
        while (this.leader && this.followers.get(id) === follower && follower.nextIndex <= this.last.index
          && follower.nextIndex - follower.matchIndex <= WINDOW_ENTRIES && !follower.link.closed) {
          const to = Math.min(this.last.index, follower.nextIndex + BATCH_ENTRIES - 1);
          const batch = await this.entries(follower.nextIndex, to);
          if (batch.length === 0) break;
          follower.link.send({ replicate: { term: this.term, entries: batch } });
          follower.nextIndex = batch[batch.length - 1]!.index + 1;
        }
      } finally {
        follower.sending = false;
      }
    })();
  }

  // --- follower side ---------------------------------------------------------

  private acceptTerm(term: number): boolean {
    if (term < this.term) return false;
    if (term > this.term && this.leader) this.stepDown(`a leader with term ${term} exists`);
    this.term = term;
    return true;
  }

  private async onProbe(link: PeerLink, probe: { term: Long; reset: boolean }): Promise<void> {
    if (!this.acceptTerm(toNumber(probe.term))) return;
    if (probe.reset) {
      await this.durable;
      this.o.log.warn({ lastIndex: this.last.index }, 'dropping a diverged log to take the leader\'s');
      this.recent.clear();
      this.last = { index: 0, term: 0 };
      await this.kv.deleteRange(Buffer.of(0), Buffer.of(0xff));
    }
    await this.durable;
    link.send({ replicateAck: { lastIndex: this.last.index, lastTerm: this.last.term } });
  }

  private async onEntries(link: PeerLink, batch: { term: Long; entries: Array<{ index: Long; term: Long; ops: Array<{ key: Uint8Array; value: Uint8Array; delete: boolean }> }> }): Promise<void> {
    if (!this.acceptTerm(toNumber(batch.term)) || this.leader) return;
    for (const raw of batch.entries) {
      const index = toNumber(raw.index);
      if (index <= this.last.index) continue;
      if (index !== this.last.index + 1) break;
      this.applyLocally({ index, term: toNumber(raw.term), ops: raw.ops });
    }
    await this.durable;
    link.send({ replicateAck: { lastIndex: this.last.index, lastTerm: this.last.term } });
  }
}

