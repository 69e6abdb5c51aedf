// `make simulate SEEDS=N [FROM=S]` runs N seeds of the replication simulator;
// `make simulate SEED=S` replays one. Exits non-zero on the first violation,
// printing the command that replays it.
import { simulate } from './cluster.js';

const one = process.env.SEED;
const from = Number(process.env.FROM ?? 1);
const count = one ? 1 : Number(process.env.SEEDS ?? 10_000);
const first = one ? Number(one) : from;
if (!Number.isInteger(first) || !Number.isInteger(count) || count < 1) {
  console.error('usage: make simulate SEEDS=<count> [FROM=<first seed>] | make simulate SEED=<seed>');
  process.exit(2);
}
const json = process.env.SUMMARY === 'json';
const started = Date.now();
const totals = { events: 0, elections: 0, committed: 0, crashes: 0, damaged: 0, partitions: 0, snapshotsSent: 0 };
for (let seed = first; seed < first + count; seed++) {
  const result = simulate(seed);
  for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += result.stats[key];
  if (!result.ok) {
    console.error(`seed ${seed}: ${result.error}\nreplay: make simulate SEED=${seed}`);
    process.exit(1);
  }
  if (!json && count >= 1000 && (seed - first + 1) % Math.floor(count / 10) === 0) {
    console.log(`${seed - first + 1}/${count} seeds, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}
if (json) console.log(JSON.stringify({ seeds: count, violations: 0, ...totals }));
else console.log(`${count} seeds from ${first}: 0 violations in ${((Date.now() - started) / 1000).toFixed(1)} s; ${JSON.stringify(totals)}`);
