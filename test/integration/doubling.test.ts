// A partition doubling under traffic (groupchat up runs it on SIGUSR2 as the
// operator does on Kubernetes): the rooms that move to the new partition keep
// their numbering (room_seq goes on where it was, for every member), and
// their history from before the doubling is readable after it.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { messageIdKey, toNumber, type Delivery } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';

const ROOMS = [11, 12, 13, 14, 15, 16]; // with 2 partitions, the odd ones move to partition 1 (11 first)
let cluster: LocalClusterHandle;

beforeAll(async () => {
  cluster = await startLocalCluster(['--partitions', '1', '--replicas', '3', '--restart-delay', '300']);
});

afterAll(async () => {
  await cluster.stop();
});

test('room_seq continues across a doubling for every room, and history from before it is readable after', async () => {
  const members: Array<{ client: ChatClient; got: Map<number, Delivery[]> }> = [];
  for (let i = 0; i < 4; i++) {
    const client = await ChatClient.connect(cluster.ready.gateways[i % 2]!);
    await client.login(7000 + i);
    const got = new Map<number, Delivery[]>(ROOMS.map((r) => [r, []]));
    client.on('message', (d: Delivery) => got.get(d.roomId)?.push(d));
    for (const room of ROOMS) await client.join(room);
    members.push({ client, got });
  }
  const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 90), maxInFlight: 100 });
  const acked = new Map<number, string[]>(ROOMS.map((r) => [r, []]));
  let failed = 0;
  const publishRound = async (round: number) => {
    await Promise.all(ROOMS.map((roomId) => publisher.publish({ roomId, payload: Buffer.from(`r${round}`) }).then(
      (r) => { acked.get(roomId)!.push(messageIdKey(r.messageId)); },
      () => { failed++; },
    )));
  };
  for (let round = 0; round < 30; round++) await publishRound(round);
  // A message the old partition numbers just before the doubling, sent again after the flip (a retry, or a
  // copy through another proxy): the new partition must recognise it, not number it a second time.
  const again = { roomId: ROOMS[0]!, payload: Buffer.from('sent twice'), messageId: publisher.newMessageId() };
  acked.get(again.roomId)!.push(messageIdKey((await publisher.publish(again)).messageId));
  cluster.child.kill('SIGUSR2');
  const doubled = cluster.line('doubled ');
  let round = 30;
  let done = false;
  void doubled.then(() => { done = true; });
  // Publishing goes on through the whole doubling (paced: a busy machine's slow doubling stays within what a
  // hand-off carries), then a while after it.
  while (!done) {
    await publishRound(round++);
    await new Promise((r) => setTimeout(r, 50));
  }
  expect((await publisher.publish(again)).status).toBe('delivered');
  for (const end = round + 30; round < end;) await publishRound(round++);
  publisher.close();
  expect(JSON.parse((await doubled).slice('doubled '.length))).toMatchObject({ brokerPartitions: 2 });
  expect(failed).toBe(0);

  for (const roomId of ROOMS) {
    const expected = acked.get(roomId)!;
    for (const [i, m] of members.entries()) {
      await eventually(() => new Set(m.got.get(roomId)!.map((d) => messageIdKey(d.messageId))).size >= expected.length, `member ${i} to get room ${roomId}'s ${expected.length} messages`);
      const got = m.got.get(roomId)!;
      expect({ roomId, member: i, seqs: got.map((d) => toNumber(d.roomSeq)) }).toEqual({ roomId, member: i, seqs: expected.map((_, n) => n + 1) });
      expect(new Set(got.map((d) => messageIdKey(d.messageId)))).toEqual(new Set(expected));
    }
    // History from the start, across the partition that numbered the room before and the one that does now.
    const page = await members[0]!.client.history(roomId, 0, 1000);
    expect({ roomId, seqs: page.messages.map((d) => toNumber(d.roomSeq)), complete: page.complete })
      .toEqual({ roomId, seqs: expected.map((_, n) => n + 1), complete: true });
    expect(toNumber(page.headSeq)).toBe(expected.length);
  }
  for (const m of members) await m.client.close();
});
