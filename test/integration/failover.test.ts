// Acceptance 4 and 5 of the data plane: a broker replica killed with SIGKILL
// while publishing, a hung broker, and a router restart followed by a broker
// restart whose table must come back from the routers' snapshot.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { messageIdKey, peer } from '../../workloads/protocol/index.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { PeerClient } from '../../workloads/transport/peer-client.js';
import type { PeerLink } from '../../workloads/transport/peer-link.js';
import { metricValue } from '../support/metrics.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { audit, connectUser, settle, totalExpected, totalReceived, type User } from '../support/traffic.js';

const ROOMS = 40;
let cluster: LocalClusterHandle;
let users: User[];

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '2000']);
  users = [];
  for (let i = 0; i < 80; i++) {
    users.push(await connectUser(cluster.ready.gateways[i % 2]!, 500 + i, [1 + (i % ROOMS), 1 + ((i + 17) % ROOMS)]));
  }
});

afterAll(async () => {
  await Promise.all(users.map((u) => u.client.close()));
  await cluster.stop();
});

/** Publishes `count` messages over all rooms at a bounded pace; `during` runs part-way. */
async function publishWhile(count: number, workerOrdinal: number, during: () => Promise<void>) {
  const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', workerOrdinal), maxInFlight: 200 });
  const acked = new Map<number, Set<string>>();
  let failed = 0;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 4)) await during();
    const roomId = 1 + (i % ROOMS);
    sends.push(publisher.publish({ roomId, payload: Buffer.from(`m${i}`) }).then(
      (r) => {
        let set = acked.get(roomId);
        if (!set) acked.set(roomId, (set = new Set()));
        set.add(messageIdKey(r.messageId));
      },
      () => { failed++; },
    ));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(sends);
  const expected = totalExpected(users, acked);
  await eventually(() => totalReceived(users) >= expected, `${expected} deliveries`);
  await settle(users, publisher); // a late duplicate would be ahead of the marker
  publisher.close();
  return { acked, failed, expected };
}

function proxyLogLines(text: string): Array<{ time: number; msg: string }> {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { time: number; msg: string });
}

describe('failover', () => {
  test('SIGKILL of a broker replica while publishing: nothing acked is lost, nothing duplicated', async () => {
    for (const u of users) u.received.clear();
    const victim = (await cluster.processes()).find((p) => p.name === 'broker-0-0')!;
    let killedAt = 0;
    const { acked, failed, expected } = await publishWhile(4000, 10, async () => {
      killedAt = Date.now();
      process.kill(victim.pid, 'SIGKILL');
    });
    const result = audit(users, acked);
    // Detection: the first proxy log line reporting the dead link after the kill.
    const detections = [0, 1].flatMap((i) => proxyLogLines(readFileSync(join(cluster.ready.logDir, `proxy-${i}.log`), 'utf8')))
      .filter((l) => l.msg.startsWith('broker link down') && l.time >= killedAt - 5);
    const detectedAfterMs = detections.length ? Math.min(...detections.map((l) => l.time)) - killedAt : -1;
    console.log(`broker SIGKILL: detected by a proxy after ${detectedAfterMs} ms; ${expected} deliveries expected; `
      + `failed publishes ${failed}; reordered across members ${result.reordered}`);
    expect(failed).toBe(0);
    expect(result.lost).toBe(0);
    expect(result.duplicated).toBe(0);
    expect(result.sdkDropped).toBe(0);
    expect(totalReceived(users)).toBe(expected);
    await cluster.waitForRestart('broker-0-0', 1);
  });

  test('a hung broker (SIGSTOP) is dropped by heartbeat; publishing goes on without loss', async () => {
    for (const u of users) u.received.clear();
    const victim = (await cluster.processes()).find((p) => p.name === 'broker-1-1')!;
    let stoppedAt = 0;
    const { acked, failed, expected } = await publishWhile(3000, 11, async () => {
      stoppedAt = Date.now();
      process.kill(victim.pid, 'SIGSTOP');
    });
    process.kill(victim.pid, 'SIGCONT');
    const detections = [0, 1].flatMap((i) => proxyLogLines(readFileSync(join(cluster.ready.logDir, `proxy-${i}.log`), 'utf8')))
      .filter((l) => l.msg.startsWith('broker link down') && l.time >= stoppedAt);
    console.log(`broker SIGSTOP: detected by heartbeat after ${detections.length ? Math.min(...detections.map((l) => l.time)) - stoppedAt : -1} ms`);
    const result = audit(users, acked);
    expect(failed).toBe(0);
    expect(result.lost).toBe(0);
    expect(result.duplicated).toBe(0);
    expect(totalReceived(users)).toBe(expected);
  });

  test('router restart, then broker restart: tables come back from snapshots and traffic continues', async () => {
    const router = (await cluster.processes()).find((p) => p.name === 'router-0-0')!;
    process.kill(router.pid, 'SIGKILL');
    await cluster.waitForRestart('router-0-0', router.restarts + 1);
    // The restarted router holds nothing until gateways resend; then a broker
    // restarted after it must rebuild its table from the routers' snapshots.
    const broker = (await cluster.processes()).find((p) => p.name === 'broker-1-0')!;
    process.kill(broker.pid, 'SIGKILL');
    await cluster.waitForRestart('broker-1-0', broker.restarts + 1);
    for (const u of users) u.received.clear();
    const { acked, failed, expected } = await publishWhile(2000, 12, async () => undefined);
    expect(failed).toBe(0);
    expect(audit(users, acked)).toMatchObject({ lost: 0, duplicated: 0, sdkDropped: 0 });
    expect(totalReceived(users)).toBe(expected);
  });

  test('a router discards stale gateway messages', async () => {
    const router = (await cluster.processes()).find((p) => p.name === 'router-0-1')!;
    const sample = (result: string) => metricValue(router.member!.httpAddress!, `groupchat_router_membership_total{result="${result}"}`);
    const staleBefore = await sample('stale');
    const appliedBefore = await sample('applied');
    const fake = new PeerClient(router.member!.address, { memberId: 'gateway-stale-test', role: 'gateway' });
    const link = await new Promise<PeerLink>((resolve) => fake.once('up', resolve));
    const update = (seq: number, count: number) => link.send({
      membership: peer.MembershipUpdate.create({
        gatewayId: 'gateway-stale-test', gatewayAddress: '127.0.0.1:9', gatewaySeq: seq,
        rooms: [{ roomId: 77, vrooms: count ? [{ vroom: 1, count }] : [] }],
      }),
    });
    update(10, 1);
    update(7, 0); // older than 10: must be discarded
    update(10, 0); // a repeat of 10: also stale
    update(11, 0); // newer: applied; once it is, the frames before it were handled
    while ((await sample('applied')) < appliedBefore + 2) await new Promise((r) => setTimeout(r, 50));
    const staleAfter = await sample('stale');
    fake.close();
    expect(staleAfter - staleBefore).toBe(2);
  });
});
