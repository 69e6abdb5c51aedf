// A deterministic simulator for the replication core (workloads/replication/raft.ts):
// one seeded random source drives an in-memory network (delay, loss,
// duplication, reordering, partitions), disks (writes become durable after a
// delay; a crash loses what was not yet durable), clocks, crashes, restarts
// and log compaction. The real RaftNode runs unchanged; this file plays its
// driver exactly as the broker's does (write, then send, then apply).
// After every event the checkers below run; a violation names its seed, and
// the same seed replays the same schedule.
import {
  RaftNode, type Entry, type HardState, type Message, type Output, type RaftConfig, type Snapshot,
} from '../../workloads/replication/raft.js';

export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }
  /** xorshift32: fast, and the same sequence for a seed on every machine. */
  next(): number {
    let x = this.state;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.state = x;
    return x / 0x100000000;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export interface Faults {
  loss: number;
  duplicate: number;
  maxDelayMs: number;
  maxDiskMs: number;
  crashEveryMs: number;
  /** Chance that a crashed replica restarts with the tail of its log damaged. */
  damage: number;
  partitionEveryMs: number;
  compactEveryMs: number;
}

export interface SimulationOptions {
  seed: number;
  nodes: number;
  durationMs: number;
  faults: Faults;
  config: RaftConfig;
}

export const SIM_CONFIG: RaftConfig = { electionMs: 100, heartbeatMs: 10, leaseMs: 70, maxBatch: 8, maxBatchBytes: 24, maxInflight: 32 };

export function defaultOptions(seed: number): SimulationOptions {
  const r = new Random(seed * 7919 + 1);
  return {
    seed,
    nodes: r.chance(0.5) ? 3 : 5,
    durationMs: 800,
    faults: {
      loss: r.next() * 0.2,
      duplicate: r.next() * 0.05,
      maxDelayMs: r.int(1, 30),
      maxDiskMs: r.int(0, 15),
      crashEveryMs: r.int(40, 250),
      damage: r.next() * 0.3,
      partitionEveryMs: r.int(50, 300),
      compactEveryMs: r.int(50, 400),
    },
    config: SIM_CONFIG,
  };
}

/** What survives a crash. */
interface Disk {
  hardState: HardState;
  snapshot: Snapshot;
  log: Entry[];
  /** The state machine: a digest of every applied entry, in order, and how far it got. */
  applied: number;
  digest: string;
}

interface SimNode {
  id: string;
  raft: RaftNode | null;
  disk: Disk;
  /** Outputs taken but not yet durable, oldest first. */
  writing: Array<{ output: Output; doneAt: number }>;
  /** Down, and to restart with its log's tail damaged. */
  damagePending?: boolean;
}

interface Event { at: number; order: number; run: () => void }

export class InvariantViolation extends Error {}

export class Simulation {
  private readonly r: Random;
  readonly nodes: SimNode[] = [];
  private readonly queue: Event[] = [];
  private order = 0;
  now = 0;
  private cut = new Set<string>();
  /** index → "term:data" of every entry any replica applied. */
  private readonly committed = new Map<number, string>();
  private readonly leaderOfTerm = new Map<number, string>();
  private proposals = 0;
  stats = { events: 0, elections: 0, committed: 0, crashes: 0, damaged: 0, partitions: 0, snapshotsSent: 0 };

  constructor(private readonly o: SimulationOptions) {
    this.r = new Random(o.seed);
    for (let i = 0; i < o.nodes; i++) {
      this.nodes.push({ id: `n${i}`, raft: null, writing: [], disk: {
        hardState: { term: 0, votedFor: null }, snapshot: { index: 0, term: 0, data: new Uint8Array() }, log: [], applied: 0, digest: '',
      } });
    }
    for (const node of this.nodes) this.start(node);
  }

  /** Runs the faulty phase, then heals everything and checks that the replicas converge and make progress. */
  run(): void {
    const f = this.o.faults;
    this.every(10, () => { for (const n of this.nodes) if (n.raft) { n.raft.tick(this.now); this.flushOutput(n); } });
    this.every(7, () => this.proposeSome());
    this.every(f.crashEveryMs, () => this.crashOne(), true);
    this.every(f.partitionEveryMs, () => this.repartition(), true);
    this.every(f.compactEveryMs, () => this.compactOne());
    this.runUntil(this.o.durationMs);
    // Heal: every replica up, the network whole and reliable.
    this.healed = true;
    this.cut.clear();
    for (const n of this.nodes) if (!n.raft) this.start(n);
    const before = this.stats.committed;
    this.runUntil(this.now + 8 * this.o.config.electionMs);
    // Then quiet, so every replica can catch up with the last entry.
    this.quiet = true;
    this.runUntil(this.now + 3 * this.o.config.electionMs);
    this.checkConverged(before);
  }

  private healed = false;
  private quiet = false;

  private every(ms: number, fn: () => void, faultOnly = false): void {
    const step = () => {
      if (!(faultOnly && this.healed)) fn();
      this.at(this.now + ms, step);
    };
    this.at(this.now + ms, step);
  }

  private at(time: number, run: () => void): void {
    const event = { at: time, order: this.order++, run };
    // A binary heap keyed by (time, order): deterministic for equal times.
    const q = this.queue;
    q.push(event);
    let i = q.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (before(q[parent]!, event)) break;
      q[i] = q[parent]!;
      i = parent;
    }
    q[i] = event;
  }

  private pop(): Event | undefined {
    const q = this.queue;
    const top = q[0];
    const last = q.pop()!;
    if (q.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = last;
      let at = -1;
      if (l < q.length && before(q[l]!, smallest)) { smallest = q[l]!; at = l; }
      if (r < q.length && before(q[r]!, smallest)) { smallest = q[r]!; at = r; }
      if (at < 0) break;
      q[i] = smallest;
      i = at;
    }
    q[i] = last;
    return top;
  }

  private runUntil(time: number): void {
    while (this.queue.length > 0 && this.queue[0]!.at <= time) {
      const event = this.pop()!;
      this.now = event.at;
      event.run();
      this.stats.events++;
      this.check();
    }
    this.now = time;
  }

  // --- the driver, as in the broker: write, then send and apply --------------

  private start(node: SimNode, damaged = false): void {
    const d = node.disk;
    node.raft = new RaftNode(node.id, this.nodes.map((n) => n.id), this.o.config, () => this.r.next(), {
      hardState: { ...d.hardState }, snapshot: d.snapshot, entries: d.log.map((e) => ({ ...e })), applied: d.applied, damaged,
    }, this.now);
    node.writing = [];
  }

  private flushOutput(node: SimNode): void {
    const raft = node.raft!;
    const output = raft.take();
    if (!output.hardState && !output.restore && output.truncateFrom === null && output.append.length === 0
      && output.messages.length === 0 && output.committed.length === 0) return;
    const previous = node.writing.length ? node.writing[node.writing.length - 1]!.doneAt : this.now;
    const doneAt = Math.max(previous, this.now + this.r.int(0, this.o.faults.maxDiskMs));
    const entry = { output, doneAt };
    node.writing.push(entry);
    this.at(doneAt, () => {
      if (node.writing[0] !== entry) return; // crashed meanwhile: lost with the process
      node.writing.shift();
      this.persist(node, output);
      for (const m of output.messages) this.send(m);
      this.apply(node, output.committed);
    });
  }

  private persist(node: SimNode, o: Output): void {
    const d = node.disk;
    if (o.hardState) d.hardState = { ...o.hardState };
    if (o.restore) {
      d.snapshot = o.restore;
      d.log = [];
      d.applied = o.restore.index;
      d.digest = new TextDecoder().decode(o.restore.data);
      this.stats.snapshotsSent++;
    }
    if (o.truncateFrom !== null) d.log = d.log.filter((e) => e.index < o.truncateFrom!);
    for (const e of o.append) {
      if (d.log.length && d.log[d.log.length - 1]!.index !== e.index - 1) {
        throw new InvariantViolation(`${node.id}: appended entry ${e.index} does not continue the log at ${d.log[d.log.length - 1]!.index}`);
      }
      if (!d.log.length && e.index !== d.snapshot.index + 1) {
        throw new InvariantViolation(`${node.id}: appended entry ${e.index} does not follow the snapshot at ${d.snapshot.index}`);
      }
      d.log.push(e);
    }
  }

  private apply(node: SimNode, entries: Entry[]): void {
    const d = node.disk;
    for (const e of entries) {
      if (e.index <= d.applied) continue; // covered by a snapshot restored meanwhile
      if (e.index !== d.applied + 1) throw new InvariantViolation(`${node.id} applied entry ${e.index} after ${d.applied}`);
      const value = `${e.term}:${new TextDecoder().decode(e.data)}`;
      const known = this.committed.get(e.index);
      if (known === undefined) {
        this.committed.set(e.index, value);
        this.stats.committed++;
      } else if (known !== value) {
        throw new InvariantViolation(`two different entries committed at index ${e.index}: ${known} and ${value} (${node.id})`);
      }
      d.applied = e.index;
      d.digest = digest(d.digest, value);
    }
  }

  private send(m: Message): void {
    const faulty = !this.healed;
    if (faulty && (this.cut.has(`${m.from}>${m.to}`) || this.r.chance(this.o.faults.loss))) return;
    const copies = faulty && this.r.chance(this.o.faults.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.at(this.now + this.r.int(1, faulty ? this.o.faults.maxDelayMs : 3), () => {
        const node = this.nodes.find((n) => n.id === m.to)!;
        if (!node.raft) return;
        node.raft.step(m);
        this.flushOutput(node);
      });
    }
  }

  // --- workload and faults ------------------------------------------------------

  private proposeSome(): void {
    if (this.quiet) return;
    for (const node of this.nodes) {
      const raft = node.raft;
      if (!raft || raft.role !== 'leader') continue;
      const count = this.r.int(0, 3);
      for (let i = 0; i < count; i++) raft.propose(new TextEncoder().encode(`p${++this.proposals}`));
      raft.flush();
      this.flushOutput(node);
    }
  }

  private crashOne(): void {
    const up = this.nodes.filter((n) => n.raft);
    const victim = up[this.r.int(0, up.length - 1)];
    if (!victim) return;
    victim.raft = null;
    victim.writing = []; // not yet durable: lost
    this.stats.crashes++;
    // Sometimes the restart finds the log's tail damaged (one replica at a time, what a majority tolerates):
    // it restarts with what precedes the damage, acknowledged entries included.
    const damage = this.r.chance(this.o.faults.damage) && !this.nodes.some((n) => n.damagePending || n.disk.hardState.catchingUp);
    if (damage) victim.damagePending = true;
    this.at(this.now + this.r.int(1, 3 * this.o.config.electionMs), () => {
      if (victim.raft) return;
      if (!victim.damagePending) return this.start(victim);
      victim.damagePending = false;
      const d = victim.disk;
      const keepAbove = Math.max(d.snapshot.index, d.applied);
      const last = d.log.length ? d.log[d.log.length - 1]!.index : d.snapshot.index;
      if (last <= keepAbove) return this.start(victim);
      const from = this.r.int(keepAbove + 1, last);
      d.log = d.log.filter((e) => e.index < from);
      // The driver records the damage before the replica runs (replicated-log.ts), so a crash cannot forget it.
      d.hardState = { ...d.hardState, catchingUp: true };
      this.stats.damaged++;
      this.start(victim, true);
    });
  }

  private repartition(): void {
    this.cut.clear();
    if (this.r.chance(0.3)) return;
    this.stats.partitions++;
    const side = new Set(this.nodes.filter(() => this.r.chance(0.5)).map((n) => n.id));
    for (const a of this.nodes) for (const b of this.nodes) {
      if (side.has(a.id) !== side.has(b.id) && (this.r.chance(0.8))) this.cut.add(`${a.id}>${b.id}`);
    }
  }

  private compactOne(): void {
    const node = this.nodes[this.r.int(0, this.nodes.length - 1)]!;
    const raft = node.raft;
    // Compaction covers what is applied and durable (the driver compacts its own state).
    if (!raft || node.writing.length > 0 || node.disk.applied <= node.disk.snapshot.index) return;
    const index = node.disk.applied;
    const data = new TextEncoder().encode(node.disk.digest);
    raft.compact(index, data);
    node.disk.snapshot = { index, term: termOf(node.disk, index), data };
    node.disk.log = node.disk.log.filter((e) => e.index > index);
  }

  // --- checkers --------------------------------------------------------------

  private check(): void {
    let leasesHeld = 0;
    for (const node of this.nodes) {
      const raft = node.raft;
      if (!raft) continue;
      if (raft.role === 'leader') {
        const holder = this.leaderOfTerm.get(raft.term);
        if (holder === undefined) { this.leaderOfTerm.set(raft.term, node.id); this.stats.elections++; }
        else if (holder !== node.id) throw new InvariantViolation(`two leaders in term ${raft.term}: ${holder} and ${node.id}`);
        if (raft.hasLease()) leasesHeld++;
      }
    }
    if (leasesHeld > 1) throw new InvariantViolation(`${leasesHeld} replicas hold a leader lease at ${this.now} ms`);
    this.checkDurable(this.committed.size);
  }

  /** A committed entry stays on the disks (log or snapshot) of a majority: nothing committed can be lost. */
  private checkDurable(index: number): void {
    if (index === 0) return;
    const value = this.committed.get(index)!;
    const term = Number(value.slice(0, value.indexOf(':')));
    const holders = this.nodes.filter((n) => n.disk.snapshot.index >= index || termOf(n.disk, index) === term).length;
    // A replica whose log was damaged lost what it held (beyond Raft's model): tolerated for one replica,
    // which votes for nobody until it has caught up.
    const damaged = this.nodes.filter((n) => n.damagePending || n.disk.hardState.catchingUp).length;
    if (holders + damaged < Math.floor(this.nodes.length / 2) + 1) {
      throw new InvariantViolation(`committed entry ${index} is durable on only ${holders} of ${this.nodes.length} replicas`);
    }
  }

  private checkConverged(committedBefore: number): void {
    for (let i = 1; i <= this.committed.size; i++) {
      if (!this.committed.has(i)) throw new InvariantViolation(`entry ${i} was never committed while later ones were`);
      this.checkDurable(i);
    }
    const leaders = this.nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length !== 1) throw new InvariantViolation(`after healing, ${leaders.length} leaders instead of 1`);
    if (this.stats.committed <= committedBefore) throw new InvariantViolation('after healing, nothing more was committed');
    const applied = new Set(this.nodes.map((n) => `${n.disk.applied}/${n.disk.digest}`));
    if (applied.size !== 1) {
      throw new InvariantViolation(`after healing the replicas disagree: ${this.nodes.map((n) => `${n.id} applied ${n.disk.applied}`).join(', ')}`);
    }
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

function termOf(disk: Disk, index: number): number {
  if (index === disk.snapshot.index) return disk.snapshot.term;
  const first = disk.log.length ? disk.log[0]!.index : disk.snapshot.index + 1;
  return disk.log[index - first]?.term ?? -1;
}

/** A short running digest of the applied sequence (FNV-1a over the previous digest and the entry). */
function digest(previous: string, value: string): string {
  let h = 0x811c9dc5;
  for (const s of [previous, value]) for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16);
}

export interface SeedResult { seed: number; ok: boolean; error?: string; stats: Simulation['stats'] }

export function simulate(seed: number): SeedResult {
  const sim = new Simulation(defaultOptions(seed));
  try {
    sim.run();
    return { seed, ok: true, stats: sim.stats };
  } catch (err) {
    return { seed, ok: false, error: `${(err as Error).message} (at ${sim.now} ms)`, stats: sim.stats };
  }
}
