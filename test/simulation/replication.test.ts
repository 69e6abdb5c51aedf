// The replication core through thousands of seeded failure schedules
// (test/simulation/cluster.ts): after every event no committed entry is lost
// or changed, one leader per term, at most one lease holder; after healing,
// every replica converges and commits again. A failure prints the command
// that replays its seed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Simulation, defaultOptions, SIM_CONFIG } from './cluster.js';

const SEEDS = 5000;

/** A bound, not a speed: about 30 s on a quiet 2-core machine, several times that on a loaded one. */
const BOUND_MS = 600_000;

// In a child process: jest's module sandbox makes this tight loop several times slower.
test(`${SEEDS} seeded schedules of loss, delay, duplication, partitions, crashes, damaged logs and compaction keep every invariant`, () => {
  const run = spawnSync(process.execPath, [fileURLToPath(new URL('./simulate.js', import.meta.url))], {
    env: { ...process.env, SEEDS: String(SEEDS), FROM: '1', SUMMARY: 'json' }, encoding: 'utf8', timeout: BOUND_MS,
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const totals = JSON.parse(run.stdout.trim().split('\n').pop()!) as { seeds: number; violations: number; crashes: number; damaged: number; elections: number; snapshotsSent: number; committed: number };
  expect(totals.seeds).toBe(SEEDS);
  expect(totals.violations).toBe(0);
  // The schedules really exercised what they claim to.
  expect(totals.crashes).toBeGreaterThan(SEEDS);
  expect(totals.elections).toBeGreaterThan(SEEDS);
  expect(totals.snapshotsSent).toBeGreaterThan(0);
  expect(totals.damaged).toBeGreaterThan(SEEDS / 10);
  expect(totals.committed).toBeGreaterThan(SEEDS * 50);
}, BOUND_MS + 10_000);

test('a seed replays exactly', () => {
  const a = new Simulation(defaultOptions(4242));
  const b = new Simulation(defaultOptions(4242));
  a.run();
  b.run();
  expect(a.stats).toEqual(b.stats);
  expect(a.stats.committed).toBeGreaterThan(0);
});

test('a fault-free cluster elects one leader and commits', () => {
  const sim = new Simulation({
    seed: 1, nodes: 3, durationMs: 500, config: SIM_CONFIG,
    faults: { loss: 0, duplicate: 0, maxDelayMs: 2, maxDiskMs: 1, crashEveryMs: 1e9, damage: 0, partitionEveryMs: 1e9, compactEveryMs: 1e9 },
  });
  sim.run();
  expect(sim.stats.elections).toBe(1);
  expect(sim.stats.committed).toBeGreaterThan(100);
});
