// Durable rooms on real processes: a broker partition is a replicated room
// log. Every replica killed and restarted while publishing loses nothing
// acknowledged, and a member away for the whole run reads it all from disk;
// the leader killed under four pipelining publishers leaves one order and
// consecutive room_seq for everyone; a leader paused past its lease numbers
// nothing once it is back.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { messageIdKey, toNumber, type Delivery } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { requiredMetric } from '../support/metrics.js';
import { eventually, startLocalCluster, type LocalClusterHandle, type ProcessStatus } from '../support/cluster.js';

let cluster: LocalClusterHandle;
/** Retention of this cluster: 2,000 messages per room, 1 MiB of log per partition. */
const KEEP_PER_ROOM = 2000;
const KEEP_BYTES = 1024 * 1024;

beforeAll(async () => {
  // One partition, three replicas: every room of the test lives in the one replicated log.
  cluster = await startLocalCluster(['--partitions', '1', '--replicas', '3', '--restart-delay', '300',
    '--history-messages', String(KEEP_PER_ROOM), '--history-bytes', String(KEEP_BYTES)]);
});

afterAll(async () => {
  await cluster.stop();
});

interface Member { client: ChatClient; got: Delivery[] }

async function member(gateway: number, userId: number, roomId: number, resume?: { roomSeq: number }): Promise<Member> {
  const client = await ChatClient.connect(cluster.ready.gateways[gateway]!);
  await client.login(userId);
  const got: Delivery[] = [];
  client.on('message', (d: Delivery) => { if (d.roomId === roomId) got.push(d); });
  await client.join(roomId, resume ? { sequencerId: 1, roomSeq: resume.roomSeq } : undefined);
  return { client, got };
}

const brokers = async (): Promise<ProcessStatus[]> => (await cluster.processes()).filter((p) => p.role === 'broker');

