// `groupchat bench` end to end: short runs of every scenario through the real
// CLI, with the Socket.IO + Redis peer where it matters. Asserts the report's
// shape and the delivery audit (nothing lost, duplicated or reordered), never
// speed: speed is what the reports are for.
import { describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expectedPerRoom, messageSpace } from '../../workloads/bench/common.js';
import { chartSvg, ratios } from '../../workloads/bench/report.js';
import type { SystemReport } from '../../workloads/bench/runner.js';
import { REDIS_SERVER } from '../../workloads/bench/systems.js';

const CLI = resolve('dist/workloads/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'groupchat-bench-test-'));

/** The Socket.IO peer needs Redis; `make test` installs it, so its absence is a failure, not a skip. */
function requireRedis(): void {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing: \`make redis\` installs it (make test does)`);
}

interface BenchDocument {
  scenario: string;
  machine: { nproc: number; node: string };
  systems: SystemReport[];
  ratios: Record<string, number | null>;
}

function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

async function run(name: string, args: string[]): Promise<BenchDocument> {
  const json = join(dir, `${name}.json`);
  const result = await bench([...args, '--json', json]);
  if (result.code !== 0) throw new Error(`bench ${args.join(' ')} exited ${result.code}:\n${result.stderr}\n${result.stdout}`);
  expect(result.stdout).toContain('figure');
  return JSON.parse(readFileSync(json, 'utf8')) as BenchDocument;
}

function expectReportShape(r: SystemReport): void {
  for (const key of ['published', 'expected', 'delivered', 'lost', 'duplicated', 'reordered', 'publishPerSec', 'deliveriesPerSec'] as const) {
    expect(typeof r[key]).toBe('number');
  }
  expect(Object.keys(r.latencyMs).sort()).toEqual(['count', 'max', 'p50', 'p99']);
  expect(Object.keys(r.rssMbPerRole).length).toBeGreaterThan(0);
  for (const mb of Object.values(r.rssMbPerRole)) expect(mb).toBeGreaterThan(0);
}

function expectClean(r: SystemReport): void {
  expect({ system: r.system, lost: r.lost, duplicated: r.duplicated, reordered: r.reordered, failed: r.failed })
    .toEqual({ system: r.system, lost: 0, duplicated: 0, reordered: 0, failed: 0 });
  expect(r.published).toBeGreaterThan(0);
  expect(r.delivered).toBe(r.expected);
}

describe('the message schedule', () => {
  test('expected counts follow the publishers\' counts and leave out failed messages', () => {
    // Two publishers, rooms [10, 20, 30]: g = 2k + w goes to rooms[g % 3].
    const summary = { publishers: 2, counts: [3, 2], failed: [4], rooms: [10, 20, 30] };
    // worker 0: g = 0, 2, 4; worker 1: g = 1, 3 → rooms 10, 30, 20(failed), 20, 10
    expect(Object.fromEntries(expectedPerRoom(summary))).toEqual({ 10: 2, 20: 1, 30: 1 });
    expect(messageSpace(summary)).toBe(5);
  });

  test('ratios and the chart come from the reports', () => {
    const base = {
      scenario: 'fanout', published: 10, failed: 0, expected: 80, delivered: 80, lost: 0, duplicated: 0, reordered: 0, publishPerSec: 100,
      latencyMs: { p50: 1, p99: 2, max: 3, count: 80 }, rssMbPerRole: { gateway: 50 }, processesPerRole: { gateway: 2 }, cpuSecondsPerRole: {},
      publishSeconds: 1, notes: [],
    };
    const reports: SystemReport[] = [
      { ...base, system: 'groupchat', deliveriesPerSec: 5000 },
      { ...base, system: 'socketio', deliveriesPerSec: 1000, latencyMs: { p50: 2, p99: 8, max: 9, count: 80 } },
    ];
    expect(ratios(reports)).toMatchObject({ deliveriesPerSec: 5, 'latency p99 ms': 0.25, lost: 1 });
    const svg = chartSvg(reports, 'test');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('5,000');
    expect(svg).toContain('socketio p99');
  });
});

describe('groupchat bench', () => {
  test('fanout side by side with Socket.IO + Redis: same workload, full audit, ratios and chart', async () => {
    requireRedis();
    const doc = await run('fanout', ['--scenario', 'fanout', '--duration', '2', '--users', '160', '--rate', '400', '--compare', 'socketio']);
    expect(doc.scenario).toBe('fanout');
    expect(doc.machine.nproc).toBeGreaterThan(0);
    expect(doc.systems.map((s) => s.system)).toEqual(['groupchat', 'socketio']);
    for (const r of doc.systems) expectReportShape(r);
    expectClean(doc.systems[0]!);
    // The peer gets the same workload; it has no per-room order across its servers, so only loss and duplicates are checked.
    const peer = doc.systems[1]!;
    expect({ lost: peer.lost, duplicated: peer.duplicated }).toEqual({ lost: 0, duplicated: 0 });
    expect(peer.expected / peer.published).toBe(doc.systems[0]!.expected / doc.systems[0]!.published);
    expect(doc.ratios.deliveriesPerSec).toBeGreaterThan(0);
    expect(doc.systems[1]!.rssMbPerRole).toHaveProperty('redis');
    expect(readFileSync(join(dir, 'fanout.svg'), 'utf8')).toContain('deliveries/s');
  });

  test('broadcast: one split room, every member gets every message once, in one order', async () => {
    const doc = await run('broadcast', ['--scenario', 'broadcast', '--duration', '2', '--users', '130', '--rate', '100']);
    const r = doc.systems[0]!;
    expectReportShape(r);
    expectClean(r);
    expect(r.expected).toBe(r.published * 130);
  });

  test('direct: one-to-one through the Relay, and to the recipient\'s own room on Socket.IO', async () => {
    requireRedis();
    const doc = await run('direct', ['--scenario', 'direct', '--duration', '2', '--users', '100', '--rate', '300', '--compare', 'socketio']);
    // Recipients join no room: on groupchat only inbox frames count, so everything delivered came through the Relay.
    for (const r of doc.systems) {
      expectClean(r);
      // One recipient per conversation: every acknowledged message reaches exactly one user.
      expect(r.published).toBeGreaterThan(0);
      expect(r.expected).toBe(r.published);
      expect(r.delivered).toBe(r.published);
    }
  });

  test('connect: a connection storm reports connections per second and latency', async () => {
    const doc = await run('connect', ['--scenario', 'connect', '--users', '300']);
    const r = doc.systems[0]!;
    expect(r.connections).toBe(300);
    expect(r.connectionsPerSec).toBeGreaterThan(0);
    expect(r.latencyMs.count).toBe(300);
  });

  test('idle: bytes per connection on one gateway, and on one Socket.IO server', async () => {
    requireRedis();
    const doc = await run('idle', ['--scenario', 'idle', '--users', '400', '--compare', 'socketio']);
    for (const r of doc.systems) {
      expect(r.connections).toBe(400);
      expect(typeof r.bytesPerConnection).toBe('number');
    }
  });

  test('ingest: pipelined publishes through one proxy are all acknowledged', async () => {
    const doc = await run('ingest', ['--scenario', 'ingest', '--duration', '2', '--rate', '2000']);
    const r = doc.systems[0]!;
    expect(r.published).toBeGreaterThan(0);
    expect(r.failed).toBe(0);
    expect(r.publishPerSec).toBeGreaterThan(0);
  });
});
