// The driver of the replication core (raft.ts) on a real process: RocksDB for
// the log, the hard state and the state machine's own keys (one KvStore, so
// one ordered, group-committed write stream), fsync by policy, a timer for
// the core's clock, and a send function for peer messages. It does for every
// Output what the simulator does (test/simulation/cluster.ts): write, make
// durable, then send and apply, in the order the outputs were taken.
import { EventEmitter } from 'node:events';
import { open as openFile, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import { metrics } from '../observability/http.js';
import type { KvStore, KvWrite } from '../store/kv-store.js';
import {
  DEFAULT_RAFT_CONFIG, RaftNode, type Entry, type HardState, type Message, type NodeId, type Output, type RaftConfig, type Restored, type Snapshot,
} from './raft.js';

/** What a replicated log's owner keeps: the state machine over its committed entries. */
export interface LogStateMachine {
  /** Applies committed entries in order and returns the writes that record them. Must be idempotent per entry. */
  apply(entries: Entry[]): KvWrite[];
  /** The state machine as of now, to stand for the compacted prefix of the log. */
  snapshot(): Uint8Array;
  /** Replaces the state machine with a snapshot's; returns the writes that do it on disk. */
  restore(data: Uint8Array): KvWrite[];
}

/**
 * When a write counts as durable. always: the write-ahead log is fsynced
 * before anything that depends on it leaves the process (acks, votes,
 * replies), so even a power loss of every replica loses nothing committed.
 * batch: fsynced at most every intervalMs; a process crash loses nothing (the
 * OS holds the data), a power loss of a majority within one interval can.
 */
export type FsyncPolicy = { mode: 'always' } | { mode: 'batch'; intervalMs: number };

export interface ReplicatedLogOptions {
  /** Key prefix of this log in the store, and its name in logs and metrics. */
  name: string;
  self: NodeId;
  voters: NodeId[];
  kv: KvStore;
  /** The RocksDB directory, to fsync its write-ahead log. */
  dataDir: string;
  stateMachine: LogStateMachine;
  send(message: Message): void;
  log: Logger;
  fsync?: FsyncPolicy;
  config?: RaftConfig;
}

const commitLatency = new Histogram({
  name: 'groupchat_log_commit_seconds', help: 'From proposal to commit of a log entry, on its leader',
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2], registers: [metrics],
});
const fsyncs = new Counter({ name: 'groupchat_log_fsync_total', help: 'fdatasync calls on the write-ahead log', registers: [metrics] });
const leaderChanges = new Counter({ name: 'groupchat_log_leader_changes_total', help: 'Times this replica became or stopped being leader', labelNames: ['log', 'to'], registers: [metrics] });
const termGauge = new Gauge({ name: 'groupchat_log_term', help: 'The current term of the replicated log', labelNames: ['log'], registers: [metrics] });
const lagGauge = new Gauge({ name: 'groupchat_log_apply_lag_entries', help: 'Entries in the log not yet applied here', labelNames: ['log'], registers: [metrics] });
const damagedStarts = new Counter({ name: 'groupchat_log_damaged_starts_total', help: 'Starts that found the log damaged (the replica then catches up from the leader before it votes)', labelNames: ['log'], registers: [metrics] });
const logEntries = new Gauge({ name: 'groupchat_log_entries', help: 'Entries in the log after its snapshot', labelNames: ['log'], registers: [metrics] });

const HARD = 'h';
const SNAP = 's';
const APPLIED = 'a';
const ENTRY = 'l';

export class ReplicatedLog extends EventEmitter<{ leadership: [boolean]; applied: [Entry[]] }> {
  readonly raft: RaftNode;
  private tail: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private readonly syncer: WalSyncer | null;
  private readonly proposedAt = new Map<number, number>();
  private wasLeader = false;
  /** The last entry the state machine applied (the core counts entries as applied once handed out, before they are). */
  private machineApplied: number;
  private closed = false;
  private failure: Error | null = null;

  private constructor(private readonly o: ReplicatedLogOptions, restored: Restored) {
    super();
    const config = o.config ?? DEFAULT_RAFT_CONFIG;
    this.raft = new RaftNode(o.self, o.voters, config, Math.random, restored, performance.now());
    this.machineApplied = restored.applied;
    const fsync = o.fsync ?? { mode: 'always' };
    this.syncer = new WalSyncer(o.kv, o.dataDir, fsync.mode === 'batch' ? fsync.intervalMs : 0, (err) => this.fail(err));
    this.timer = setInterval(() => this.tick(), Math.max(5, Math.floor(config.heartbeatMs / 2)));
    this.timer.unref();
    termGauge.set({ log: o.name }, this.raft.term);
  }

