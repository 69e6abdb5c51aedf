// A key-value store replicated by the Raft core (workloads/replication), for
// the roles that hold hard state (pi, xiu). Every write is one log entry (a
// StoreEntry of key-value ops); it counts as done once a majority of the
// partition's replicas have it on disk and the leader has applied it, in one
// RocksDB batch with the log's applied index. The replicas elect the leader
// among themselves, so nothing here asks the registry.
//
// The data lives in RocksDB, not in the log, so the log is compacted whenever
// it grows past its limits and its snapshot names no state: a replica that
// receives it (it was too far behind, or its data directory was wiped) clears
// its data and copies the data range, page by page, from a replica that has
// applied at least as much as the snapshot stands for, then re-applies every
// entry it holds after the snapshot. Every op is a blind put or delete, so
// re-applying entries over pages read at later positions converges to the
// state at the newest one; until the copy is done the replica may not lead.
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import type { Logger } from '../observability/logger.js';
import { peer } from '../protocol/index.js';
import type { Entry, Message, NodeId } from '../replication/raft.js';
import { ReplicatedLog, type LogStateMachine } from '../replication/replicated-log.js';
import { KvStore, type KvWrite } from './kv-store.js';
import { readU64, u64 } from './keys.js';

export class StoreUnavailable extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** One op of a store write: a put, or with delete a removal of the key. */
export type StoreOp = Omit<KvWrite, 'rangeEnd'>;

/** One page of a copy: keys after afterKey, from a replica that applied at least minApplied. */
export interface CopyRequest { afterKey: Uint8Array; minApplied: number }
export interface CopyReply { ok: boolean; rows: Array<{ key: Uint8Array; value: Uint8Array }>; done: boolean; message: string }

/** When the log is compacted, and how much of its newest part stays for followers a little behind. */
export interface CompactionLimits { maxEntries: number; maxBytes: number; keepEntries: number; keepBytes: number; intervalMs: number }

export const DEFAULT_COMPACTION: CompactionLimits = {
  maxEntries: 4096, maxBytes: 32 << 20, keepEntries: 1024, keepBytes: 8 << 20, intervalMs: 5000,
};

export interface ReplicatedStoreOptions {
  /** This replica's voter id, and every voter of the partition ("<role>-<partition>-<replica>"). */
  self: NodeId;
  voters: NodeId[];
  dataDir: string;
  log: Logger;
  /** Sends a replication message to another voter (a lost one is the core's to repeat). */
  send(message: Message): void;
  /** Asks another voter for one page of its data. */
  copyFrom(voter: NodeId, request: CopyRequest): Promise<CopyReply>;
  compaction?: CompactionLimits;
}

const DATA_START = Buffer.from('d');
const DATA_END = Buffer.from('e');
/** Present while this replica's data is being copied; its value is the copy's min_applied. */
const COPYING = Buffer.from('copy');
const COPY_PAGE_ROWS = 256;
const COPY_PAGE_BYTES = 512 * 1024;
const COPY_RETRY_MS = 200;
const LEADERSHIP_CHECK_MS = 50;

const dataKey = (key: Uint8Array) => Buffer.concat([DATA_START, key]);

/** The log's state machine: entries' ops onto the data range, and the copy marker on a snapshot. */
class StoreStateMachine implements LogStateMachine {
  /** The min_applied of the copy under way, or 0 when this replica's data is complete. */
  copyingFor = 0;
  /** Called when a snapshot replaced the data: a copy must start. */
  onRestore: () => void = () => undefined;

  constructor(private readonly appliedIndex: () => number) {}

  apply(entries: Entry[]): KvWrite[] {
    const writes: KvWrite[] = [];
    for (const entry of entries) {
      if (entry.data.length === 0) continue; // a new leader's no-op
      for (const op of peer.StoreEntry.decode(entry.data).ops) {
        const key = dataKey(op.key ?? new Uint8Array());
        writes.push(op.delete ? { key, delete: true } : { key, value: op.value ?? new Uint8Array() });
      }
    }
    return writes;
  }

  /** The state is the data range in RocksDB; the snapshot only says how far a copy's source must have applied. */
  snapshot(): Uint8Array {
    return u64(this.appliedIndex());
  }

  restore(data: Uint8Array): KvWrite[] {
    this.copyingFor = Math.max(1, readU64(Buffer.from(data)));
    queueMicrotask(() => this.onRestore());
    return [{ key: DATA_START, rangeEnd: DATA_END, delete: true }, { key: COPYING, value: u64(this.copyingFor) }];
  }
}

