// Acceptance 2 and 3 of the data plane: real processes, 2 gateways, 60 rooms,
// one room split into virtual rooms, 10,000 messages through the proxies.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { Long, messageIdKey } from '../../workloads/protocol/index.js';
import { ROLE_NODE_FLAGS } from '../../workloads/runtime/node-flags.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { metricValue, requiredMetric } from '../support/metrics.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { audit, connectUser, settle, totalExpected, totalReceived, type User } from '../support/traffic.js';

const ROOMS = 60;
const BIG_ROOM = 1000;
const USERS = 120;
const SPLIT_THRESHOLD = 50;

let cluster: LocalClusterHandle;
let users: User[];

beforeAll(async () => {
  cluster = await startLocalCluster(['--proxies', '3', '--split-threshold', String(SPLIT_THRESHOLD)]);
  users = [];
  for (let i = 0; i < USERS; i++) {
    const id = 1000 + i;
    // Each user joins three small rooms and the big one; rooms span both gateways.
    const rooms = [1 + (i % ROOMS), 1 + ((i * 7 + 3) % ROOMS), 1 + ((i * 13 + 5) % ROOMS), BIG_ROOM];
    users.push(await connectUser(cluster.ready.gateways[i % 2]!, id, [...new Set(rooms)]));
  }
});

afterAll(async () => {
  await Promise.all(users.map((u) => u.client.close()));
  await cluster.stop();
});

/** Sums one metric sample over every broker. */
async function brokerMetric(sample: string): Promise<number> {
  let total = 0;
  for (const p of await cluster.processes()) {
    if (p.role === 'broker' && p.member?.httpAddress) total += await metricValue(p.member.httpAddress, sample);
  }
  return total;
}

async function publishAll(publisher: Publisher, count: number, ackedByRoom: Map<number, Set<string>>): Promise<void> {
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    // Every tenth message goes to the big room.
    const roomId = i % 10 === 0 ? BIG_ROOM : 1 + (i % ROOMS);
    sends.push(publisher.publish({ roomId, payload: Buffer.from(`m${i}`), senderId: 1 }).then((r) => {
      let set = ackedByRoom.get(roomId);
      if (!set) ackedByRoom.set(roomId, (set = new Set()));
      set.add(messageIdKey(r.messageId));
    }));
  }
  await Promise.all(sends);
}

describe('delivery through real processes', () => {
  test('every member gets every message exactly once, in one order per room', async () => {
    const publisher = new Publisher({ proxies: cluster.ready.proxies.slice(0, 2), workerId: workerIdFor('client', 1), maxInFlight: 2000 });
    const acked = new Map<number, Set<string>>();
    for (const u of users) u.received.clear();
    await publishAll(publisher, 10_000, acked);
    publisher.close();
    const expected = totalExpected(users, acked);
    await eventually(() => totalReceived(users) >= expected, `${expected} deliveries`);
    const result = audit(users, acked);
    expect([...acked.values()].reduce((n, s) => n + s.size, 0)).toBe(10_000);
    expect(result).toEqual({ lost: 0, duplicated: 0, reordered: 0, sdkDropped: 0 });
    expect(totalReceived(users)).toBe(expected);
    // The big room really was split, and its virtual rooms were shared between replicas.
    expect(await brokerMetric('groupchat_broker_split_fanout_total{share="forwarded"}')).toBeGreaterThan(0);
  });

  test('publisher redundancy 3 still delivers exactly once', async () => {
    const publisher = new Publisher({ proxies: cluster.ready.proxies, redundancy: 3, workerId: workerIdFor('client', 2), maxInFlight: 2000 });
    const acked = new Map<number, Set<string>>();
    for (const u of users) u.received.clear();
    await publishAll(publisher, 3000, acked);
    const expected = totalExpected(users, acked);
    await eventually(() => totalReceived(users) >= expected, `${expected} deliveries`);
    // Any stray copy arrives before counting: it would be ahead of the marker.
    await settle(users, publisher);
    publisher.close();
    expect(audit(users, acked)).toEqual({ lost: 0, duplicated: 0, reordered: 0, sdkDropped: 0 });
    expect(totalReceived(users)).toBe(expected);
  });

  test('a message published right after a Join is answered reaches the new member', async () => {
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 3) });
    let missed = 0;
    for (let i = 0; i < 30; i++) {
      const roomId = 5000 + i;
      const user = await connectUser(cluster.ready.gateways[i % 2]!, 9000 + i, [roomId]);
      await publisher.publish({ roomId, payload: Buffer.from('first') });
      await eventually(() => (user.received.get(roomId)?.length ?? 0) > 0, 'the first message', 2000).catch(() => { missed++; });
      await user.client.close();
    }
    publisher.close();
    expect(missed).toBe(0);
  });

  test('a message id reused in another room is another message: every member of that room gets it', async () => {
    // Rooms 7001 and 7002 sit in different partitions (2 partitions); each has members on both gateways.
    const sender = await connectUser(cluster.ready.gateways[0]!, 9101, [7001, 7002]);
    const others = [await connectUser(cluster.ready.gateways[0]!, 9102, [7001, 7002]), await connectUser(cluster.ready.gateways[1]!, 9103, [7001, 7002])];
    const id = Long.fromString('123456789012345', true);
    await sender.client.send(7001, Buffer.from('first'), id);
    await sender.client.send(7002, Buffer.from('second'), id);
    for (const user of [sender, ...others]) {
      await eventually(() => (user.received.get(7002)?.length ?? 0) === 1 && (user.received.get(7001)?.length ?? 0) === 1,
        `user ${user.id} to get the id once in each room`);
    }
    for (const user of [sender, ...others]) await user.client.close();
  });

  test('each gateway exports the synthetic user\'s publish-to-delivery latency', async () => {
    const gateways = (await cluster.processes()).filter((p) => p.role === 'gateway');
    for (const g of gateways) {
      const deadline = Date.now() + 20_000; // probes go out every 5 s
      let probes = 0;
      while (probes === 0 && Date.now() < deadline) {
        probes = await metricValue(g.member!.httpAddress!, 'groupchat_probe_latency_seconds_count');
        if (probes === 0) await new Promise((r) => setTimeout(r, 250));
      }
      expect(probes).toBeGreaterThan(0);
    }
  });

  test('every role process runs with the role processes\' Node.js flags: a young generation of two 4 MiB semi-spaces, after traffic too', async () => {
    const youngMiB: Array<[string, number]> = [];
    for (const p of await cluster.processes()) {
      expect({ name: p.name, argv: readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0') }).toEqual({ name: p.name, argv: expect.arrayContaining([...ROLE_NODE_FLAGS]) });
      if (p.member?.httpAddress) youngMiB.push([p.name, (await requiredMetric(p.member.httpAddress, 'nodejs_heap_space_size_total_bytes{space="new"}')) / 2 ** 20]);
    }
    expect(youngMiB.length).toBeGreaterThan(10);
    expect(youngMiB.filter(([, mib]) => mib > 8)).toEqual([]);
  });
});
