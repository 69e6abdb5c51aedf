// The performance targets, checked against the reports of one `make bench`
// run: each target with its goal, what was measured (groupchat beside its
// peers and the fan-out floor of the same run), and whether it is met. A
// pure function of the reports, so what a target means is tested apart from
// running anything.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { totalMb } from './report.js';
import type { SystemReport } from './runner.js';

/** A `groupchat bench --json` report, the parts the targets read. */
export interface BenchDocument {
  scenario: string;
  options: { rate: number | null; users?: number };
  systems: SystemReport[];
}

/** A `scripts/bench-floor.mjs --json` report: raw writes to the same clients, what any Node.js server reaches here. */
export interface FloorDocument {
  deliveriesPerSec: number;
  serverCpuUsPerDelivery: number;
}

/** The reports of one run, by the file names `make bench` gives them. */
export interface TargetInputs {
  floor?: FloorDocument;
  fanout?: BenchDocument;
  'fanout-half'?: BenchDocument;
  broadcast?: BenchDocument;
  direct?: BenchDocument;
  idle?: BenchDocument;
}

export const TARGET_REPORTS = ['floor', 'fanout', 'fanout-half', 'broadcast', 'direct', 'idle'] as const;

export interface TargetResult {
  target: string;
  goal: string;
  measured: string;
  /** undefined: not measured in this run (its report is missing), or a figure with no bar to meet. */
  met: boolean | undefined;
}

const n = (v: number | undefined) => (v === undefined ? '?' : Math.round(v).toLocaleString('en-US'));
const f1 = (v: number | undefined) => (v === undefined ? '?' : (Math.round(v * 10) / 10).toLocaleString('en-US'));
const pct = (v: number) => `${Math.round(v * 100)} %`;
const times = (v: number) => `${(Math.round(v * 100) / 100).toLocaleString('en-US')}×`;

function system(doc: BenchDocument | undefined, name: string): SystemReport | undefined {
  return doc?.systems.find((s) => s.system === name);
}

const gatewaysOf = (r: SystemReport) => {
  const count = r.processesPerRole.gateway ?? 1;
  return count === 1 ? 'one gateway' : `${count} gateways`;
};

/** The peers' figure beside ours, for the measured column: "Socket.IO 26,661, Centrifugo 15,975". */
function peers(doc: BenchDocument | undefined, value: (r: SystemReport) => number | undefined, format: (v: number | undefined) => string): string {
  const names: Record<string, string> = { socketio: 'Socket.IO + Redis', centrifugo: 'Centrifugo' };
  return (doc?.systems ?? []).filter((s) => s.system !== 'groupchat').map((s) => `${names[s.system] ?? s.system} ${format(value(s))}`).join(', ');
}

function missing(target: string, goal: string, report: string): TargetResult {
  return { target, goal, measured: `not measured: no ${report} report`, met: undefined };
}

