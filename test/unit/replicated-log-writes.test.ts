// How a replica's replicated log writes to RocksDB (for real): a follower
// that receives entry N+1 together with the commit of N writes the entry and
// what the state machine makes of N in one batch, and announces N applied
// only once that batch is on disk.
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Entry, Message } from '../../workloads/replication/raft.js';
import { ReplicatedLog, type LogStateMachine } from '../../workloads/replication/replicated-log.js';
import { KvStore, type KvWrite } from '../../workloads/store/kv-store.js';
import { eventually } from '../support/cluster.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

test('a follower writes entry N+1 and the state machine\'s writes for N in one batch, then announces N applied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-writes-'));
  dirs.push(dir);
  const kv = await KvStore.open(dir);
  const batches: string[][] = [];
  const write = kv.write.bind(kv);
  kv.write = (writes: readonly KvWrite[]) => {
    batches.push(writes.map((w) => Buffer.from(w.key).toString('latin1').replace(/[^\x20-\x7e]/g, '')));
    return write(writes);
  };
  // The state machine writes one key per applied entry: "applied-<data>".
  const machine: LogStateMachine = {
    apply: (entries: Entry[]) => entries.map((e) => ({ key: Buffer.from(`applied-${Buffer.from(e.data).toString()}`), value: Buffer.from('x') })),
    snapshot: () => new Uint8Array(), restore: () => [],
  };
  const replies: Message[] = [];
  const log = await ReplicatedLog.open({ name: 'w', self: 'b', voters: ['a', 'b', 'c'], kv, dataDir: dir, stateMachine: machine, send: (m) => replies.push(m), log: pino({ level: 'silent' }) });
  const applied: number[] = [];
  log.on('applied', (entries) => applied.push(...entries.map((e) => e.index)));
  const entry = (index: number): Entry => ({ index, term: 1, data: Buffer.from(`e${index}`) });
  const append = (prevIndex: number, commit: number): Message =>
    ({ kind: 'append', from: 'a', to: 'b', term: 1, prevIndex, prevTerm: prevIndex === 0 ? 0 : 1, entries: [entry(prevIndex + 1)], commit, stamp: prevIndex + 1 });

  log.receive(append(0, 0));
  await eventually(() => replies.length === 1, 'the reply to entry 1');
  batches.length = 0;
  log.receive(append(1, 1)); // entry 2, and entry 1 is committed
  await eventually(() => applied.includes(1), 'entry 1 to be announced applied');
  expect(batches).toEqual([['w/l', 'applied-e1', 'w/a']]); // the entry key (its index is binary), the machine's write, how far it applied
  expect(await kv.get(Buffer.from('applied-e1'))).not.toBeNull(); // on disk before the announcement
  await log.close();
  await kv.close();
});