interface Waiter { term: number; resolve: () => void; reject: (err: Error) => void }
interface Caller { resolve: () => void; reject: (err: Error) => void }

/**
 * Bytes of ops per log entry, beyond which the next call's ops start another
 * entry: an entry stays inside the raft's append bound and a peer frame
 * (1 MiB) with the largest payload (64 KiB).
 */
const MAX_ENTRY_BYTES = 256 * 1024;
/** What an op costs in an entry beyond its key and value, about. */
const OP_OVERHEAD_BYTES = 16;

export class ReplicatedStore extends EventEmitter<{ leadership: [boolean] }> {
  /** True from when this replica became a serving leader (everything before its term applied) until it lost leadership. */
  leading = false;
  private leadingTerm = 0;
  private readonly waiters = new Map<number, Waiter>();
  /** Calls of this event-loop turn, appended together at its end: one log entry (a write, an fsync, a round trip on each replica) for all of them. */
  private turn: Array<{ ops: StoreOp[]; callers: Caller[]; bytes: number }> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private copyGeneration = 0;
  private copySourceTurn = 0;
  private compacting = false;
  private closed = false;

  private constructor(
    private readonly kv: KvStore,
    private readonly log: ReplicatedLog,
    private readonly machine: StoreStateMachine,
    private readonly o: ReplicatedStoreOptions,
  ) {
    super();
    machine.onRestore = () => this.startCopy();
    log.on('leadership', () => this.checkLeadership());
    log.on('applied', (entries) => this.onApplied(entries));
    const compaction = o.compaction ?? DEFAULT_COMPACTION;
    this.timers.push(setInterval(() => this.checkLeadership(), LEADERSHIP_CHECK_MS));
    this.timers.push(setInterval(() => void this.compact(compaction), compaction.intervalMs));
    for (const t of this.timers) t.unref();
    if (machine.copyingFor) this.startCopy(); // a copy a restart interrupted
  }

  static async open(o: ReplicatedStoreOptions): Promise<ReplicatedStore> {
    mkdirSync(o.dataDir, { recursive: true });
    const kv = await KvStore.open(o.dataDir);
    let log: ReplicatedLog | null = null;
    const machine = new StoreStateMachine(() => log?.appliedIndex ?? 0);
    const copying = await kv.get(COPYING);
    if (copying) machine.copyingFor = readU64(copying);
    log = await ReplicatedLog.open({
      name: 'store', self: o.self, voters: o.voters, kv, dataDir: o.dataDir, stateMachine: machine,
      send: o.send, log: o.log,
    });
    return new ReplicatedStore(kv, log, machine, o);
  }

  /** True while this replica leads and holds its lease: it may answer reads and take writes. */
  get serving(): boolean {
    return this.leading && this.log.ready;
  }

  /** The voter this replica takes for the leader (itself included), or null when it knows none. */
  get leaderId(): NodeId | null {
    return this.log.leaderId;
  }

  get appliedIndex(): number {
    return this.log.appliedIndex;
  }

  /** The last entry whose writes are queued here; appliedIndex trails it while they are on their way to disk. */
  get queuedApplyIndex(): number {
    return this.log.queuedApplyIndex;
  }

  /** The first index still in the log (everything before it was compacted). */
  get firstIndex(): number {
    return this.log.raft.firstIndex;
  }

  /** True while this replica's data is being copied after a snapshot. */
  get copying(): boolean {
    return this.machine.copyingFor !== 0;
  }

  /**
   * Appends ops to the log with every other call of this event-loop turn, as
   * one entry (serving leader only; otherwise throws StoreUnavailable
   * NOT_LEADER). Settles once the entry is committed and applied here, so a
   * read after it sees the write; rejects with NOT_LEADER if leadership is
   * lost first (the entry may still be committed later: callers retry
   * idempotently). Callers compute ops synchronously from state they hold,
   * then call this; the ops of one call stay in one entry, in order.
   */
  propose(ops: StoreOp[]): Promise<void> {
    if (!this.serving) throw this.notLeader('not serving');
    if (ops.length === 0) return Promise.resolve();
    const bytes = ops.reduce((n, op) => n + op.key.length + (op.value?.length ?? 0) + OP_OVERHEAD_BYTES, 0);
    if (this.turn.length === 0) setImmediate(() => this.proposeTurn());
    let batch = this.turn[this.turn.length - 1];
    if (!batch || (batch.bytes > 0 && batch.bytes + bytes > MAX_ENTRY_BYTES)) this.turn.push(batch = { ops: [], callers: [], bytes: 0 });
    batch.ops.push(...ops);
    batch.bytes += bytes;
    return new Promise((resolve, reject) => batch.callers.push({ resolve, reject }));
  }