export function evaluateTargets(i: TargetInputs): TargetResult[] {
  const rows: TargetResult[] = [];
  const ours = (doc: BenchDocument | undefined) => system(doc, 'groupchat');
  const socketio = (doc: BenchDocument | undefined) => system(doc, 'socketio');

  // 1. fan-out at the maximum rate, against the floor of the same run.
  const fanout = ours(i.fanout);
  if (!fanout || !i.floor) {
    rows.push(missing('fanout at max: deliveries/s', '≥ 85 % of the floor', !fanout ? 'fanout' : 'floor'));
    rows.push(missing('fanout at max: server CPU per delivery', '≤ 1.3 × the floor\'s', !fanout ? 'fanout' : 'floor'));
  } else {
    const share = fanout.deliveriesPerSec / i.floor.deliveriesPerSec;
    rows.push({ target: 'fanout at max: deliveries/s', goal: '≥ 85 % of the floor', met: share >= 0.85,
      measured: `${n(fanout.deliveriesPerSec)}, ${pct(share)} of the floor's ${n(i.floor.deliveriesPerSec)} (${peers(i.fanout, (r) => r.deliveriesPerSec, n)})` });
    const cpu = fanout.serverCpuUsPerUnit;
    const ratio = cpu === undefined ? undefined : cpu / i.floor.serverCpuUsPerDelivery;
    rows.push({ target: 'fanout at max: server CPU per delivery', goal: '≤ 1.3 × the floor\'s', met: ratio === undefined ? undefined : ratio <= 1.3,
      measured: `${f1(cpu)} µs, ${ratio === undefined ? '?' : times(ratio)} the floor's ${f1(i.floor.serverCpuUsPerDelivery)} µs (${peers(i.fanout, (r) => r.serverCpuUsPerUnit, f1)} µs)` });
  }

  // 2. fan-out at half of groupchat's maximum rate, every system at that rate.
  const half = ours(i['fanout-half']);
  const halfPeer = socketio(i['fanout-half']);
  if (!half || !halfPeer) {
    for (const [t, g] of [['p50', '≤ Socket.IO + Redis'], ['p99', '≤ 20 ms'], ['server CPU per delivery', '≤ Socket.IO + Redis']] as const) {
      rows.push(missing(`fanout at half rate: ${t}`, g, 'fanout-half (with Socket.IO)'));
    }
  } else {
    const at = `at ${n(i['fanout-half']!.options.rate ?? half.publishPerSec)} msg/s`;
    rows.push({ target: 'fanout at half rate: latency p50', goal: '≤ Socket.IO + Redis', met: half.latencyMs.p50 <= halfPeer.latencyMs.p50,
      measured: `${f1(half.latencyMs.p50)} ms ${at} (${peers(i['fanout-half'], (r) => r.latencyMs.p50, f1)} ms)` });
    rows.push({ target: 'fanout at half rate: latency p99', goal: '≤ 20 ms', met: half.latencyMs.p99 <= 20,
      measured: `${f1(half.latencyMs.p99)} ms (${peers(i['fanout-half'], (r) => r.latencyMs.p99, f1)} ms)` });
    const cpu = half.serverCpuUsPerUnit;
    const peerCpu = halfPeer.serverCpuUsPerUnit;
    rows.push({ target: 'fanout at half rate: server CPU per delivery', goal: '≤ Socket.IO + Redis', met: cpu === undefined || peerCpu === undefined ? undefined : cpu <= peerCpu,
      measured: `${f1(cpu)} µs (${peers(i['fanout-half'], (r) => r.serverCpuUsPerUnit, f1)} µs)` });
  }

  // 3. broadcast.
  const broadcast = ours(i.broadcast);
  const broadcastPeer = socketio(i.broadcast);
  if (!broadcast || !broadcastPeer) rows.push(missing('broadcast: deliveries/s', '≥ 6 × Socket.IO + Redis', 'broadcast (with Socket.IO)'));
  else {
    const ratio = broadcast.deliveriesPerSec / broadcastPeer.deliveriesPerSec;
    rows.push({ target: 'broadcast: deliveries/s', goal: '≥ 6 × Socket.IO + Redis', met: ratio >= 6,
      measured: `${n(broadcast.deliveriesPerSec)}, ${times(ratio)} (${peers(i.broadcast, (r) => r.deliveriesPerSec, n)})` });
  }

  // 4. memory: under the fan-out load (proportional, so shared pages count once), idle per process, per idle connection.
  const fanoutPeer = socketio(i.fanout);
  if (!fanout || !fanoutPeer) rows.push(missing('memory under fanout: PSS of all processes', '≤ 1.5 × Socket.IO + Redis', 'fanout (with Socket.IO)'));
  else {
    const ratio = totalMb(fanout.pssMbPerRole) / totalMb(fanoutPeer.pssMbPerRole);
    rows.push({ target: 'memory under fanout: PSS of all processes', goal: '≤ 1.5 × Socket.IO + Redis', met: ratio <= 1.5,
      measured: `${n(totalMb(fanout.pssMbPerRole))} MB in ${Object.values(fanout.processesPerRole).reduce((a, b) => a + b, 0)} processes, ${times(ratio)} (${peers(i.fanout, (r) => totalMb(r.pssMbPerRole), n)} MB); RSS ${n(totalMb(fanout.rssMbPerRole))} MB` });
  }
  const idle = ours(i.idle);
  if (!idle?.idleProcessMb) rows.push(missing('idle role process: memory', '< 60 MB', 'idle'));
  else {
    const { largestRss, largestPss, process: name } = idle.idleProcessMb;
    rows.push({ target: 'idle role process: memory', goal: '< 60 MB', met: largestPss < 60,
      measured: `largest ${f1(largestPss)} MB PSS (${name}); RSS ${f1(largestRss)} MB, which counts the shared Node.js binary in every process` });
  }
  const idlePeer = socketio(i.idle);
  if (!idle?.bytesPerConnection || !idlePeer) rows.push(missing('idle connections: bytes per connection', 'measured at 50,000 (as many gateways as the open-files limit needs)', 'idle (with Socket.IO)'));
  else {
    rows.push({ target: 'idle connections: bytes per connection', goal: 'measured at 50,000 (as many gateways as the open-files limit needs)', met: undefined,
      measured: `${n(idle.bytesPerConnection)} B at ${n(idle.connections)} over ${gatewaysOf(idle)} (${peers(i.idle, (r) => r.bytesPerConnection, n)} B)` });
  }

  // 5. direct: stored before the acknowledgement, against a peer that stores nothing.
  const direct = ours(i.direct);
  const directPeer = socketio(i.direct);
  if (!direct || !directPeer) {
    rows.push(missing('direct: msg/s', '≥ Socket.IO + Redis', 'direct (with Socket.IO)'));
    rows.push(missing('direct: server CPU per message', '≤ 2 × Socket.IO + Redis', 'direct (with Socket.IO)'));
  } else {
    rows.push({ target: 'direct: msg/s', goal: '≥ Socket.IO + Redis', met: direct.publishPerSec >= directPeer.publishPerSec,
      measured: `${n(direct.publishPerSec)}, ${times(direct.publishPerSec / directPeer.publishPerSec)} (${peers(i.direct, (r) => r.publishPerSec, n)})` });
    const cpu = direct.serverCpuUsPerUnit;
    const peerCpu = directPeer.serverCpuUsPerUnit;
    const ratio = cpu === undefined || peerCpu === undefined ? undefined : cpu / peerCpu;
    rows.push({ target: 'direct: server CPU per message', goal: '≤ 2 × Socket.IO + Redis', met: ratio === undefined ? undefined : ratio <= 2,
      measured: `${f1(cpu)} µs, ${ratio === undefined ? '?' : times(ratio)} (${peers(i.direct, (r) => r.serverCpuUsPerUnit, f1)} µs)` });
  }

  // Every run: nothing lost, duplicated or reordered by groupchat.
  const runs = (['fanout', 'fanout-half', 'broadcast', 'direct'] as const).flatMap((k) => (ours(i[k]) ? [[k, ours(i[k])!] as const] : []));
  if (runs.length === 0) rows.push(missing('audit: lost / duplicated / reordered', '0 in every run', 'message'));
  else {
    const bad = runs.filter(([, r]) => r.lost + r.duplicated + r.reordered + r.failed > 0);
    rows.push({ target: 'audit: lost / duplicated / reordered / failed', goal: '0 in every run', met: bad.length === 0,
      measured: bad.length === 0 ? `0 in ${runs.map(([k]) => k).join(', ')}`
        : bad.map(([k, r]) => `${k}: ${r.lost} / ${r.duplicated} / ${r.reordered} / ${r.failed}`).join('; ') });
  }
  return rows;
}

