// The performance targets judged on made-up reports: each target compares
// the figure it names with its bar (the floor of the same run, Socket.IO's
// figure, or a fixed bound), a missing report is "not measured" rather than
// met, and a report that is not one gives an error naming the file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@jest/globals';
import type { SystemReport } from '../../workloads/bench/runner.js';
import { evaluateTargets, readTargetInputs, targetsMarkdown, type BenchDocument, type TargetInputs } from '../../workloads/bench/targets.js';

function report(system: string, figures: Partial<SystemReport>): SystemReport {
  return {
    system: system as SystemReport['system'], scenario: 'fanout', published: 100, failed: 0, expected: 800, delivered: 800,
    lost: 0, duplicated: 0, reordered: 0, publishPerSec: 1000, deliveriesPerSec: 8000,
    latencyMs: { p50: 5, p99: 10, max: 20 } as SystemReport['latencyMs'],
    rssMbPerRole: { x: 100 }, pssMbPerRole: { x: 50 }, processesPerRole: { x: 1 }, cpuSecondsPerRole: {}, loadCpu: [],
    serverCpuUsPerUnit: 10, publishSeconds: 10, notes: [], ...figures,
  };
}

const doc = (scenario: string, ours: Partial<SystemReport>, socketio: Partial<SystemReport>, rate: number | null = null): BenchDocument => ({
  scenario, options: { rate }, systems: [report('groupchat', { scenario, ...ours }), report('socketio', { scenario, ...socketio })],
});

/** Every target exactly at its bar (met), with the floor at 10,000 deliveries/s and 10 µs. */
const atTheBars: TargetInputs = {
  floor: { deliveriesPerSec: 10_000, serverCpuUsPerDelivery: 10 },
  fanout: doc('fanout', { deliveriesPerSec: 8_500, serverCpuUsPerUnit: 13, pssMbPerRole: { broker: 100, gateway: 50 } }, { pssMbPerRole: { socketio: 80, redis: 20 } }),
  'fanout-half': doc('fanout', { latencyMs: { p50: 4, p99: 20, max: 30 } as SystemReport['latencyMs'], serverCpuUsPerUnit: 20 },
    { latencyMs: { p50: 4, p99: 500, max: 900 } as SystemReport['latencyMs'], serverCpuUsPerUnit: 20 }, 500),
  broadcast: doc('broadcast', { deliveriesPerSec: 600_000 }, { deliveriesPerSec: 100_000 }),
  direct: doc('direct', { publishPerSec: 20_000, serverCpuUsPerUnit: 100 }, { publishPerSec: 20_000, serverCpuUsPerUnit: 50 }),
  idle: doc('idle', { bytesPerConnection: 7000, connections: 19_400, processesPerRole: { gateway: 3 }, idleProcessMb: { process: 'broker-0-0', largestPss: 59.9, largestRss: 110 } }, { bytesPerConnection: 17_000 }),
};

const verdicts = (inputs: TargetInputs) => Object.fromEntries(evaluateTargets(inputs).map((r) => [r.target, r.met]));

test('every target exactly at its bar is met, and the audit of a clean run too (bytes per connection is a figure, not judged)', () => {
  const rows = evaluateTargets(atTheBars);
  expect(rows.filter((r) => r.met === false)).toEqual([]);
  expect(rows.filter((r) => r.met === true)).toHaveLength(11);
  expect(targetsMarkdown(rows)).toContain('11 of 11 targets met.');
  expect(rows.find((r) => r.target === 'fanout at max: deliveries/s')!.measured).toBe('8,500, 85 % of the floor\'s 10,000 (Socket.IO + Redis 8,000)');
  expect(rows.find((r) => r.target.startsWith('idle connections'))!.measured).toBe('7,000 B at 19,400 over 3 gateways (Socket.IO + Redis 17,000 B)');
});

test('each target just past its bar is not met', () => {
  const past: TargetInputs = {
    ...atTheBars,
    fanout: doc('fanout', { deliveriesPerSec: 8_499, serverCpuUsPerUnit: 13.1, pssMbPerRole: { broker: 100, gateway: 50.1 } }, { pssMbPerRole: { socketio: 80, redis: 20 } }),
    'fanout-half': doc('fanout', { latencyMs: { p50: 4.1, p99: 20.1, max: 30 } as SystemReport['latencyMs'], serverCpuUsPerUnit: 20.1 },
      { latencyMs: { p50: 4, p99: 500, max: 900 } as SystemReport['latencyMs'], serverCpuUsPerUnit: 20 }, 500),
    broadcast: doc('broadcast', { deliveriesPerSec: 599_999 }, { deliveriesPerSec: 100_000 }),
    direct: doc('direct', { publishPerSec: 19_999, serverCpuUsPerUnit: 100.1 }, { publishPerSec: 20_000, serverCpuUsPerUnit: 50 }),
    idle: doc('idle', { bytesPerConnection: 7000, connections: 19_400, idleProcessMb: { process: 'broker-0-0', largestPss: 60, largestRss: 110 } }, {}),
  };
  expect(verdicts(past)).toEqual({
    'fanout at max: deliveries/s': false,
    'fanout at max: server CPU per delivery': false,
    'fanout at half rate: latency p50': false,
    'fanout at half rate: latency p99': false,
    'fanout at half rate: server CPU per delivery': false,
    'broadcast: deliveries/s': false,
    'memory under fanout: PSS of all processes': false,
    'idle role process: memory': false,
    'idle connections: bytes per connection': undefined,
    'direct: msg/s': false,
    'direct: server CPU per message': false,
    'audit: lost / duplicated / reordered / failed': true,
  });
});

test('a message lost, duplicated, reordered or unacknowledged in any run fails the audit, naming the run', () => {
  for (const bad of [{ lost: 1 }, { duplicated: 1 }, { reordered: 1 }, { failed: 1 }]) {
    const rows = evaluateTargets({ ...atTheBars, direct: doc('direct', { publishPerSec: 20_000, serverCpuUsPerUnit: 100, ...bad }, { publishPerSec: 20_000, serverCpuUsPerUnit: 50 }) });
    const audit = rows.find((r) => r.target.startsWith('audit'))!;
    expect(audit.met).toBe(false);
    expect(audit.measured).toMatch(/^direct: /);
  }
});

test('a target whose report is missing is not measured, never met', () => {
  const rows = evaluateTargets({ fanout: atTheBars.fanout! });
  expect(rows.find((r) => r.target === 'fanout at max: deliveries/s')).toMatchObject({ met: undefined, measured: 'not measured: no floor report' });
  expect(rows.find((r) => r.target === 'broadcast: deliveries/s')!.met).toBeUndefined();
  expect(targetsMarkdown(rows)).toMatch(/^2 of 2 targets met\./); // memory and the audit need only the fanout report
});

test('reports are read by name from the folder, and a file that is not a report is named in the error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'targets-'));
  writeFileSync(join(dir, 'floor.json'), JSON.stringify(atTheBars.floor));
  writeFileSync(join(dir, 'broadcast.json'), JSON.stringify(atTheBars.broadcast));
  expect(Object.keys(readTargetInputs(dir)).sort()).toEqual(['broadcast', 'floor']);
  writeFileSync(join(dir, 'direct.json'), JSON.stringify({ scenario: 'direct', systems: [] }));
  expect(() => readTargetInputs(dir)).toThrow(`${join(dir, 'direct.json')} is not a bench report: options: Invalid input: expected object, received undefined; systems: Too small: expected array to have >=1 items`);
  writeFileSync(join(dir, 'direct.json'), '{');
  expect(() => readTargetInputs(dir)).toThrow(join(dir, 'direct.json'));
});