  private proposeTurn(): void {
    const turn = this.turn;
    this.turn = [];
    for (const { ops, callers } of turn) {
      const fail = (err: Error) => { for (const c of callers) c.reject(err); };
      if (!this.serving) {
        fail(this.notLeader('not serving'));
        continue;
      }
      const data = peer.StoreEntry.encode({ ops: ops.map((op) => ({ key: op.key, value: op.value ?? new Uint8Array(), delete: op.delete ?? false })) }).finish();
      const index = this.log.propose(data);
      if (index === null) {
        fail(this.notLeader('its lease lapsed'));
        continue;
      }
      this.waiters.set(index, { term: this.log.raft.term, resolve: () => { for (const c of callers) c.resolve(); }, reject: fail });
    }
  }

  async get(key: Uint8Array): Promise<Buffer | null> {
    return this.kv.get(dataKey(key));
  }

  async range(gte: Uint8Array, lt: Uint8Array, limit: number, reverse = false): Promise<Array<{ key: Buffer; value: Buffer }>> {
    const rows = await this.kv.range(dataKey(gte), dataKey(lt), limit, reverse);
    return rows.map((r) => ({ key: r.key.subarray(1), value: r.value }));
  }

  /** A replication message from another voter. */
  receive(message: Message): void {
    this.log.receive(message);
  }

  /** One page of this replica's data for a replica that is copying; refused while this one's own data is incomplete or behind. */
  async serveCopy(request: CopyRequest): Promise<CopyReply> {
    const refuse = (message: string): CopyReply => ({ ok: false, rows: [], done: false, message });
    if (this.copying) return refuse(`${this.o.self} is copying its own data`);
    const applied = this.log.appliedIndex;
    await this.kv.write([]); // what was applied so far is in RocksDB
    if (applied < request.minApplied) return refuse(`${this.o.self} has applied ${applied}, the copy needs ${request.minApplied}`);
    const from = request.afterKey.length === 0 ? DATA_START : Buffer.concat([dataKey(request.afterKey), Buffer.of(0)]);
    const rows = await this.kv.range(from, DATA_END, COPY_PAGE_ROWS);
    if (this.copying) return refuse(`${this.o.self} started copying its own data`);
    const page: CopyReply['rows'] = [];
    let bytes = 0;
    for (const row of rows) {
      if (page.length > 0 && bytes + row.key.length + row.value.length > COPY_PAGE_BYTES) break;
      bytes += row.key.length + row.value.length;
      page.push({ key: row.key.subarray(DATA_START.length), value: row.value });
    }
    return { ok: true, rows: page, done: page.length === rows.length && rows.length < COPY_PAGE_ROWS, message: '' };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.loseLeadership('closing');
    await this.log.close();
    // Waits for queued writes; one that failed already failed its proposal and was logged there.
    await this.kv.write([]).catch(() => undefined);
    await this.kv.close();
  }

  private notLeader(why: string): StoreUnavailable {
    return new StoreUnavailable(peer.StoreStatus.NOT_LEADER, `${this.o.self} is not the serving leader: ${why}`);
  }

  private onApplied(entries: Entry[]): void {
    const settled: Array<() => void> = [];
    for (const entry of entries) {
      const waiter = this.waiters.get(entry.index);
      if (!waiter) continue;
      this.waiters.delete(entry.index);
      // Another leader's entry at our index: ours was lost with our term.
      settled.push(entry.term === waiter.term ? waiter.resolve : () => waiter.reject(this.notLeader(`entry ${entry.index} went to term ${entry.term}`)));
    }
    // The applied writes are queued in the store: answer once they are readable.
    if (settled.length > 0) void this.kv.write([]).then(() => { for (const s of settled) s(); }, (err: Error) => this.rejectWaiters(err));
    this.checkLeadership();
  }

