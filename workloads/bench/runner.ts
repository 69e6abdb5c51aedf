// Runs one scenario on one system: starts the system, forks the load
// workers, connects the users, publishes, drains, audits, and returns the
// system's report. Every phase is bounded in time.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import {
  decodeHistogram, expectedPerRoom, newHistogram, summarize,
  type FromWorker, type LatencySummary, type PublishedSummary, type SystemName, type ToWorker, type UserSpec,
} from './common.js';
import type { Plan, PlannedUser } from './scenarios.js';
import { cpuSeconds, openFilesLimit, pssBytes, rssBytes, startSystem, type SystemHandle, type SystemProcess } from './systems.js';

export interface RunOptions {
  durationSec: number;
  /** Messages per second over all publishers; null: as fast as acks allow. */
  rate: number | null;
  payloadBytes: number;
  publishers: number;
  workers: number;
  window: number;
  maxMessages: number;
  concurrency: number;
  gateways: number;
  /** groupchat's broker partitions. */
  partitions: number;
  /** Raw pipelined proxy links instead of the Publisher SDK (groupchat only). */
  raw: boolean;
}

export interface SystemReport {
  system: SystemName;
  scenario: string;
  published: number;
  /** Published but never acknowledged (not counted in expected). */
  failed: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  publishPerSec: number;
  deliveriesPerSec: number;
  /** Publish-to-delivery (connect: connect+login+join; ingest: publish-to-ack). */
  latencyMs: LatencySummary;
  ackLatencyMs?: LatencySummary;
  /** Peak resident memory during the run, summed over the processes of each role. */
  rssMbPerRole: Record<string, number>;
  /** Proportional memory at the end of the run (shared pages divided among the processes that map them), summed per role. */
  pssMbPerRole: Record<string, number>;
  processesPerRole: Record<string, number>;
  /** CPU seconds used per role (and by the bench's own load workers) while publishing and draining, or connecting. */
  cpuSecondsPerRole: Record<string, number>;
  /** Each of the bench's load processes over the same phase (publishers: until publishing ends): near a whole core, the load, not the system, was the bottleneck. */
  loadCpu: LoadProcessCpu[];
  /** The system's CPU µs (bench workers excluded) per delivery, or per acked publish (ingest), or per connection (connect, idle). */
  serverCpuUsPerUnit?: number | undefined;
  connections?: number;
  connectionsPerSec?: number;
  bytesPerConnection?: number;
  publishSeconds: number;
  /** groupchat: proposal-to-commit latency of the room logs (bucket upper bounds), ms. */
  commitLatencyMs?: { p50: number; p99: number; max: number; count: number };
  /** Memory of the system's processes once started, before any load: the largest process by PSS, and the largest RSS. */
  idleProcessMb?: { process: string; largestPss: number; largestRss: number };
  notes: string[];
}

export interface LoadProcessCpu {
  name: string;
  cpuSeconds: number;
  /** cpuSeconds over the measured phase's wall time: 1 is a whole core. */
  coreShare: number;
}

const WORKER_PATH = fileURLToPath(new URL('./worker.js', import.meta.url));
const LOCAL_ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];

type Progress = Extract<FromWorker, { type: 'progress' }>;

class LoadWorker {
  readonly child: ChildProcess;
  progress: Progress = { type: 'progress', connected: 0, failedConnects: 0, delivered: 0, warmed: 0, published: 0, acked: 0, lastDeliveryUs: 0 };
  private readonly inbox: FromWorker[] = [];
  private readonly waiters: Array<{ type: string; resolve: (m: FromWorker) => void; reject: (e: Error) => void }> = [];
  private failure: Error | null = null;

