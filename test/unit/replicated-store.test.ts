// The replicated store of pi and xiu on real RocksDB: three replicas in one
// process, their replication messages and data copies passed in memory
// (a replica can be cut off). A write is done only once a majority has it and
// the leader applied it; a replica whose data directory was wiped, behind a
// compacted log, copies the data and ends up with exactly the leader's.
import { afterAll, afterEach, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../workloads/observability/logger.js';
import { peer } from '../../workloads/protocol/index.js';
import { ReplicatedStore, StoreUnavailable, type CompactionLimits } from '../../workloads/store/replicated-store.js';
import { eventually } from '../support/cluster.js';

const VOTERS = ['pi-0-0', 'pi-0-1', 'pi-0-2'];
const log = createLogger('replicated-store-test');
log.level = 'warn';
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/**
 * Three replicas wired in memory; a replica in `cut` neither sends nor
 * receives. With copyLag, a copy page reaches its requester only once the
 * requester applied that many entries past what the source had applied when
 * it answered (a slow network: the page is older than the requester's
 * state), and at a moment when the requester has handed entries to its state
 * machine whose writes are queued but not yet on disk.
 */
class Partition {
  readonly stores = new Map<string, ReplicatedStore>();
  readonly cut = new Set<string>();
  readonly dirs = new Map(VOTERS.map((v) => { const d = mkdtempSync(join(tmpdir(), `${v}-`)); dirs.push(d); return [v, d]; }));

  constructor(private readonly compaction?: CompactionLimits, private readonly copyLag = 0) {}

  async start(voter: string): Promise<ReplicatedStore> {
    const reachable = (to: string) => !this.cut.has(voter) && !this.cut.has(to) ? this.stores.get(to) : undefined;
    const store = await ReplicatedStore.open({
      self: voter, voters: VOTERS, dataDir: this.dirs.get(voter)!, log,
      ...(this.compaction ? { compaction: this.compaction } : {}),
      send: (message) => setImmediate(() => reachable(message.to)?.receive(message)),
      copyFrom: async (to, request) => {
        const source = reachable(to);
        if (!source) return { ok: false, rows: [], done: false, message: `${to} unreachable` };
        const page = await source.serveCopy(request);
        const readAt = source.queuedApplyIndex; // the page is no newer than this
        if (page.ok && this.copyLag > 0) {
          const requester = this.stores.get(voter)!;
          await eventually(() => requester.appliedIndex >= readAt + this.copyLag, 'the copying replica applies past the page');
          await midApply(requester);
        }
        return page;
      },
    });
    this.stores.set(voter, store);
    return store;
  }

  async stop(voter: string): Promise<void> {
    await this.stores.get(voter)?.close();
    this.stores.delete(voter);
  }

  async leader(): Promise<ReplicatedStore> {
    let found: ReplicatedStore | undefined;
    await eventually(() => (found = [...this.stores.entries()].find(([v, s]) => !this.cut.has(v) && s.serving)?.[1]) !== undefined, 'a serving leader');
    return found!;
  }

  async close(): Promise<void> {
    for (const voter of [...this.stores.keys()]) await this.stop(voter);
  }
}

/** Resolves in a turn where the store's log has entries applied in memory whose writes are not yet durable (polled every turn: the window is one fsync long). */
async function midApply(store: ReplicatedStore): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (store.queuedApplyIndex <= store.appliedIndex) {
    if (Date.now() > deadline) throw new Error('the copying replica never had an apply in flight');
    await new Promise((r) => setImmediate(r));
  }
}

let partition: Partition;
afterEach(async () => { await partition.close(); });

const key = (i: number) => Buffer.from(`k${String(i).padStart(4, '0')}`);
const all = async (s: ReplicatedStore) => (await s.range(Buffer.alloc(0), Buffer.of(0xff), 1_000_000)).map((r) => `${r.key.toString()}=${r.value.toString()}`);
const status = (write: () => Promise<unknown>) => Promise.resolve().then(write).then(() => 'done', (e: StoreUnavailable) => peer.StoreStatus[e.status]);

