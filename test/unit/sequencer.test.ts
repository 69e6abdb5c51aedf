// The broker's numbering as a unit, without a process: a fake partition log
// stands in for Raft (the simulator tests that), a real RoomLog over RocksDB
// holds what was applied. What a leader numbers is consecutive per room, a
// duplicate is never numbered twice, a leader that lost its lease numbers
// nothing and, when it gets it back, goes on after what it had appended.
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBatch, encodeDoublingStep, RoomLog } from '../../workloads/broker/room-log.js';
import { Sequencer, type PartitionLog } from '../../workloads/broker/sequencer.js';
import { TokenBuckets } from '../../workloads/limits/token-bucket.js';
import { Long, peer, toNumber, type Publish, type RoomDelivery } from '../../workloads/protocol/index.js';
import type { Entry } from '../../workloads/replication/raft.js';
import { KvStore } from '../../workloads/store/kv-store.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A log whose leadership, lease and commits the test decides. */
class FakeLog implements PartitionLog {
  ready = true;
  isLeader = true;
  term = 1;
  appliedIndex = 0;
  entries: Entry[] = [];
  get lastIndex(): number { return this.entries.length; }
  propose(data: Uint8Array): number | null {
    if (!this.ready && !this.isLeader) return null;
    this.entries.push({ index: this.entries.length + 1, term: this.term, data });
    return this.entries.length;
  }
  entryAt(index: number): Entry | undefined { return this.entries[index - 1]; }
}

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'sequencer-'));
  dirs.push(dir);
  const kv = await KvStore.open(dir);
  const rooms = new RoomLog(kv, { messagesPerRoom: 1000, maxAgeSeconds: 0, bytesPerPartition: Number.MAX_SAFE_INTEGER });
  const log = new FakeLog();
  const fannedOut: RoomDelivery[] = [];
  const sequencer = new Sequencer({ log, rooms, roomLimits: new TokenBuckets<number>(null), fanout: (d, done) => { fannedOut.push(d); done(); } });
  /** Commits and applies every entry appended so far, as the replicated log would. */
  const commit = async () => {
    const fresh = log.entries.slice(log.appliedIndex);
    await kv.write(rooms.apply(fresh));
    log.appliedIndex = log.entries.length;
    sequencer.onApplied(fresh);
  };
  return { kv, rooms, log, sequencer, fannedOut, commit };
}

const turn = () => new Promise((r) => setImmediate(r));
function publish(roomId: number, id: number, sender = 5): Publish {
  return { messageId: Long.fromNumber(id, true), roomId, senderId: sender, payload: Buffer.from(`m${id}`), sentAtMs: Long.UZERO, correlation: 0, priority: 0 } as Publish;
}

test('numbers each room consecutively, appends a turn as one entry, acks after commit and fan-out', async () => {
  const { log, sequencer, fannedOut, commit, kv } = await setup();
  const acks: number[] = [];
  for (let i = 1; i <= 5; i++) sequencer.publish(publish(1 + (i % 2), i), (s) => acks.push(s));
  await turn();
  expect(log.entries).toHaveLength(1);
  expect(acks).toEqual([]); // nothing acked before its entry commits
  await commit();
  expect(acks).toEqual([0, 0, 0, 0, 0]);
  expect(fannedOut.map((d) => `${d.roomId}:${toNumber(d.roomSeq)}`)).toEqual(['2:1', '1:1', '2:2', '1:2', '2:3']);
  await kv.close();
});

test('while an entry is in flight, later turns wait and go out together in the next entry once it applies', async () => {
  const { log, sequencer, commit, kv } = await setup();
  const acks: number[] = [];
  sequencer.publish(publish(1, 1), (s) => acks.push(s));
  await turn();
  expect(log.entries).toHaveLength(1);
  for (let i = 2; i <= 4; i++) {
    sequencer.publish(publish(1, i), (s) => acks.push(s));
    await turn(); // three turns while the first entry is uncommitted
  }
  expect(log.entries).toHaveLength(1);
  await commit();
  await turn();
  expect(log.entries.map((e) => decodeBatch(e.data).messages.map((m) => toNumber(m.roomSeq)))).toEqual([[1], [2, 3, 4]]);
  await commit();
  expect(acks).toEqual([0, 0, 0, 0]);
  await kv.close();
});