  constructor(readonly index: number) {
    this.child = fork(WORKER_PATH, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromWorker) => {
      if (m.type === 'progress') { this.progress = m; return; }
      if (m.type === 'error') return this.fail(new Error(`load worker ${index}: ${m.message}`));
      const at = this.waiters.findIndex((w) => w.type === m.type);
      if (at >= 0) this.waiters.splice(at, 1)[0]!.resolve(m);
      else this.inbox.push(m);
    });
    this.child.once('exit', (code, signal) => this.fail(new Error(`load worker ${index} exited (${signal ?? code})`)));
  }

  send(cmd: ToWorker): void {
    this.child.send(cmd);
  }

  next<T extends FromWorker['type']>(type: T, boundMs = 600_000): Promise<Extract<FromWorker, { type: T }>> {
    const queued = this.inbox.findIndex((m) => m.type === type);
    if (queued >= 0) return Promise.resolve(this.inbox.splice(queued, 1)[0] as Extract<FromWorker, { type: T }>);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load worker ${this.index}: no ${type} within ${boundMs} ms`)), boundMs);
      this.waiters.push({
        type,
        resolve: (m) => { clearTimeout(timer); resolve(m as Extract<FromWorker, { type: T }>); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.failure ??= new Error('exiting');
    await new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      try { this.child.send({ type: 'exit' } satisfies ToWorker); } catch { this.child.kill(); }
      setTimeout(() => this.child.kill('SIGKILL'), 3000).unref();
    });
  }
}

/** Progress on stderr: a bar on a terminal, a line per phase elsewhere. */
export class ProgressView {
  private readonly bar: cliProgress.SingleBar | null;
  constructor() {
    this.bar = process.stderr.isTTY
      ? new cliProgress.SingleBar({
        format: '{system} {phase} |{bar}| {value}/{total} {info}', stream: process.stderr, hideCursor: true, clearOnComplete: false,
      }, cliProgress.Presets.shades_classic)
      : null;
  }
  phase(system: string, phase: string, total: number): void {
    if (this.bar) {
      this.bar.stop();
      this.bar.start(Math.max(1, total), 0, { system, phase, info: '' });
    } else {
      process.stderr.write(`[bench] ${system}: ${phase}\n`);
    }
  }
  update(value: number, info = ''): void {
    this.bar?.update(value, { info });
  }
  stop(): void {
    this.bar?.stop();
  }
}

class RssSampler {
  private readonly peak = new Map<number, { role: string; bytes: number }>();
  private readonly timer: NodeJS.Timeout;
  private cpuStart = new Map<number, number>();
  private startedMs = 0;
  /** Load processes whose part ended before the window did: their CPU seconds and the time then. */
  private finished = new Map<number, { cpu: number; ms: number }>();
  private cpuUsed: Record<string, number> = {};
  private loadUsed: LoadProcessCpu[] = [];
  /** The bench's own processes, counted for CPU only. */
  extra: SystemProcess[] = [];
  /** Taken before any load: the system's processes idle. */
  readonly idle: { process: string; largestPss: number; largestRss: number };
  constructor(private readonly system: SystemHandle) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 500);
    const mb = (bytes: number) => Math.round(bytes / (1 << 20) * 10) / 10;
    const measured = system.processes().map((p) => ({ name: p.name, pss: pssBytes(p.pid), rss: rssBytes(p.pid) }));
    const largest = measured.reduce((a, b) => (b.pss > a.pss ? b : a), { name: '', pss: 0, rss: 0 });
    this.idle = { process: largest.name, largestPss: mb(largest.pss), largestRss: mb(Math.max(0, ...measured.map((m) => m.rss))) };
  }
  /** Starts the CPU window. */
  markStart(): void {
    this.cpuStart = new Map([...this.system.processes(), ...this.extra].map((p) => [p.pid, cpuSeconds(p.pid)]));
    this.startedMs = performance.now();
    this.finished.clear();
  }
  /** Ends the window early for the load processes of a role (the publishers, when publishing stops and the drain begins). */
  markDone(role: string): void {
    for (const p of this.extra) if (p.role === role) this.finished.set(p.pid, { cpu: cpuSeconds(p.pid), ms: performance.now() });
  }
  /** Ends the CPU window. */
  markEnd(): void {
    const used: Record<string, number> = {};
    for (const p of [...this.system.processes(), ...this.extra]) {
      const start = this.cpuStart.get(p.pid);
      if (start === undefined) continue;
      used[p.role] = Math.round(((used[p.role] ?? 0) + cpuSeconds(p.pid) - start) * 100) / 100;
    }
    this.cpuUsed = used;
    this.loadUsed = this.extra.map((p) => {
      const end = this.finished.get(p.pid) ?? { cpu: cpuSeconds(p.pid), ms: performance.now() };
      const seconds = end.cpu - (this.cpuStart.get(p.pid) ?? 0);
      const wallSeconds = Math.max(0.001, (end.ms - this.startedMs) / 1000);
      return { name: p.name, cpuSeconds: Math.round(seconds * 100) / 100, coreShare: Math.round((seconds / wallSeconds) * 100) / 100 };
    });
  }
  get cpuSecondsPerRole(): Record<string, number> { return this.cpuUsed; }
  get loadCpu(): LoadProcessCpu[] { return this.loadUsed; }
  sample(): void {
    for (const p of this.system.processes()) {
      const bytes = rssBytes(p.pid);
      const seen = this.peak.get(p.pid);
      if (!seen || bytes > seen.bytes) this.peak.set(p.pid, { role: p.role, bytes });
    }
  }
  stop(): { rssMbPerRole: Record<string, number>; pssMbPerRole: Record<string, number>; processesPerRole: Record<string, number> } {
    clearInterval(this.timer);
    this.sample();
    const rss: Record<string, number> = {};
    const count: Record<string, number> = {};
    for (const { role, bytes } of this.peak.values()) {
      rss[role] = (rss[role] ?? 0) + bytes / (1 << 20);
      count[role] = (count[role] ?? 0) + 1;
    }
    // Read once, at the end: smaps_rollup walks every mapping, too costly to sample beside the load.
    const pss: Record<string, number> = {};
    for (const p of this.system.processes()) pss[p.role] = (pss[p.role] ?? 0) + pssBytes(p.pid) / (1 << 20);
    const rounded = (mb: Record<string, number>) => Object.fromEntries(Object.entries(mb).map(([role, v]) => [role, Math.round(v * 10) / 10]));
    return { rssMbPerRole: rounded(rss), pssMbPerRole: rounded(pss), processesPerRole: count };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function specsFor(users: PlannedUser[], system: SystemHandle): UserSpec[] {
  return users.map((u) => ({ id: u.id, rooms: u.rooms, url: system.userUrls[u.gateway % system.userUrls.length]!, ...(u.inbox ? { inbox: true } : {}) }));
}

/** Waits while showing progress until done() or the bound passes. */
async function watch(view: ProgressView, boundMs: number, tick: () => { value: number; info?: string; done: boolean }): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const { value, info, done } = tick();
    view.update(value, info);
    if (done) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

export async function runScenario(systemName: SystemName, p: Plan, o: RunOptions, view: ProgressView): Promise<SystemReport> {
  view.phase(systemName, 'starting', 1);
  const system = await startSystem(systemName, { splitThreshold: p.splitThreshold, gateways: o.gateways, partitions: o.partitions });
  const rss = new RssSampler(system);
  const notes: string[] = [];
  const limit = openFilesLimit();
  // Each worker holds a share of the users; keep every process under its open-files limit.
  const userWorkers = p.users.length === 0 ? 0
    : Math.max(Math.min(o.workers, p.users.length), Math.ceil((p.users.length + p.warmupUsers.length) / Math.max(100, limit.soft - 500)));
  const workers: LoadWorker[] = [];
  try {
    for (let i = 0; i < userWorkers; i++) workers.push(new LoadWorker(i));
    const publishers: LoadWorker[] = [];
    if (p.publishRooms.length) for (let i = 0; i < o.publishers; i++) publishers.push(new LoadWorker(userWorkers + i));
    const all = [...workers, ...publishers];
    try {
      rss.extra = [
        ...workers.map((w) => ({ role: 'bench-users', name: `users-${w.index}`, pid: w.child.pid! })),
        ...publishers.map((w) => ({ role: 'bench-publishers', name: `publisher-${w.index}`, pid: w.child.pid! })),
      ];
      const report = await drive(system, p, o, view, workers, publishers, notes, rss);
      const commitLatencyMs = await system.commitLatencyMs?.();
      const mem = rss.stop();
      const cpu = rss.cpuSecondsPerRole;
      // CPU the system itself used (not the bench's load workers), per unit of work: robust where the wall clock is shared.
      const serverCpu = Object.entries(cpu).filter(([role]) => !role.startsWith('bench-')).reduce((n, [, s]) => n + s, 0);
      const perUnit = (count: number) => (count > 0 ? Math.round((serverCpu * 1e6 / count) * 10) / 10 : undefined);
      const units = report.delivered || (report.published - report.failed) || (report.connections ?? 0);
      return { ...report, ...mem, cpuSecondsPerRole: cpu, loadCpu: rss.loadCpu, serverCpuUsPerUnit: perUnit(units), ...(commitLatencyMs ? { commitLatencyMs } : {}), idleProcessMb: rss.idle, notes };
    } finally {
      await Promise.all(all.map((w) => w.exit()));
    }
  } finally {
    rss.stop();
    view.phase(systemName, 'stopping', 1);
    await system.stop();
  }
}

type DriveResult = Omit<SystemReport, 'rssMbPerRole' | 'pssMbPerRole' | 'processesPerRole' | 'cpuSecondsPerRole' | 'loadCpu' | 'idleProcessMb' | 'notes'>;

async function connectAll(
  system: SystemHandle, users: PlannedUser[], workers: LoadWorker[], o: RunOptions, view: ProgressView, storm: boolean, label: string,
): Promise<{ connected: number; failed: number; firstStartUs: number; lastDoneUs: number; latency: LatencySummary; errors: string[] }> {
  const specs = specsFor(users, system);
  const shares = workers.map((_, w) => specs.filter((_, i) => i % workers.length === w));
  const before = workers.map((w) => w.progress.connected);
  view.phase(system.name, label, specs.length);
  workers.forEach((w, i) => w.send({
    type: 'users', system: system.name, access: system.access ?? null, users: shares[i]!, concurrency: o.concurrency, localAddresses: storm ? LOCAL_ADDRESSES : [], storm,
  }));
  const ready = Promise.all(workers.map((w) => w.next('usersReady')));
  let finished = false;
  void ready.then(() => { finished = true; }, () => { finished = true; });
  await watch(view, 600_000, () => ({ value: sum(workers.map((w, i) => w.progress.connected - before[i]!)), done: finished }));
  const results = await ready;
  const hist = newHistogram();
  for (const r of results) hist.add(decodeHistogram(r.connectHistogram));
  return {
    connected: sum(results.map((r, i) => r.connected - before[i]!)),
    failed: sum(results.map((r) => r.failedConnects)),
    firstStartUs: Math.min(...results.map((r) => r.firstStartUs)),
    lastDoneUs: Math.max(...results.map((r) => r.lastDoneUs)),
    latency: summarize(hist),
    errors: results.flatMap((r) => r.errors),
  };
}

const EMPTY_LATENCY: LatencySummary = { p50: 0, p99: 0, max: 0, count: 0 };

async function drive(
  system: SystemHandle, p: Plan, o: RunOptions, view: ProgressView, workers: LoadWorker[], publishers: LoadWorker[], notes: string[], rss: RssSampler,
): Promise<DriveResult> {
  const base: DriveResult = {
    system: system.name, scenario: p.scenario, published: 0, failed: 0, expected: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0,
    publishPerSec: 0, deliveriesPerSec: 0, latencyMs: EMPTY_LATENCY, publishSeconds: 0,
  };

  if (p.scenario === 'connect') {
    rss.markStart();
    const c = await connectAll(system, p.users, workers, o, view, true, 'connecting');
    rss.markEnd();
    if (c.failed) notes.push(`${c.failed} connections failed: ${c.errors.join('; ')}`);
    const seconds = (c.lastDoneUs - c.firstStartUs) / 1e6;
    await Promise.all(workers.map(async (w) => { w.send({ type: 'closeUsers' }); await w.next('closed'); }));
    return { ...base, latencyMs: c.latency, connections: c.connected, connectionsPerSec: Math.round(c.connected / seconds), publishSeconds: seconds };
  }

  if (p.scenario === 'idle') {
    // Every process users connect to: the connections are spread over as many as the open-files limit needs.
    const servers = system.processes().filter((x) => system.userServers.includes(x.name));
    const rssOfServers = () => sum(servers.map((x) => rssBytes(x.pid)));
    await connectAll(system, p.warmupUsers, workers.slice(0, 1), o, view, true, 'warm-up connections');
    await sleep(1000);
    const before = rssOfServers();
    rss.markStart();
    const c = await connectAll(system, p.users, workers, o, view, true, 'idle connections');
    rss.markEnd();
    if (c.failed) notes.push(`${c.failed} connections failed: ${c.errors.join('; ')}`);
    view.phase(system.name, 'settling', 3);
    for (let i = 1; i <= 3; i++) { await sleep(1000); view.update(i); }
    const after = rssOfServers();
    const seconds = (c.lastDoneUs - c.firstStartUs) / 1e6;
    notes.push(`${servers.map((x) => x.name).join(', ')}: RSS ${(before / 2 ** 20).toFixed(1)} MB before, ${(after / 2 ** 20).toFixed(1)} MB after ${c.connected} connections`);
    await Promise.all(workers.map(async (w) => { w.send({ type: 'closeUsers' }); await w.next('closed'); }));
    return {
      ...base, latencyMs: c.latency, connections: c.connected, connectionsPerSec: Math.round(c.connected / seconds),
      bytesPerConnection: c.connected ? Math.round((after - before) / c.connected) : 0, publishSeconds: seconds,
    };
  }

  // Message scenarios: connect, pass a membership barrier, publish, drain, audit.
  const targets = p.scenario === 'ingest' ? system.publishTargets.slice(0, 1) : system.publishTargets;
  const pairs = sum(p.users.map((u) => u.rooms.length));
  const direct = p.direct ? { senders: specsFor(p.direct.senders, system), recipients: p.direct.recipients } : null;
  if (p.users.length) {
    const c = await connectAll(system, p.users, workers, o, view, false, 'connecting users');
    if (c.failed) throw new Error(`${c.failed} of ${p.users.length} users failed to connect: ${c.errors.join('; ')}`);
    // Joins are acknowledged before every broker knows them: publish one warm-up
    // message per room until every member has one, so the run starts converged.
    view.phase(system.name, 'membership barrier', pairs);
    const warmedNow = () => sum(workers.map((w) => w.progress.warmed));
    const converged = await (async () => {
      for (let attempt = 0; attempt < 15; attempt++) {
        publishers[0]!.send({ type: 'warmup', system: system.name, access: system.access ?? null, targets, rooms: [...new Set(p.publishRooms)], direct });
        if (await watch(view, 2000, () => ({ value: warmedNow(), done: warmedNow() >= pairs }))) return true;
      }
      return false;
    })();
    if (!converged) throw new Error(`membership did not converge: ${warmedNow()} of ${pairs} (user, room) pairs got a warm-up message in 30 s`);
  }

  view.phase(system.name, `publishing for ${o.durationSec} s`, o.durationSec);
  rss.markStart();
  const started = Date.now();
  publishers.forEach((w, i) => w.send({
    type: 'publish', system: system.name, access: system.access ?? null, targets, rooms: p.publishRooms, worker: i, publishers: publishers.length,
    durationMs: o.durationSec * 1000, rate: o.rate, window: o.window, maxMessages: o.maxMessages, payloadBytes: o.payloadBytes,
    raw: o.raw && system.name === 'groupchat', direct,
  }));
  const done = Promise.all(publishers.map((w) => w.next('published')));
  let finished = false;
  void done.then(() => { finished = true; }, () => { finished = true; });
  await watch(view, o.durationSec * 1000 + 60_000, () => {
    const acked = sum(publishers.map((w) => w.progress.acked));
    const delivered = sum(workers.map((w) => w.progress.delivered));
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    return {
      value: Math.min(o.durationSec, Math.floor(secs)),
      info: `acked ${acked} (${Math.round(acked / secs)}/s) delivered ${delivered} (${Math.round(delivered / secs)}/s)`,
      done: finished,
    };
  });
  const results = await done;
  rss.markDone('bench-publishers');
  for (const r of results) if (r.errors.length) notes.push(...r.errors);
  const summary: PublishedSummary = {
    publishers: publishers.length, counts: results.sort((a, b) => a.worker - b.worker).map((r) => r.count),
    failed: results.flatMap((r) => r.failed), rooms: p.publishRooms,
  };
  const published = sum(summary.counts);
  const startUs = Math.min(...results.map((r) => r.startUs));
  const endUs = Math.max(...results.map((r) => r.endUs));
  const acks = newHistogram();
  for (const r of results) acks.add(decodeHistogram(r.ackHistogram));
  const publishSeconds = (endUs - startUs) / 1e6;
  const publishPerSec = Math.round((published - summary.failed.length) / publishSeconds);

  if (!p.users.length) {
    rss.markEnd();
    return {
      ...base, published, failed: summary.failed.length, publishPerSec, latencyMs: summarize(acks), ackLatencyMs: summarize(acks), publishSeconds,
    };
  }

  // Drain: wait for every expected delivery, or for deliveries to stop coming.
  const perRoom = expectedPerRoom(summary);
  const expected = sum(p.users.flatMap((u) => u.rooms.map((r) => perRoom.get(r) ?? 0)));
  view.phase(system.name, 'draining', expected);
  let lastCount = -1;
  let lastChange = Date.now();
  await watch(view, 60_000, () => {
    const delivered = sum(workers.map((w) => w.progress.delivered));
    if (delivered !== lastCount) { lastCount = delivered; lastChange = Date.now(); }
    return { value: delivered, done: delivered >= expected || Date.now() - lastChange > 3000 };
  });
  rss.markEnd();
  await sleep(300); // one more progress tick, and any stray duplicate

  // Audit: each room's first member is its reference order.
  view.phase(system.name, 'auditing', workers.length);
  const indexOf = new Map(p.users.map((u, i) => [u.id, i]));
  const refRequests = workers.map(() => [] as Array<{ room: number; user: number }>);
  const seenRooms = new Set<number>();
  for (const u of p.users) for (const room of u.rooms) {
    if (seenRooms.has(room)) continue;
    seenRooms.add(room);
    refRequests[indexOf.get(u.id)! % workers.length]!.push({ room, user: u.id });
  }
  workers.forEach((w, i) => w.send({ type: 'refs', rooms: refRequests[i]! }));
  const refs = (await Promise.all(workers.map((w) => w.next('refs')))).flatMap((m) => m.refs);
  workers.forEach((w) => w.send({ type: 'audit', refs, summary }));
  const audits = await Promise.all(workers.map((w) => w.next('audited')));
  const total = { delivered: 0, uniqueExpected: 0, lost: 0, duplicated: 0, reordered: 0, unexpected: 0, pairsWithLoss: 0 };
  const lostSample: number[] = [];
  const latency = newHistogram();
  for (const a of audits) {
    for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += a.result[k];
    lostSample.push(...a.result.lostSample);
    latency.add(decodeHistogram(a.histogram));
  }
  if (total.lost) {
    notes.push(`${total.pairsWithLoss} of ${pairs} (user, room) pairs missed messages; e.g. message numbers ${[...new Set(lostSample)].slice(0, 10).join(', ')} of ${published}`);
  }
  if (total.unexpected) notes.push(`${total.unexpected} deliveries of messages whose publish was not acknowledged`);
  const lastDeliveryUs = Math.max(...audits.map((a) => a.lastDeliveryUs));
  const deliverySeconds = Math.max(publishSeconds, (lastDeliveryUs - startUs) / 1e6);
  await Promise.all(workers.map(async (w) => { w.send({ type: 'closeUsers' }); await w.next('closed'); }));
  return {
    ...base, published, failed: summary.failed.length, expected, delivered: total.delivered, lost: total.lost,
    duplicated: total.duplicated, reordered: total.reordered, publishPerSec,
    deliveriesPerSec: Math.round(total.delivered / deliverySeconds), latencyMs: summarize(latency), ackLatencyMs: summarize(acks), publishSeconds,
  };
}