  /** Opens the log under its prefix in kv: hard state, snapshot, entries, and how far the state machine got. */
  static async open(o: ReplicatedLogOptions): Promise<ReplicatedLog> {
    const key = keys(o.name);
    const hard = await o.kv.get(key.meta(HARD));
    const snap = await o.kv.get(key.meta(SNAP));
    const applied = await o.kv.get(key.meta(APPLIED));
    const hardState: HardState = hard ? JSON.parse(hard.toString()) as HardState : { term: 0, votedFor: null };
    const snapshot: Snapshot = snap ? decodeSnapshot(snap) : { index: 0, term: 0, data: new Uint8Array() };
    const rows = await o.kv.range(key.entry(snapshot.index + 1), key.entry(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
    const entries: Entry[] = [];
    let damaged = false;
    for (const row of rows) {
      const expected = (entries.length ? entries[entries.length - 1]!.index : snapshot.index) + 1;
      const entry = row.value.length >= 16 ? decodeEntry(row.value) : null;
      if (entry?.index !== expected) {
        // A hole or a damaged entry: serve nothing past it, and take the rest from the leader. Entries
        // this replica acknowledged may be among those dropped, so until it has caught up it neither
        // votes nor campaigns (raft.ts, Restored.damaged), and it records that before anything else.
        o.log.error({ log: o.name, expected, found: entry?.index ?? `${row.value.length} bytes` },
          'log damaged at this entry: ignoring it and every entry after it; this replica takes them from the leader and votes for nobody until it has');
        damaged = true;
        break;
      }
      entries.push(entry);
    }
    if (damaged) {
      hardState.catchingUp = true;
      await o.kv.write([{ key: key.meta(HARD), value: Buffer.from(JSON.stringify(hardState)) }]);
      damagedStarts.inc({ log: o.name });
    }
    const appliedIndex = Math.min(applied ? Number(applied.readBigUInt64BE(0)) : 0, entries.length ? entries[entries.length - 1]!.index : snapshot.index);
    o.log.info({ log: o.name, term: hardState.term, snapshot: snapshot.index, entries: entries.length, applied: appliedIndex }, 'replicated log opened');
    return new ReplicatedLog(o, { hardState, snapshot, entries, applied: Math.max(appliedIndex, snapshot.index), damaged });
  }

  /** True when this replica leads, holds its lease, and has applied every entry before its term: it may number new work. */
  get ready(): boolean {
    // After a failed write the core's clock stops with it: its lease would look current forever.
    return this.failure === null && !this.closed && this.raft.hasLease() && this.raft.leaderStartIndex > 0 && this.machineApplied >= this.raft.leaderStartIndex;
  }

  get appliedIndex(): number {
    return this.machineApplied;
  }

  /**
   * The last entry whose state-machine writes are queued in the store: a write
   * queued after reading this lands after them. appliedIndex trails it until
   * they are announced: once durable when they share a batch with log writes.
   */
  get queuedApplyIndex(): number {
    return this.raft.appliedIndex;
  }

  get leaderId(): NodeId | null {
    return this.raft.leader;
  }

  /** Appends data as a new entry; its index, or null when this replica may not (not leader, no lease). */
  propose(data: Uint8Array): number | null {
    if (this.failure) return null;
    const index = this.raft.propose(data);
    if (index !== null) {
      this.proposedAt.set(index, performance.now());
      this.raft.flush();
      this.drain();
    }
    return index;
  }

  /** A message from a peer replica. */
  receive(message: Message): void {
    if (this.closed || this.failure) return;
    this.raft.step(message);
    this.drain();
  }

  /**
   * Drops the log up to index (at most what is applied here) behind a snapshot
   * of the state machine; the state machine has already removed what
   * retention dropped.
   */
  async compact(index: number): Promise<void> {
    const upTo = Math.min(index, this.raft.appliedIndex);
    if (upTo < this.raft.firstIndex) return;
    const data = this.o.stateMachine.snapshot();
    const term = this.raft.termAt(upTo);
    this.raft.compact(upTo, data);
    const key = keys(this.o.name);
    await this.o.kv.write([{ key: key.meta(SNAP), value: encodeSnapshot({ index: upTo, term, data }) }]);
    await this.o.kv.deleteRange(key.entry(0), key.entry(upTo + 1));
    logEntries.set({ log: this.o.name }, this.raft.lastIndex - upTo);
  }

  /** Reads one entry (the room log reads history through this): from memory while the core holds it, else from disk. */
  async entry(index: number): Promise<Entry | null> {
    const held = this.raft.entryAt(index);
    if (held) return held;
    const raw = await this.o.kv.get(keys(this.o.name).entry(index));
    return raw ? decodeEntry(raw) : null;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.tail.catch(() => undefined); // its failures went to fail(), which logged them
    await this.syncer?.close();
  }

  private tick(): void {
    if (this.closed || this.failure) return;
    this.raft.tick(performance.now());
    this.drain();
  }

  /**
   * Takes the core's output and carries it out in order: write, fsync, then
   * send and announce what applied. The state machine applies committed
   * entries here, as the core hands them out, and their writes go in the
   * same RocksDB batch as the output's log writes: a follower that gets
   * entry N+1 with the commit of N writes both at once. Only log writes
   * (entries, hard state, snapshots) wait for an fsync; what the state
   * machine writes is rebuilt from the log after a crash.
   */
  private drain(): void {
    const output = this.raft.take();
    this.noteLeadership();
    if (isEmpty(output)) return;
    const logWrites = this.logWrites(output);
    const applyWrites = output.committed.length > 0 ? this.applyWrites(output.committed) : [];
    let durable: Promise<void> = Promise.resolve();
    if (logWrites.length > 0) durable = this.o.kv.write([...logWrites, ...applyWrites]).then(() => this.syncer?.sync());
    else if (applyWrites.length > 0) this.o.kv.write(applyWrites).catch((err: Error) => this.fail(err));
    this.tail = Promise.all([this.tail, durable]).then(() => {
      if (this.closed) return;
      for (const message of output.messages) this.o.send(message);
      if (output.committed.length > 0) this.announceApplied(output.committed);
    }).catch((err: Error) => this.fail(err));
  }

  /** The state machine's writes for committed entries, and how far it got. */
  private applyWrites(entries: Entry[]): KvWrite[] {
    const appliedAt = Buffer.alloc(8);
    appliedAt.writeBigUInt64BE(BigInt(entries[entries.length - 1]!.index));
    return [...this.o.stateMachine.apply(entries), { key: keys(this.o.name).meta(APPLIED), value: appliedAt }];
  }

  private announceApplied(entries: Entry[]): void {
    const now = performance.now();
    for (const e of entries) {
      const at = this.proposedAt.get(e.index);
      if (at !== undefined) { commitLatency.observe((now - at) / 1000); this.proposedAt.delete(e.index); }
    }
    const last = entries[entries.length - 1]!.index;
    this.machineApplied = last;
    lagGauge.set({ log: this.o.name }, this.raft.lastIndex - last);
    this.emit('applied', entries);
  }

  private logWrites(o: Output): KvWrite[] {
    const key = keys(this.o.name);
    const writes: KvWrite[] = [];
    if (o.hardState) {
      writes.push({ key: key.meta(HARD), value: Buffer.from(JSON.stringify(o.hardState)) });
      termGauge.set({ log: this.o.name }, o.hardState.term);
    }
    if (o.restore) {
      // Removing the old log is part of the same atomic batch as the snapshot
      // that replaces it, so a crash sees one or the other.
      writes.push({ key: key.entry(0), rangeEnd: key.entry(Number.MAX_SAFE_INTEGER), delete: true });
      writes.push({ key: key.meta(SNAP), value: encodeSnapshot(o.restore) });
      writes.push(...this.o.stateMachine.restore(o.restore.data));
      this.machineApplied = o.restore.index; // the machine now stands for everything up to the snapshot
      const appliedAt = Buffer.alloc(8);
      appliedAt.writeBigUInt64BE(BigInt(o.restore.index));
      writes.push({ key: key.meta(APPLIED), value: appliedAt });
      this.o.log.warn({ log: this.o.name, index: o.restore.index }, 'restored a snapshot from the leader');
    }
    if (o.truncateFrom !== null) {
      writes.push({ key: key.entry(o.truncateFrom), rangeEnd: key.entry(Number.MAX_SAFE_INTEGER), delete: true });
      this.o.log.warn({ log: this.o.name, from: o.truncateFrom }, 'dropping a diverged log tail to take the leader\'s');
    }
    for (const e of o.append) writes.push({ key: key.entry(e.index), value: encodeEntry(e) });
    if (o.append.length || o.restore) logEntries.set({ log: this.o.name }, this.raft.lastIndex - this.raft.firstIndex + 1);
    return writes;
  }

  private noteLeadership(): void {
    const leader = this.raft.role === 'leader';
    if (leader === this.wasLeader) return;
    this.wasLeader = leader;
    leaderChanges.inc({ log: this.o.name, to: leader ? 'leader' : 'follower' });
    this.o.log.info({ log: this.o.name, term: this.raft.term, leader }, leader ? 'became leader' : 'no longer leader');
    if (!leader) this.proposedAt.clear();
    this.emit('leadership', leader);
  }

  /** A failed write leaves the log in an unknown state: stop taking part rather than answer from it. */
  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.o.log.error({ log: this.o.name, err: err.message }, 'replicated log write failed; this replica stops taking part');
  }
}

function isEmpty(o: Output): boolean {
  return !o.hardState && !o.restore && o.truncateFrom === null && o.append.length === 0 && o.messages.length === 0 && o.committed.length === 0;
}

/** Keys of one log: "<name>/<kind>" for metadata, "<name>/l" + 8-byte big-endian index for entries (ordered). */
function keys(name: string) {
  const prefix = Buffer.from(`${name}/`);
  return {
    meta: (kind: string) => Buffer.concat([prefix, Buffer.from(kind)]),
    entry: (index: number) => {
      const key = Buffer.alloc(prefix.length + 9);
      prefix.copy(key);
      key[prefix.length] = ENTRY.charCodeAt(0);
      key.writeBigUInt64BE(BigInt(index), prefix.length + 1);
      return key;
    },
  };
}

function encodeEntry(e: Entry): Buffer {
  const out = Buffer.alloc(16 + e.data.length);
  out.writeBigUInt64BE(BigInt(e.index), 0);
  out.writeBigUInt64BE(BigInt(e.term), 8);
  out.set(e.data, 16);
  return out;
}

function decodeEntry(raw: Buffer): Entry {
  if (raw.length < 16) throw new Error(`a log entry of ${raw.length} bytes is shorter than its header`);
  return { index: Number(raw.readBigUInt64BE(0)), term: Number(raw.readBigUInt64BE(8)), data: raw.subarray(16) };
}

function encodeSnapshot(s: Snapshot): Buffer {
  return encodeEntry({ index: s.index, term: s.term, data: s.data });
}

function decodeSnapshot(raw: Buffer): Snapshot {
  return decodeEntry(raw);
}

/**
 * fdatasync of RocksDB's current write-ahead log file. sync() resolves once a
 * sync that started after the call finished, so every write completed before
 * the call is on disk; concurrent callers share one fdatasync (group commit).
 * With an interval, sync() resolves at once and a timer syncs in the
 * background, one sync at a time; a failed one goes to onError.
 */
export class WalSyncer {
  private file: { path: string; handle: FileHandle } | null = null;
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout | null;