test('a duplicate is never numbered twice, before or after its commit', async () => {
  const { log, sequencer, commit, kv } = await setup();
  const acks: number[] = [];
  sequencer.publish(publish(1, 7), (s) => acks.push(s));
  sequencer.publish(publish(1, 7), (s) => acks.push(s));
  await turn();
  await commit();
  sequencer.publish(publish(1, 7), (s) => acks.push(s));
  expect(acks).toEqual([0, 0, 0]);
  expect(log.entries.flatMap((e) => decodeBatch(e.data).messages)).toHaveLength(1);
  await kv.close();
});

test('without its lease a leader numbers nothing; with it back it continues after what it appended', async () => {
  const { log, sequencer, commit, rooms, kv } = await setup();
  const acks: number[] = [];
  sequencer.publish(publish(1, 1), (s) => acks.push(s));
  await turn(); // appended as seq 1, not committed
  log.ready = false;
  sequencer.checkReady();
  expect(acks).toEqual([peer.PublishStatus.NOT_LEADER]);
  sequencer.publish(publish(1, 2), (s) => acks.push(s));
  expect(acks).toEqual([peer.PublishStatus.NOT_LEADER, peer.PublishStatus.UNAVAILABLE]);
  log.ready = true;
  sequencer.checkReady();
  sequencer.publish(publish(1, 2), (s) => acks.push(s));
  sequencer.publish(publish(1, 1), (s) => acks.push(s)); // the retry of the first: waits for its entry, not renumbered
  await turn();
  await commit(); // the first entry: the second message waited for it to apply
  await turn();
  await commit();
  expect(acks.slice(2).sort()).toEqual([0, 0]);
  const seqs = log.entries.flatMap((e) => decodeBatch(e.data).messages).map((d) => `${toNumber(d.messageId)}:${toNumber(d.roomSeq)}`);
  expect(seqs).toEqual(['1:1', '2:2']);
  expect(rooms.position(1).head).toBe(2);
  await kv.close();
});

test('after a hand-off is proposed, the rooms it moves are refused at once', async () => {
  const { sequencer, commit, rooms, kv } = await setup();
  const acks: number[] = [];
  const move = { partition: 1, partitions: 2 };
  expect(sequencer.proposeControl(encodeDoublingStep({ handOff: move }), move)).toBe(true);
  sequencer.publish(publish(3, 1), (s) => acks.push(s)); // 3 % 2 = 1: moved
  sequencer.publish(publish(4, 2), (s) => acks.push(s)); // stays
  await turn();
  await commit();
  expect(acks).toEqual([peer.PublishStatus.WRONG_PARTITION, 0]);
  expect(rooms.movedAway(3)).toBe(true);
  expect(rooms.movedAway(4)).toBe(false);
  await kv.close();
});

test('a follower that becomes leader recognises what it applied as a follower: a retry is fanned out and acked, not numbered again', async () => {
  const { log, sequencer, commit, rooms, fannedOut, kv } = await setup();
  // Another leader's entry, applied here while following.
  log.ready = false;
  log.isLeader = false;
  sequencer.checkReady();
  const theirs: RoomDelivery = {
    messageId: Long.fromNumber(41, true), roomId: 1, senderId: 5, roomSeq: Long.fromNumber(1, true), sequencerId: 1,
    payload: Buffer.from('m41'), sentAtMs: Long.UZERO, vroomMask: Long.MAX_UNSIGNED_VALUE, priority: 0,
  } as RoomDelivery;
  log.entries.push({ index: 1, term: 1, data: peer.RoomLogBatch.encode({ messages: [theirs], appendedAtMs: 1 }).finish() });
  await commit();
  expect(fannedOut).toEqual([]); // a follower fans out only its shares of split rooms, not this
  // Now this replica leads; the publisher retries message 41 here.
  log.term = 2;
  log.ready = true;
  log.isLeader = true;
  const acks: number[] = [];
  sequencer.publish(publish(1, 41), (s) => acks.push(s));
  sequencer.publish(publish(1, 42), (s) => acks.push(s));
  await turn();
  await commit();
  expect(acks).toEqual([0, 0]);
  const seqs = log.entries.flatMap((e) => decodeBatch(e.data).messages).map((d) => `${toNumber(d.messageId)}:${toNumber(d.roomSeq)}`);
  expect(seqs).toEqual(['41:1', '42:2']);
  expect(rooms.position(1).head).toBe(2);
  await kv.close();
});
