// A replica that finds its log damaged at start (on real RocksDB): it keeps
// what precedes the damage, records that it is catching up before anything
// else, votes for nobody until a leader's append has brought it up to that
// leader's commit index, and tells the leader it lost entries so the leader
// resends them (the simulator checks the same rule under thousands of
// schedules: test/simulation).
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DEFAULT_RAFT_CONFIG, type Message } from '../../workloads/replication/raft.js';
import { ReplicatedLog, type LogStateMachine } from '../../workloads/replication/replicated-log.js';
import { KvStore } from '../../workloads/store/kv-store.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const machine: LogStateMachine = { apply: () => [], snapshot: () => new Uint8Array(), restore: () => [] };
const silent = pino({ level: 'silent' });
/** Short timeouts, so an election timeout passes within the test. */
const FAST = { ...DEFAULT_RAFT_CONFIG, electionMs: 40, heartbeatMs: 10, leaseMs: 28 };

function entryKey(index: number): Buffer {
  const key = Buffer.alloc(7 + 9);
  key.write('damage/l', 0);
  key.writeBigUInt64BE(BigInt(index), 8);
  return key;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

test('a damaged log: kept up to the damage, no vote until caught up, the leader told to resend', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-damage-'));
  dirs.push(dir);
  // Five entries written by a replica that leads alone.
  let kv = await KvStore.open(dir);
  const alone = await ReplicatedLog.open({ name: 'damage', self: 'a', voters: ['a'], kv, dataDir: dir, stateMachine: machine, send: () => undefined, log: silent });
  await until(() => alone.ready, 'the lone replica to lead');
  for (let i = 1; i <= 5; i++) alone.propose(Buffer.from(`e${i}`));
  await until(() => alone.appliedIndex >= 6, 'five entries (and the no-op) to apply');
  const term = alone.raft.term;
  await alone.close();
  // Entry 4 becomes garbage on disk.
  await kv.write([{ key: entryKey(4), value: Buffer.from('not an entry') }]);
  await kv.close();

  kv = await KvStore.open(dir);
  const sent: Message[] = [];
  const damaged = await ReplicatedLog.open({ name: 'damage', self: 'a', voters: ['a', 'b', 'c'], kv, dataDir: dir, stateMachine: machine, send: (m) => sent.push(m), log: silent, config: FAST });
  // A term of its own (the leader it knew steps down; older messages are refused), and what precedes the damage.
  expect({ catchingUp: damaged.raft.catchingUp, lastIndex: damaged.raft.lastIndex, term: damaged.raft.term }).toEqual({ catchingUp: true, lastIndex: 3, term: term + 1 });
  // Recorded before it runs: a crash now cannot make it forget.
  expect(JSON.parse((await kv.get(Buffer.from('damage/h')))!.toString())).toMatchObject({ catchingUp: true });

  // A replica started after it, with an intact (empty) log, campaigns once its election timeout passes;
  // the damaged one does not, and refuses a candidate whose log is no shorter than what is left here.
  const otherDir = mkdtempSync(join(tmpdir(), 'log-intact-'));
  dirs.push(otherDir);
  const otherKv = await KvStore.open(otherDir);
  const otherSent: Message[] = [];
  const intact = await ReplicatedLog.open({ name: 'damage', self: 'b', voters: ['a', 'b', 'c'], kv: otherKv, dataDir: otherDir, stateMachine: machine, send: (m) => otherSent.push(m), log: silent, config: FAST });
  await until(() => otherSent.some((m) => m.kind === 'vote'), 'the intact replica to campaign');
  await intact.close();
  await otherKv.close();
  expect(sent.filter((m) => m.kind === 'vote')).toEqual([]);
  damaged.receive({ kind: 'vote', from: 'b', to: 'a', term: term + 1, prevote: false, lastIndex: 3, lastTerm: term });
  await until(() => sent.some((m) => m.kind === 'voteReply'), 'the vote reply');
  expect(sent.find((m) => m.kind === 'voteReply')).toMatchObject({ granted: false });

  // The leader (c) appends after its index 5: the reply says entries were lost, so it can start again from 3.
  const stamp = 1;
  damaged.receive({ kind: 'append', from: 'c', to: 'a', term: term + 1, prevIndex: 5, prevTerm: term, entries: [], commit: 6, stamp });
  await until(() => sent.some((m) => m.kind === 'appendReply'), 'the append reply');
  expect(sent.find((m) => m.kind === 'appendReply')).toMatchObject({ success: false, match: 3, lost: true });

  // Up to the leader's commit index, but that index is of an older term: the leader may not know yet
  // what a majority holds beyond it, so the replica stays out of elections.
  const entries = [4, 5, 6].map((index) => ({ index, term, data: Buffer.from(`again ${index}`) }));
  damaged.receive({ kind: 'append', from: 'c', to: 'a', term: term + 1, prevIndex: 3, prevTerm: term, entries, commit: 6, stamp });
  await until(() => sent.filter((m) => m.kind === 'appendReply').length >= 2, 'the second append reply');
  expect(damaged.raft.catchingUp).toBe(true);
  // Up to an entry the leader committed in its own term: caught up, it votes again.
  const own = { index: 7, term: term + 1, data: Buffer.from('the leader\'s own') };
  damaged.receive({ kind: 'append', from: 'c', to: 'a', term: term + 1, prevIndex: 6, prevTerm: term, entries: [own], commit: 7, stamp });
  await until(() => !damaged.raft.catchingUp, 'the replica to catch up');
  await damaged.close();
  expect(JSON.parse((await kv.get(Buffer.from('damage/h')))!.toString()).catchingUp).toBeUndefined();
  await kv.close();
});
