// `groupchat bench`: runs a scenario on groupchat (and with --compare, the
// same scenario on Socket.IO + Redis and/or Centrifugo in the same run),
// prints a table with the ratio of every figure to each peer, and writes the
// JSON report and an SVG chart beside it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { ScenarioName, SystemName } from './common.js';
import { PEERS, type PeerName } from './peers.js';
import type { RunOptions, SystemReport } from './runner.js';
import { DEFAULT_USERS, plan } from './scenarios.js';
import { openFilesLimit } from './systems.js';
import { evaluateTargets, readBenchDocument, readTargetInputs, TARGET_REPORTS, targetsMarkdown, type BenchDocument, type TargetInputs } from './targets.js';

// Every role process runs the same CLI: the bench's heavier modules (the
// histogram library, the progress bar, the runner) load only when it runs.
const SCENARIOS: readonly ScenarioName[] = ['fanout', 'broadcast', 'direct', 'connect', 'idle', 'ingest'];

function whole(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** `socketio`, `centrifugo`, or a comma-separated list of them (each once). */
export function peerList(value: string): PeerName[] {
  const names = value.split(',').map((v) => v.trim());
  for (const name of names) {
    if (!(PEERS as readonly string[]).includes(name)) throw new InvalidArgumentError(`expected ${PEERS.join(', ')} or a comma-separated list of them; got "${name}"`);
  }
  if (new Set(names).size !== names.length) throw new InvalidArgumentError('a peer is named twice');
  return names as PeerName[];
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new InvalidArgumentError('expected seconds, more than 0 and at most 3600');
  return n;
}

function rateOption(value: string): number | null {
  if (value === 'max') return null;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 10_000_000) throw new InvalidArgumentError('expected "max" or messages per second');
  return n;
}

/**
 * Unacknowledged publishes per publisher process: about 32k deliveries in
 * flight, so a big room does not queue seconds of work (which would measure
 * the queue, not the system), within 8..1000 messages; ingest pipelines deeper.
 */
function defaultWindow(scenario: ScenarioName, users: number, rooms: number): number {
  if (scenario === 'ingest') return 4096;
  const fanout = Math.max(1, users / Math.max(1, rooms));
  return Math.max(8, Math.min(1000, Math.floor(32_768 / fanout)));
}