test('a write is done once a majority has it and the leader applied it; a replica alone neither takes writes nor acknowledges them', async () => {
  partition = new Partition();
  for (const v of VOTERS) await partition.start(v);
  const leader = await partition.leader();
  await leader.propose([{ key: key(1), value: Buffer.from('one') }]);
  expect((await leader.get(key(1)))?.toString()).toBe('one'); // readable as soon as the write is done

  const follower = [...partition.stores.values()].find((s) => s !== leader)!;
  expect(() => follower.propose([{ key: key(2), value: Buffer.from('x') }])).toThrow(StoreUnavailable);

  // Cut the leader off from both followers: its write cannot reach a majority, so it is never acknowledged;
  // it loses leadership (no majority within the election timeout) and the write is refused.
  const leaderId = [...partition.stores.entries()].find(([, s]) => s === leader)![0];
  partition.cut.add(leaderId);
  const alone = status(() => leader.propose([{ key: key(3), value: Buffer.from('lost') }]));
  expect(await alone).toBe('NOT_LEADER');
  partition.cut.delete(leaderId);
  const next = await partition.leader();
  await next.propose([{ key: key(4), value: Buffer.from('four') }]);
  for (const store of partition.stores.values()) {
    await eventually(() => store.appliedIndex >= next.appliedIndex, 'every replica applies the new leader\'s entries');
    expect((await store.get(key(1)))?.toString()).toBe('one');
    expect(await store.get(key(3))).toBeNull(); // the cut-off leader's entry was never committed
  }
});

test('the calls of one event-loop turn are one log entry, up to 256 KiB of ops; each call settles with it', async () => {
  partition = new Partition();
  for (const v of VOTERS) await partition.start(v);
  const leader = await partition.leader();
  let before = leader.appliedIndex;
  await Promise.all([1, 2, 3].map((i) => leader.propose([{ key: key(i), value: Buffer.from(`v${i}`) }])));
  expect(leader.appliedIndex - before).toBe(1);
  expect(await all(leader)).toEqual(['k0001=v1', 'k0002=v2', 'k0003=v3']);
  before = leader.appliedIndex;
  const large = Buffer.alloc(100 * 1024, 1);
  await Promise.all([4, 5, 6].map((i) => leader.propose([{ key: key(i), value: large }])));
  expect(leader.appliedIndex - before).toBe(2); // 200 KiB, then a third that would pass 256 KiB
});

test('a replica whose data directory was wiped, behind a compacted log, copies the data while writes go on and ends with exactly the leader\'s', async () => {
  partition = new Partition({ maxEntries: 40, maxBytes: 1 << 20, keepEntries: 10, keepBytes: 1 << 20, intervalMs: 50 }, 5);
  for (const v of VOTERS) await partition.start(v);
  let leader = await partition.leader();
  // Puts, overwrites and deletes, so a copy read at a later position than the snapshot must be reconciled;
  // every write also sets key 150, so any entry applied after a page was read makes that page stale.
  const write = async (i: number) => {
    leader = leader.serving ? leader : await partition.leader();
    const ops = i % 7 === 0 ? [{ key: key((i - 3) % 150), delete: true }] : [{ key: key(i % 150), value: Buffer.from(`v${i}`) }];
    await leader.propose([...ops, { key: key(150), value: Buffer.from(`last v${i}`) }]);
  };
  for (let i = 1; i <= 300; i++) await write(i);
  const wiped = VOTERS.find((v) => partition.stores.get(v) !== leader)!;
  await partition.stop(wiped);
  rmSync(partition.dirs.get(wiped)!, { recursive: true, force: true });
  for (let i = 301; i <= 400; i++) await write(i);
  await eventually(() => leader.firstIndex > 300, 'the leader compacts its log past what the wiped replica had');

  const rejoined = await partition.start(wiped);
  let i = 401;
  // Writes go on while it copies (bounded: a copy that never ends fails here).
  while (rejoined.appliedIndex === 0 || rejoined.copying) {
    if (i > 5000) throw new Error('the wiped replica was still copying after 4,600 more writes');
    await write(i++);
  }
  await write(i++);
  await eventually(() => rejoined.appliedIndex >= leader.appliedIndex && !rejoined.copying, 'the wiped replica catches up');
  expect(await all(rejoined)).toEqual(await all(leader));
  expect(leader.firstIndex).toBeGreaterThan(1); // the log stays bounded
});
