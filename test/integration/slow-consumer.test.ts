// Issue 7, acceptance 3: a gateway that stops reading (SIGSTOP) does not grow
// a broker's memory past its bound, and recovers by pulling once it reads
// again; critical messages overtake queued chat traffic. A gateway stalled
// past its registry TTL catches up what the brokers released for it.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { metricValue, requiredMetric } from '../support/metrics.js';
import { messageIdKey } from '../../workloads/protocol/index.js';
import { connectUser, type User } from '../support/traffic.js';

const QUEUE_BOUND = 2000;
let cluster: LocalClusterHandle;
let users: User[];

beforeAll(async () => {
  // One broker partition and replica: every room's deliveries go through it.
  cluster = await startLocalCluster(['--partitions', '1', '--replicas', '1', '--gateway-queue', String(QUEUE_BOUND)]);
  users = [];
  for (let i = 0; i < 20; i++) users.push(await connectUser(cluster.ready.gateways[i % 2]!, 900 + i, [77]));
});

afterAll(async () => {
  await Promise.all(users.map((u) => u.client.close()));
  await cluster.stop();
});

/** A broker sample; one the broker does not export fails the test (it would read as 0 and pass a bound). */
async function brokerMetric(sample: string): Promise<number> {
  const broker = (await cluster.processes()).find((p) => p.role === 'broker')!;
  return requiredMetric(broker.member!.httpAddress!, sample);
}

describe('slow consumers', () => {
  test('a stalled gateway stays within the broker bound and recovers by pulling', async () => {
    const stalled = (await cluster.processes()).find((p) => p.name === 'gateway-1')!;
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 30), timeoutMs: 30_000, maxInFlight: 5000 });
    process.kill(stalled.pid, 'SIGSTOP');
    // Far more than the bound, while gateway-1 reads nothing.
    const stalledPhase = Array.from({ length: 3000 }, (_, i) => publisher.publish({ roomId: 77, payload: Buffer.from(`stalled ${i}`) }));
    const settled = await Promise.allSettled(stalledPhase);
    const highWater = await brokerMetric('groupchat_broker_gateway_queue_high_water');
    process.kill(stalled.pid, 'SIGCONT');
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true); // the healthy gateway kept acking
    expect(highWater).toBeLessThanOrEqual(QUEUE_BOUND);
    expect(await brokerMetric('groupchat_broker_delivery_refused_total')).toBeGreaterThan(0);

    // Stalled past its registry TTL, gateway-1 was dropped; once it reads again it
    // comes back: wait until a probe reaches its members, then they get all new traffic.
    const onStalled = users.filter((_, i) => i % 2 === 1);
    await eventually(() => {
      void publisher.publish({ roomId: 77, payload: Buffer.from('probe') }).catch(() => undefined);
      return onStalled.every((u) => u.client.positions.has(77) && (u.received.get(77) ?? []).length > 0);
    }, 'gateway-1 back in the room', 30_000);
    for (const u of onStalled) u.received.clear();
    const after = await Promise.all(Array.from({ length: 2000 }, (_, i) => publisher.publish({ roomId: 77, payload: Buffer.from(`after ${i}`) })));
    expect(after.length).toBe(2000);
    await eventually(() => onStalled.every((u) => (u.received.get(77)?.length ?? 0) >= 2000), 'recovered delivery');
    expect(await brokerMetric('groupchat_broker_flow_mode_total{mode="pull"}')).toBeGreaterThan(0);
    publisher.close();
  });

  test('a critical message overtakes the chat traffic queued for a stalled gateway', async () => {
    const stalled = (await cluster.processes()).find((p) => p.name === 'gateway-1')!;
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 31), maxInFlight: 5000 });
    const watchers = users.filter((_, i) => i % 2 === 1);
    const orders = watchers.map((w) => {
      const order: string[] = [];
      w.client.on('message', (d) => order.push(Buffer.from(d.payload).toString()));
      return order;
    });
    const linksLost = await brokerMetric('groupchat_broker_gateway_links_lost_total');
    process.kill(stalled.pid, 'SIGSTOP');
    // Once the broker's heartbeat has dropped the link, what follows waits in its queue.
    await eventually(async () => (await brokerMetric('groupchat_broker_gateway_links_lost_total')) > linksLost, 'the broker to drop the stalled gateway\'s link');
    const chat = Array.from({ length: 1000 }, (_, i) => publisher.publish({ roomId: 77, payload: Buffer.from(`chat ${i}`) }));
    const critical = publisher.publish({ roomId: 77, payload: Buffer.from('CRITICAL'), critical: true });
    // Resumed once the brokers hold the chat traffic for it (the critical message must overtake a real queue).
    await eventually(async () => (await brokerMetric('groupchat_broker_gateway_queue')) >= 1000, 'the brokers to queue the chat traffic for the stalled gateway');
    process.kill(stalled.pid, 'SIGCONT');
    await Promise.all([...chat, critical]);
    await eventually(() => orders.every((o) => o.includes('CRITICAL') && o.filter((t) => t.startsWith('chat')).length >= 1000), 'all messages');
    // Published after 1,000 chat messages, it reached every member ahead of them.
    for (const order of orders) expect(order.indexOf('CRITICAL')).toBe(0);
    publisher.close();
  });

  test('a gateway dropped from the registry while stalled delivers, once back, what the brokers released for it', async () => {
    const stalled = (await cluster.processes()).find((p) => p.name === 'gateway-1')!;
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 32), timeoutMs: 30_000 });
    const watchers = users.filter((_, i) => i % 2 === 1);
    const reference = users[0]!; // on gateway-0, never stalled
    const marks = users.map((u) => ({ from: u.received.get(77)?.length ?? 0, dropped: u.client.duplicatesDropped }));
    process.kill(stalled.pid, 'SIGSTOP');
    // Acknowledged once gateway-0 has them and gateway-1 has been dropped (3 s registry TTL).
    const keys = (await Promise.all(Array.from({ length: 300 }, (_, i) => publisher.publish({ roomId: 77, payload: Buffer.from(`while dropped ${i}`) }))))
      .map((r) => messageIdKey(r.messageId));
    process.kill(stalled.pid, 'SIGCONT');
    const since = (u: User) => (u.received.get(77) ?? []).slice(marks[users.indexOf(u)]!.from);
    const wanted = new Set(keys);
    await eventually(() => watchers.every((u) => since(u).filter((k) => wanted.has(k)).length === keys.length), 'every message on the stalled gateway');
    const order = since(reference).filter((k) => wanted.has(k));
    for (const u of watchers) {
      const got = since(u).filter((k) => wanted.has(k));
      expect(new Set(got).size).toBe(got.length); // none twice
      expect(got).toEqual(order); // in the room's order
      expect(u.client.duplicatesDropped).toBe(marks[users.indexOf(u)]!.dropped); // the gateway sent none twice
    }
    // They came from the sequencer's history: the brokers had released them when gateway-1 left.
    const gateway = (await cluster.processes()).find((p) => p.name === 'gateway-1')!;
    expect(await metricValue(gateway.member!.httpAddress!, 'groupchat_gateway_catch_up_total{result="delivered"}')).toBeGreaterThan(0);
    publisher.close();
  });
});