/** The targets as a Markdown table, with a line per target and a count of those met. */
export function targetsMarkdown(rows: TargetResult[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const verdict = (met: boolean | undefined) => (met === undefined ? '—' : met ? '**met**' : 'not met');
  const judged = rows.filter((r) => r.met !== undefined);
  return [
    `${judged.filter((r) => r.met).length} of ${judged.length} targets met.`,
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${cell(r.target)} | ${cell(r.goal)} | ${cell(r.measured)} | ${verdict(r.met)} |`),
  ].join('\n') + '\n';
}

const benchDocument = z.object({
  scenario: z.string(),
  options: z.object({ rate: z.number().nullable(), users: z.number().optional() }).passthrough(),
  systems: z.array(z.object({ system: z.string(), publishPerSec: z.number(), deliveriesPerSec: z.number() }).passthrough()).min(1),
}).passthrough();
const floorDocument = z.object({ deliveriesPerSec: z.number().positive(), serverCpuUsPerDelivery: z.number().positive() }).passthrough();

/** A bench report from disk, checked for the fields the targets and `--half-of` read; a clear error names the file. */
export function readBenchDocument(path: string): BenchDocument {
  return parseFile(path, benchDocument) as unknown as BenchDocument;
}

function parseFile<T>(path: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`${path} is not a bench report: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** The reports `make bench` wrote into dir (FILE.json per TARGET_REPORTS name); a missing one is left out. */
export function readTargetInputs(dir: string): TargetInputs {
  const inputs: TargetInputs = {};
  for (const name of TARGET_REPORTS) {
    const path = join(dir, `${name}.json`);
    if (!existsSync(path)) continue;
    if (name === 'floor') inputs.floor = parseFile(path, floorDocument);
    else inputs[name] = readBenchDocument(path);
  }
  return inputs;
}
