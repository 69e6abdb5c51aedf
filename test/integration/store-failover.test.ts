// Issue 16: pi and xiu on the Raft engine, on real processes. With three
// replicas per partition, the pi leader is SIGKILLed while one-to-one
// messages flow and stays down (the launcher restarts it only after the
// test): the two left elect a leader between themselves, the relays find it
// from the replicas' answers, and every acknowledged message is delivered
// once, at consecutive inbox positions.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { startLocalCluster, type LocalClusterHandle, type ProcessStatus } from '../support/cluster.js';
import { expectEachAckedOnce, loginWithInbox } from '../support/inbox.js';

let cluster: LocalClusterHandle;

beforeAll(async () => {
  cluster = await startLocalCluster(['--store-replicas', '3', '--restart-delay', '60000']);
});

afterAll(async () => {
  await cluster.stop();
});

const login = (gateway: number, userId: number) => loginWithInbox(cluster.ready.gateways[gateway]!, userId);

test('the pi leader SIGKILLed for good while directs flow: the other two replicas take over; every acked direct is delivered once', async () => {
  const sender = await login(0, 7001);
  const receiver = await login(1, 7002);
  let leader: ProcessStatus | undefined;
  const deadline = Date.now() + 60_000;
  while (!(leader = (await cluster.processes()).find((p) => p.role === 'pi' && p.member?.leader))) {
    if (Date.now() > deadline) throw new Error('no pi leader in the registry within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const texts = Array.from({ length: 600 }, (_, i) => `direct ${i}`);
  const acked: string[] = [];
  let next = 0;
  let killedAt = 0;
  let firstAckAfterKill = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < texts.length) {
      const i = next++;
      if (i === 200) {
        process.kill(leader!.pid, 'SIGKILL');
        killedAt = Date.now();
      }
      await sender.client.direct(7002, Buffer.from(texts[i]!));
      if (killedAt && !firstAckAfterKill && i > 200) firstAckAfterKill = Date.now();
      acked.push(texts[i]!);
    }
  }));
  console.log(`pi leader SIGKILL: first direct sent after the kill acknowledged ${firstAckAfterKill - killedAt} ms later`);
  expect(acked.length).toBe(600);
  await expectEachAckedOnce(receiver.inbox, acked);
  await Promise.all([sender.client.close(), receiver.client.close()]);
});