async function leader(): Promise<ProcessStatus> {
  let found: ProcessStatus | undefined;
  const deadline = Date.now() + 30_000;
  while (!(found = (await brokers()).find((p) => p.member?.leader))) {
    if (Date.now() > deadline) throw new Error('no broker leader registered within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return found;
}

/** Publishes count messages into roomId from `publishers` pipelining publishers; `during` runs once a quarter is sent. */
async function publish(roomId: number, count: number, publishers: number, during: () => Promise<void>, ordinal: number, payloadBytes = 0) {
  const acked: string[] = [];
  let failed = 0;
  const sent: Promise<void>[] = [];
  const pubs = Array.from({ length: publishers }, (_, i) => new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', ordinal + i), maxInFlight: 64 }));
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 4)) await during();
    const payload = payloadBytes ? Buffer.alloc(payloadBytes, i % 256) : Buffer.from(`m${i}`);
    sent.push(pubs[i % publishers]!.publish({ roomId, payload }).then(
      (r) => { acked.push(messageIdKey(r.messageId)); },
      () => { failed++; },
    ));
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(sent);
  for (const p of pubs) p.close();
  return { acked, failed };
}

/** The checks every member's view must pass: each acked message once, room_seq 1, 2, 3, ... with nothing between. */
function checkView(got: Delivery[], acked: string[], label: string) {
  const keys = got.map((d) => messageIdKey(d.messageId));
  expect({ label, duplicated: keys.length - new Set(keys).size }).toEqual({ label, duplicated: 0 });
  const have = new Set(keys);
  expect({ label, lost: acked.filter((k) => !have.has(k)).length }).toEqual({ label, lost: 0 });
  const seqs = got.map((d) => toNumber(d.roomSeq));
  const gaps = seqs.filter((s, i) => i > 0 && s !== seqs[i - 1]! + 1).length;
  expect({ label, gaps, reordered: seqs.filter((s, i) => i > 0 && s < seqs[i - 1]!).length }).toEqual({ label, gaps: 0, reordered: 0 });
}

describe('durable rooms', () => {
  test('every replica SIGKILLed and restarted while publishing: nothing acked lost; a member away all along reads it all from disk', async () => {
    const roomId = 101;
    const online = await member(0, 9001, roomId);
    const away = await member(1, 9002, roomId);
    const warmup = await publish(roomId, 20, 1, async () => undefined, 40);
    expect(warmup.failed).toBe(0);
    await eventually(() => away.got.length === 20, 'the away member to get the first 20 messages');
    const position = toNumber(away.got[away.got.length - 1]!.roomSeq);
    await away.client.close();

    const before = await brokers();
    const { acked, failed } = await publish(roomId, 1500, 2, async () => {
      for (const b of before) process.kill(b.pid, 'SIGKILL');
    }, 41);
    for (const b of before) await cluster.waitForRestart(b.name, b.restarts + 1);
    console.log(`all ${before.length} replicas killed: ${acked.length} acked, ${failed} failed publishes`);
    expect(acked.length).toBeGreaterThan(1000);

    const back = await member(1, 9002, roomId, { roomSeq: position });
    const expected = acked.length; // the 1500 here; the warm-up's 20 were before the position
    await eventually(() => new Set(back.got.map((d) => messageIdKey(d.messageId))).size >= expected, `the returning member to read ${expected} messages`);
    checkView(back.got, acked, 'returning member');
    expect(toNumber(back.got[0]!.roomSeq)).toBe(position + 1);
    // An ack means every online member has it: the member that stayed got each one live, once, in order.
    await eventually(() => new Set(online.got.map((d) => messageIdKey(d.messageId))).size >= expected + 20, 'the online member to get every acked message');
    checkView(online.got, acked, 'online member');
    await online.client.close();
    await back.client.close();
  });

  test('SIGKILL of the leader under four pipelining publishers: one order, consecutive room_seq, nothing lost or twice', async () => {
    const roomId = 202;
    const members = [await member(0, 9101, roomId), await member(1, 9102, roomId), await member(0, 9103, roomId)];
    const victim = await leader();
    const { acked, failed } = await publish(roomId, 3000, 4, async () => { process.kill(victim.pid, 'SIGKILL'); }, 50);
    console.log(`leader ${victim.name} killed: ${acked.length} acked, ${failed} failed`);
    expect(failed).toBe(0);
    for (const m of members) await eventually(() => new Set(m.got.map((d) => messageIdKey(d.messageId))).size >= acked.length, 'every member to get every acked message');
    members.forEach((m, i) => checkView(m.got, acked, `member ${i}`));
    const order = (m: Member) => m.got.map((d) => `${toNumber(d.roomSeq)}:${messageIdKey(d.messageId)}`).join(',');
    expect(order(members[1]!)).toBe(order(members[0]!));
    expect(order(members[2]!)).toBe(order(members[0]!));
    await cluster.waitForRestart(victim.name, victim.restarts + 1);
    for (const m of members) await m.client.close();
  });

  test('a leader paused past its lease numbers nothing after it is back: no two messages share a room_seq', async () => {
    const roomId = 303;
    const watcher = await member(0, 9201, roomId);
    const victim = await leader();
    const { acked, failed } = await publish(roomId, 2000, 2, async () => {
      process.kill(victim.pid, 'SIGSTOP');
      // Resumed only once another replica leads: the paused one comes back to a newer term.
      const deadline = Date.now() + 30_000;
      while (!(await brokers()).some((p) => p.member?.leader && p.name !== victim.name)) {
        if (Date.now() > deadline) throw new Error('no new leader while the old one was paused');
        await new Promise((r) => setTimeout(r, 50));
      }
      process.kill(victim.pid, 'SIGCONT');
    }, 60);
    expect(failed).toBe(0);
    await eventually(() => new Set(watcher.got.map((d) => messageIdKey(d.messageId))).size >= acked.length, 'the watcher to get every acked message');
    checkView(watcher.got, acked, 'watcher');
    // The stored history agrees: each position holds one message, the one the watcher saw there.
    const seen = new Map(watcher.got.map((d) => [toNumber(d.roomSeq), messageIdKey(d.messageId)]));
    let before = 0;
    const stored = new Map<number, string>();
    for (;;) {
      const page = await watcher.client.history(roomId, before, 1000);
      for (const d of page.messages) stored.set(toNumber(d.roomSeq), messageIdKey(d.messageId));
      if (page.messages.length === 0 || toNumber(page.messages[0]!.roomSeq) <= 1) break;
      before = toNumber(page.messages[0]!.roomSeq);
    }
    expect(stored.size).toBe(seen.size);
    for (const [seq, key] of seen) expect({ seq, key: stored.get(seq) }).toEqual({ seq, key });
    await watcher.client.close();
  });

  test('a follower restarted while the largest messages were committed catches up: appends stay within a peer frame', async () => {
    const roomId = 808;
    const watcher = await member(0, 9501, roomId);
    const all = await brokers();
    const chief = await leader();
    const [away, other] = all.filter((b) => b.name !== chief.name);
    // Paused, then killed: 40 × 60 KiB (2.4 MiB) of log is what it restarts without, more than one peer frame (1 MiB) carries.
    process.kill(away!.pid, 'SIGSTOP');
    const first = await publish(roomId, 40, 1, async () => undefined, 85, 60 * 1024);
    process.kill(away!.pid, 'SIGKILL');
    await cluster.waitForRestart(away!.name, away!.restarts + 1);
    process.kill(other!.pid, 'SIGSTOP');
    // Now a commit needs the returning follower: it must have caught up with all of it first.
    const last = await publish(roomId, 1, 1, async () => undefined, 86, 60 * 1024);
    process.kill(other!.pid, 'SIGCONT');
    expect({ failed: first.failed + last.failed, acked: first.acked.length + last.acked.length }).toEqual({ failed: 0, acked: 41 });
    const acked = [...first.acked, ...last.acked];
    await eventually(() => watcher.got.length >= acked.length, `the watcher to get the ${acked.length} large messages (has ${watcher.got.length})`);
    checkView(watcher.got, acked, 'watcher of large messages');
    await watcher.client.close();
  });

  test('bad history requests get clear errors and change nothing', async () => {
    const roomId = 707;
    const { acked } = await publish(roomId, 5, 1, async () => undefined, 80);
    const reader = await member(1, 9401, 708);
    await expect(reader.client.history(roomId, 0, 5000)).rejects.toThrow(/INVALID_ARGUMENT: limit must be at most 1000/);
    await expect(reader.client.history(0, 0, 10)).rejects.toThrow(/INVALID_ARGUMENT/);
    await expect(reader.client.roomHeads([])).rejects.toThrow(/INVALID_ARGUMENT/);
    await expect(reader.client.roomHeads(Array.from({ length: 1001 }, (_, i) => i + 1))).rejects.toThrow(/INVALID_ARGUMENT/);
    // A position the room never gave out: joined, and told so.
    const confused = await ChatClient.connect(cluster.ready.gateways[0]!);
    await confused.login(9402);
    await expect(confused.join(roomId, { sequencerId: 1, roomSeq: 999 })).rejects.toThrow(/INVALID_ARGUMENT: joined; resume_after_seq 999 is beyond the room's head 5/);
    await confused.close();
    // A room nobody ever wrote to is simply empty.
    const empty = await reader.client.history(4242, 0, 10);
    expect({ messages: empty.messages.length, head: toNumber(empty.headSeq), complete: empty.complete }).toEqual({ messages: 0, head: 0, complete: true });
    // And the room is as it was.
    const page = await reader.client.history(roomId, 0, 10);
    expect(new Set(page.messages.map((d) => messageIdKey(d.messageId)))).toEqual(new Set(acked));
    await reader.client.close();
  });

  // Last: compaction by bytes is partition-wide and removes the other rooms' old history too.
  test('retention: a room keeps its newest messages; the log is compacted to its byte budget; a Join from before gets HISTORY_INCOMPLETE and what is kept', async () => {
    const roomId = 404;
    const { acked, failed } = await publish(roomId, KEEP_PER_ROOM + 300, 2, async () => undefined, 70);
    expect(failed).toBe(0);
    const reader = await member(0, 9301, 505);
    let page = await reader.client.history(roomId, 0, 1000);
    expect(toNumber(page.headSeq)).toBe(acked.length);
    expect(toNumber(page.firstSeq)).toBe(acked.length - KEEP_PER_ROOM + 1);
    // From the start: incomplete, and exactly the kept messages, in order.
    const late = await ChatClient.connect(cluster.ready.gateways[1]!);
    await late.login(9302);
    const got: Delivery[] = [];
    late.on('message', (d: Delivery) => { if (d.roomId === roomId) got.push(d); });
    await expect(late.join(roomId, { sequencerId: 1, roomSeq: 0 })).rejects.toThrow(/HISTORY_INCOMPLETE/);
    expect(got.map((d) => toNumber(d.roomSeq))).toEqual(Array.from({ length: KEEP_PER_ROOM }, (_, i) => acked.length - KEEP_PER_ROOM + 1 + i));
    await late.close();

    // Past the byte budget (3 MiB into a 1 MiB log): every replica compacts the oldest entries away.
    const big = await publish(606, 750, 2, async () => undefined, 72, 4096);
    expect(big.failed).toBe(0);
    const replicas = (await brokers()).map((b) => b.member!.httpAddress!);
    for (const http of replicas) {
      const deadline = Date.now() + 60_000;
      while ((await requiredMetric(http, 'groupchat_log_bytes')) > KEEP_BYTES) {
        if (Date.now() > deadline) throw new Error(`${http}: the room log stayed over its ${KEEP_BYTES}-byte budget for 60 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await requiredMetric(http, 'groupchat_log_compacted_entries_total')).toBeGreaterThan(0);
    }
    page = await reader.client.history(606, 1, 10);
    expect(toNumber(page.firstSeq)).toBeGreaterThan(1);
    page = await reader.client.history(606, toNumber(page.firstSeq), 10);
    expect(page.complete).toBe(false);
    expect(page.messages).toEqual([]);
    // The room that did not get the big messages lost its old history to the same budget, but not its numbering.
    expect(toNumber((await reader.client.roomHeads([roomId]))[0]!.headSeq)).toBe(acked.length);
    await reader.client.close();
  });
});