/** Raises this process's soft open-files limit to its hard limit (children inherit it). */
function raiseOpenFiles(): { soft: number; hard: number } {
  const limit = openFilesLimit();
  if (limit.soft < limit.hard && Number.isFinite(limit.hard)) {
    try {
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit.hard}:${limit.hard}`], { stdio: 'ignore' });
    } catch { /* best effort: report what we have */ }
  }
  return openFilesLimit();
}

function fail(message: string, command = 'bench'): never {
  process.stderr.write(`groupchat ${command}: ${message}\n`);
  process.exit(2);
}

/** Half of groupchat's acknowledged publishes per second in an earlier report of the same scenario. */
function halfRate(path: string, scenario: ScenarioName): number {
  let report: BenchDocument;
  try {
    report = readBenchDocument(path);
  } catch (err) {
    fail(`--half-of: ${(err as Error).message}`);
  }
  if (report.scenario !== scenario) fail(`--half-of: ${path} is a ${report.scenario} report, not ${scenario}`);
  const ours = report.systems.find((s) => s.system === 'groupchat');
  if (!ours || !(ours.publishPerSec > 0)) fail(`--half-of: ${path} has no groupchat publish rate`);
  return Math.max(1, Math.floor(ours.publishPerSec / 2));
}

export function registerBenchCommand(program: Command): void {
  program.command('bench-targets')
    .description('check the performance targets against the reports of one `make bench` run (floor.json, fanout.json, fanout-half.json, ...); writes targets.md beside them')
    .argument('<dir>', 'the folder of the reports')
    .action((dir: string) => {
      let inputs: TargetInputs;
      try {
        inputs = readTargetInputs(dir);
      } catch (err) {
        fail((err as Error).message, 'bench-targets');
      }
      if (Object.keys(inputs).length === 0) fail(`no reports in ${dir} (expected ${TARGET_REPORTS.map((r) => `${r}.json`).join(', ')})`, 'bench-targets');
      const markdown = targetsMarkdown(evaluateTargets(inputs));
      writeFileSync(join(dir, 'targets.md'), markdown);
      process.stdout.write(`${markdown}written: ${join(dir, 'targets.md')}\n`);
    });

  program.command('bench')
    .description('benchmark a scenario on a local groupchat, optionally side by side with Socket.IO + Redis and Centrifugo')
    .requiredOption('--scenario <name>', `one of ${SCENARIOS.join(', ')}`, (v: string) => {
      if (!(SCENARIOS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${SCENARIOS.join(', ')}`);
      return v;
    })
    .option('--duration <seconds>', 'publishing time per system', positive, 10)
    .option('--json <file>', 'write the report here (and the chart beside it, as .svg)')
    .option('--chart <file>', 'write the SVG chart here (default: the --json path with .svg)')
    .option('--compare <peers>', `run the same workload on peer systems too: ${PEERS.join(', ')}, or a list such as ${PEERS.join(',')}`, peerList)
    .option('--users <n>', 'users (connect, idle: connections); default per scenario', whole(1, 1_000_000))
    .option('--room-size <n>', 'members per room (fanout)', whole(2, 100_000), 8)
    .option('--rate <msgs/s|max>', 'total publish rate; max: as fast as the in-flight window allows', rateOption, null)
    .option('--half-of <report.json>', "publish at half of groupchat's publishPerSec in that report (the moderate-load run; instead of --rate)")
    .option('--payload <bytes>', 'message payload size', whole(12, 65_536), 100)
    .option('--publishers <n>', 'publisher processes (default 1; ingest 2)', whole(1, 16))
    .option('--workers <n>', 'processes holding the users', whole(1, 32), 2)
    .option('--window <n>', 'unacknowledged publishes per publisher process (default: ~32k deliveries in flight, 8..1000; ingest 4096)', whole(1, 1_000_000))
    .option('--max-messages <n>', 'bound on messages per publisher process', whole(1, 100_000_000), 5_000_000)
    .option('--concurrency <n>', 'connections set up at once per worker', whole(1, 10_000), 100)
    .option('--partitions <n>', 'groupchat broker partitions, 3 replicas each (groupchat up: 2)', whole(1, 64), 2)
    .option('--split-threshold <n>', 'groupchat split threshold (broadcast: half the room)', whole(1, 10_000_000))
    .option('--driver <kind>', 'groupchat publishers: sdk (Publisher SDK) or raw (pipelined proxy links); ingest defaults to raw', (v: string) => {
      if (v !== 'sdk' && v !== 'raw') throw new InvalidArgumentError('expected sdk or raw');
      return v;
    })
    .action(async (opts) => {
      // The bench's peers and libraries are development dependencies: the image has none of them.
      const { runScenario, ProgressView } = await import('./runner.js').catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ERR_MODULE_NOT_FOUND') throw err;
        process.stderr.write(`groupchat bench needs the development dependencies (${err.message.split('\n')[0]}): `
          + 'run it from a checkout after `make build`; the image carries production dependencies only\n');
        process.exit(2);
      });
      const { chartSvg, formatTable, loadWarnings, machine, ratios } = await import('./report.js');
      const scenario = opts.scenario as ScenarioName;
      if (opts.halfOf !== undefined) {
        if (opts.rate !== null) fail('--half-of and --rate both set the rate: give one');
        opts.rate = halfRate(String(opts.halfOf), scenario);
      }
      const limit = raiseOpenFiles();
      const users: number = opts.users ?? DEFAULT_USERS[scenario];
      const notes: string[] = [];
      // idle: as many gateways as the open-files limit needs (one process holds at most its limit, less some for its own files).
      const gateways = scenario === 'idle' ? Math.max(1, Math.ceil((users + 100) / Math.max(100, limit.soft - 600))) : 2;
      if (scenario === 'idle' && gateways > 1) {
        notes.push(`${users} connections over ${gateways} gateways: the open-files limit here is ${limit.soft} (hard ${limit.hard}) per process`);
      }
      const thePlan = plan(scenario, { users, roomSize: opts.roomSize, gateways, ...(opts.splitThreshold ? { splitThreshold: opts.splitThreshold } : {}) });
      const run: RunOptions = {
        durationSec: opts.duration, rate: opts.rate, payloadBytes: opts.payload,
        publishers: opts.publishers ?? (scenario === 'ingest' ? 2 : 1), workers: opts.workers,
        window: opts.window ?? defaultWindow(scenario, thePlan.users.length, thePlan.publishRooms.length), maxMessages: opts.maxMessages,
        concurrency: opts.concurrency, gateways, partitions: opts.partitions, raw: (opts.driver ?? (scenario === 'ingest' ? 'raw' : 'sdk')) === 'raw',
      };
      const systems: SystemName[] = ['groupchat', ...((opts.compare as PeerName[] | undefined) ?? [])];
      process.stderr.write(`bench ${scenario}: ${thePlan.describe}\n`);
      for (const n of notes) process.stderr.write(`note: ${n}\n`);
      const view = new ProgressView();
      const reports: SystemReport[] = [];
      let stopping = false;
      const interrupt = () => { if (!stopping) { stopping = true; process.stderr.write('\ninterrupted: stopping\n'); } process.exit(130); };
      process.on('SIGINT', interrupt);
      process.on('SIGTERM', interrupt);
      try {
        for (const system of systems) reports.push(await runScenario(system, thePlan, run, view));
      } catch (err) {
        view.stop();
        process.stderr.write(`bench failed: ${(err as Error).stack ?? (err as Error).message}\n`);
        process.exit(1);
      }
      view.stop();
      for (const r of reports) r.notes.unshift(...notes);
      process.stdout.write(`\n${scenario}: ${thePlan.describe}\n`);
      const host = machine();
      process.stdout.write(`${run.rate ? `rate ${run.rate} msg/s` : 'rate max'}, window ${run.window}, payload ${run.payloadBytes} B, ${run.durationSec} s per system; `
        + `${host.nproc} cores, load average ${host.loadAverage1m}\n\n`);
      process.stdout.write(formatTable(reports) + '\n');
      for (const r of reports) for (const n of r.notes) process.stdout.write(`note (${r.system}): ${n}\n`);
      const warnings = loadWarnings(reports);
      for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
      const document = {
        scenario, describe: thePlan.describe, startedAt: new Date().toISOString(), machine: host,
        options: { ...run, users }, systems: reports, ratios: ratios(reports), warnings,
      };
      const chartPath: string | undefined = opts.chart ?? (opts.json ? String(opts.json).replace(/(\.json)?$/, '.svg') : undefined);
      if (opts.json) {
        mkdirSync(dirname(opts.json), { recursive: true });
        writeFileSync(opts.json, JSON.stringify(document, null, 2) + '\n');
        process.stdout.write(`report: ${opts.json}\n`);
      }
      if (chartPath) {
        mkdirSync(dirname(chartPath), { recursive: true });
        writeFileSync(chartPath, chartSvg(reports, `groupchat bench: ${scenario}`));
        process.stdout.write(`chart: ${chartPath}\n`);
      }
      process.exit(0);
    });
}