  constructor(
    private readonly kv: KvStore,
    private readonly dir: string,
    intervalMs: number,
    onError: (err: Error) => void,
    /** Syncs a log file this syncer held no handle for (a test records them). */
    private readonly syncFile: (path: string) => Promise<void> = datasyncFile,
  ) {
    this.timer = intervalMs > 0 ? setInterval(() => {
      if (!this.running) this.running = this.syncNow().catch(onError).finally(() => { this.running = null; });
    }, intervalMs) : null;
    this.timer?.unref();
  }

  sync(): Promise<void> {
    if (this.timer) return Promise.resolve();
    if (!this.running) return (this.running = this.syncNow().finally(() => { this.running = null; }));
    // One is under way and may have started before our write: queue one more after it.
    this.next ??= this.running.then(() => {
      this.next = null;
      return this.sync();
    });
    return this.next;
  }

  private async syncNow(): Promise<void> {
    const wal = await this.kv.currentWalFile();
    const path = join(this.dir, wal);
    if (this.file?.path !== path) {
      // The log file rotated: what was written to the old one before it is synced too, and to any
      // file between them (two rotations between syncs: RocksDB does not sync a file it closes).
      if (this.file) {
        await this.file.handle.datasync();
        await this.file.handle.close();
        for (const skipped of await walFilesBetween(this.dir, this.file.path, path)) await this.syncFile(skipped);
      }
      this.file = { path, handle: await openFile(path, 'r') };
    }
    await this.file.handle.datasync();
    fsyncs.inc();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined); // a failed sync failed its write, which fail() logged
    await this.file?.handle.close();
    this.file = null;
  }
}

/** RocksDB's write-ahead log files (<number>.log) numbered after `from` and before `to`, oldest first. */
async function walFilesBetween(dir: string, from: string, to: string): Promise<string[]> {
  const number = (path: string) => Number(/(\d+)\.log$/.exec(path)?.[1] ?? Number.NaN);
  const [low, high] = [number(from), number(to)];
  return (await readdir(dir)).map((name) => ({ name, n: number(name) })).filter(({ n }) => n > low && n < high)
    .sort((a, b) => a.n - b.n).map(({ name }) => join(dir, name));
}

/** fdatasync of a file by its path. One RocksDB already removed was flushed into a table file, which RocksDB syncs. */
async function datasyncFile(path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await openFile(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