  /** Leading starts once the log is ready in a term and the data is complete (and readable); it ends with the term. */
  private checkLeadership(): void {
    const raft = this.log.raft;
    if (this.leadingTerm !== 0 && (raft.role !== 'leader' || raft.term !== this.leadingTerm)) this.loseLeadership(`now ${raft.role} in term ${raft.term}`);
    if (this.leadingTerm !== 0 || this.closed || !this.log.ready || this.copying) return;
    const term = raft.term;
    this.leadingTerm = term;
    void this.kv.write([]).then(() => {
      if (this.leadingTerm !== term || this.leading) return;
      this.leading = true;
      this.emit('leadership', true);
    });
  }

  private loseLeadership(reason: string): void {
    if (this.leadingTerm === 0) return;
    this.leadingTerm = 0;
    this.rejectWaiters(this.notLeader(reason));
    if (!this.leading) return;
    this.leading = false;
    this.emit('leadership', false);
  }

  private rejectWaiters(err: Error): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }

  // --- compaction and copies ------------------------------------------------

  /** Drops the log's applied prefix once the log is past its limits, keeping its newest part for followers a little behind. */
  private async compact(limits: CompactionLimits): Promise<void> {
    if (this.compacting || this.copying || this.closed) return;
    const raft = this.log.raft;
    const sizeOf = (index: number) => raft.entryAt(index)?.data.length ?? 0;
    let bytes = 0;
    for (let i = raft.firstIndex; i <= raft.lastIndex; i++) bytes += sizeOf(i);
    if (raft.lastIndex - raft.firstIndex + 1 <= limits.maxEntries && bytes <= limits.maxBytes) return;
    const applied = this.log.appliedIndex;
    let keepFrom = applied + 1;
    let kept = 0;
    while (keepFrom - 1 >= raft.firstIndex && applied - keepFrom + 1 < limits.keepEntries && kept + sizeOf(keepFrom - 1) <= limits.keepBytes) {
      keepFrom--;
      kept += sizeOf(keepFrom);
    }
    if (keepFrom - 1 < raft.firstIndex) return;
    this.compacting = true;
    try {
      await this.log.compact(keepFrom - 1);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'store log compaction failed');
    } finally {
      this.compacting = false;
    }
  }

  private startCopy(): void {
    const generation = ++this.copyGeneration;
    this.o.log.warn({ minApplied: this.machine.copyingFor }, 'copying the data from another replica (a snapshot replaced this replica\'s log)');
    void this.copy(generation).catch((err: Error) => this.o.log.error({ err: err.message }, 'store data copy failed'));
  }

  /** The leader when it is another replica, else the other voters in turn. */
  private copySource(): NodeId {
    const leader = this.log.leaderId;
    if (leader && leader !== this.o.self) return leader;
    const others = this.o.voters.filter((v) => v !== this.o.self);
    return others[this.copySourceTurn++ % others.length]!;
  }

  private async copy(generation: number): Promise<void> {
    let afterKey: Uint8Array = new Uint8Array();
    let pages = 0;
    for (;;) {
      if (generation !== this.copyGeneration || this.closed) return;
      const source = this.copySource();
      const reply = await this.o.copyFrom(source, { afterKey, minApplied: this.machine.copyingFor })
        .catch((err: Error): CopyReply => ({ ok: false, rows: [], done: false, message: err.message }));
      if (generation !== this.copyGeneration || this.closed) return;
      if (!reply.ok) {
        this.o.log.debug({ source, reason: reply.message }, 'copy page refused; asking another replica');
        await new Promise((r) => setTimeout(r, COPY_RETRY_MS));
        continue;
      }
      const writes: KvWrite[] = reply.rows.map((row) => ({ key: dataKey(row.key), value: row.value }));
      pages++;
      if (reply.done) {
        // Re-apply every entry after the snapshot over the copied pages, in the same batch that ends the copy:
        // every entry whose writes were queued before this batch, not only those announced, or a page read
        // before such an entry would land over it.
        const raft = this.log.raft;
        const held: Entry[] = [];
        for (let i = raft.firstIndex; i <= this.log.queuedApplyIndex; i++) held.push(raft.entryAt(i)!);
        writes.push(...this.machine.apply(held), { key: COPYING, delete: true });
        this.machine.copyingFor = 0;
        await this.kv.write(writes);
        this.o.log.info({ pages, reapplied: held.length }, 'data copied from another replica');
        this.checkLeadership();
        return;
      }
      await this.kv.write(writes);
      if (reply.rows.length > 0) afterKey = reply.rows[reply.rows.length - 1]!.key;
    }
  }
}
