// Static stability (issue 15, item 0) on a whole control plane: with room
// traffic and one-to-one messages flowing, the broker partitions are doubled
// twice, each time with a control-plane component stopped (SIGSTOP) for
// 120 s in the middle of the doubling, once the new partitions' pods have
// started: the kube-apiserver during 1 → 2, etcd during 2 → 4 (the API
// server up, answering nothing that needs storage). Each doubling completes
// once the component is continued. Through both: no
// pod restarts, the operator's included (the node agent's restart counts,
// same pods), no broker drops a gateway (its log line), no user is
// disconnected, every acknowledged room message reaches every member exactly
// once, and every acknowledged Direct its recipient's inbox exactly once at
// consecutive positions (relay, pi and xiu run with the rooms).
import { expect, test } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Component } from '../envtest/control-plane.js';
import { ChatTraffic } from './chat-traffic.js';
import { CLUSTER, e2eSuite, entryPoints, helmInstall, isReady, NAMESPACE, OPERATOR_NAMESPACE, until } from './harness.js';

/** How long each outage lasts: longer than every lease, probe budget and renew deadline in the system. */
const OUTAGE_MS = 120_000;
/** What a broker logs when it drops a gateway's rooms (workloads/broker/broker.ts). */
const GATEWAY_DROPPED = 'gateway left the registry; dropping its rooms';

/**
 * The test's own cluster, the small example's tiers with one broker
 * partition (so two doublings end at the example's four), and the one-to-one
 * tiers: pi and xiu with two replicas, the smallest Raft group whose leader
 * needs a peer (with one, a lost peer link could not show), and one relay.
 */
const MANIFEST = {
  apiVersion: 'groupchat.dev/v1alpha1',
  kind: 'GroupChatCluster',
  metadata: { name: CLUSTER },
  spec: {
    image: 'groupchat:0.1.0',
    proxy: { replicas: 2 },
    gateway: { replicas: 2 },
    broker: { partitions: 1, replicas: 2 },
    router: { partitions: 1, replicas: 2 },
    pi: { partitions: 1, replicas: 2, storage: { size: '1Gi' } },
    xiu: { partitions: 1, replicas: 2, storage: { size: '1Gi' } },
    relay: { partitions: 1, replicas: 1 },
  },
};

const suite = e2eSuite(resolve('dist/e2e-artifacts-static-stability'));

/** Lines of the cluster's pods' logs (every incarnation, pods gone included) that say a broker dropped a gateway. */
function gatewaysDropped(): string[] {
  const logs = join(suite.env.workDir, 'logs');
  return readdirSync(logs).filter((f) => f.startsWith(`${NAMESPACE}_`))
    .flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l.includes(GATEWAY_DROPPED)).map((l) => `${f}: ${l}`));
}

/** Whether every pod of broker partitions `from` to `to - 1` has started its container (the node agent opened its log). */
function brokersStarted(from: number, to: number): boolean {
  const logs = join(suite.env.workDir, 'logs');
  const { replicas } = MANIFEST.spec.broker;
  for (let p = from; p < to; p++) {
    for (let r = 0; r < replicas; r++) if (!existsSync(join(logs, `${NAMESPACE}_${CLUSTER}-broker-${p}-${r}_broker.log`))) return false;
  }
  return true;
}

/**
 * Doubles the broker partitions to `partitions` and, once the new
 * partitions' pods have started (the doubling under way in the data plane,
 * not only in the operator), stops `component` for OUTAGE_MS while the
 * traffic goes on; then waits for the doubling to complete. No API call is
 * made while it is stopped (it would hang until the end).
 */
async function doublingThroughOutage(traffic: ChatTraffic, component: Component, partitions: number) {
  const epochBefore = await suite.startDoubling({ broker: { partitions } });
  await until(`the pods of the new broker partitions to start (${partitions / 2} → ${partitions})`, async () => brokersStarted(partitions / 2, partitions), 120_000, 100);
  const phaseWhenStopped = (await suite.cluster()).status?.phase;
  const [ackedBefore, directsBefore] = [traffic.sent, traffic.directsSent];
  suite.env.cp.freeze(component, true);
  try {
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
  } finally {
    suite.env.cp.freeze(component, false);
  }
  const [ackedDuring, directsAckedDuring] = [traffic.sent - ackedBefore, traffic.directsSent - directsBefore];
  const resumed = Date.now();
  const doubled = await suite.untilDoubled(`the doubling to ${partitions} partitions to complete after ${component} returned`, epochBefore, 300_000);
  return {
    component, outageMs: OUTAGE_MS, phaseWhenStopped, ackedDuring, directsAckedDuring,
    doublingCompletedAfterMs: Date.now() - resumed, epoch: `${epochBefore} → ${doubled.status?.epoch}`, brokers: doubled.status?.roles?.broker,
  };
}

test('the apiserver stopped for 120 s during a doubling, etcd for 120 s during the next: no restart, no gateway dropped, nobody disconnected, no message or Direct lost', async () => {
  const { cp, agent } = suite.env;
  await helmInstall(cp, 'groupchat', OPERATOR_NAMESPACE, NAMESPACE);
  await cp.kubectl(['apply', '-n', NAMESPACE, '-f', '-'], { input: JSON.stringify(MANIFEST) });
  await until('the cluster to be Ready', async () => { const c = await suite.cluster(); return isReady(c) && c; }, 180_000);

  const { gateways, proxies } = await entryPoints(cp, NAMESPACE, CLUSTER);
  const traffic = new ChatTraffic({
    gateways, proxies, rooms: 12, users: 16, roomsPerUser: 3, directPairs: 4,
    // Bounded well beyond both outages and doublings; stopped by the test before.
    pauseMs: 50, maxPerRoom: 50_000, maxDurationMs: 900_000, messageDeadlineMs: 60_000, maxAttempts: 300,
  });
  suite.traffic = traffic;
  await traffic.connect();
  traffic.start();
  await until('traffic to flow', async () => traffic.sent >= 200 && traffic.directsSent >= 50, 60_000);
  const podsBefore = agent.running().filter((p) => p.namespace === NAMESPACE);

  const apiserver = await doublingThroughOutage(traffic, 'kube-apiserver', 2);
  const etcd = await doublingThroughOutage(traffic, 'etcd', 4);

  // The traffic goes on after both (the doublings' new partitions included) before it is audited.
  const [sentAfter, directsAfter] = [traffic.sent, traffic.directsSent];
  await until('traffic after both outages', async () => traffic.sent >= sentAfter + 200 && traffic.directsSent >= directsAfter + 50, 60_000);
  await traffic.stop();
  await traffic.drain(30_000);
  const audit = traffic.audit();

  const podsAfter = agent.running().filter((p) => p.namespace === NAMESPACE);
  const operatorRestarts = agent.running().filter((p) => p.namespace === OPERATOR_NAMESPACE).reduce((n, p) => n + p.restarts, 0);
  const dropped = gatewaysDropped();
  process.stdout.write(`\n==== static stability ====\n${JSON.stringify({
    outages: [apiserver, etcd],
    sent: audit.sent, delivered: audit.delivered, lost: audit.lost, duplicated: audit.duplicated, failed: audit.failed,
    retries: audit.retries, seqBreaks: audit.seqBreaks, directs: audit.directs,
    podRestarts: podsAfter.reduce((n, p) => n + p.restarts, 0), operatorRestarts, gatewaysDropped: dropped.length,
    disconnected: traffic.errors.filter((e) => e.includes('disconnected')).length,
  }, null, 2)}\n==========================\n`);

  // Nobody disconnected (a close is an error of the traffic), no send given up.
  expect(traffic.errors).toEqual([]);
  expect({ lost: audit.lost, duplicated: audit.duplicated, reordered: audit.reordered, failed: audit.failed })
    .toEqual({ lost: 0, duplicated: 0, reordered: 0, failed: 0 });
  expect(audit.delivered).toBe(audit.expected);
  expect(audit.directs).toEqual({ ...audit.directs, failed: 0, lost: 0, duplicated: 0, reordered: 0, positionBreaks: 0 });
  expect(audit.directs.delivered).toBe(audit.directs.sent);
  // Each outage began in the middle of its doubling; rooms and Directs went on being served meanwhile.
  expect([apiserver, etcd].map((o) => [o.component, o.phaseWhenStopped !== 'Stable', o.ackedDuring > 0, o.directsAckedDuring > 0]))
    .toEqual([['kube-apiserver', true, true, true], ['etcd', true, true, true]]);
  expect(dropped).toEqual([]);
  // The same pods as before (none replaced), none restarted; the new partitions' pods neither.
  const byName = new Map(podsAfter.map((p) => [p.name, p]));
  expect(podsBefore.map((p) => [p.name, byName.get(p.name)?.uid === p.uid])).toEqual(podsBefore.map((p) => [p.name, true]));
  expect(podsAfter.filter((p) => p.restarts > 0).map((p) => `${p.name}: ${p.restarts}`)).toEqual([]);
  // The operator steps down and campaigns again in its process rather than exit.
  expect(operatorRestarts).toBe(0);
  expect(apiserver.brokers).toEqual({ partitions: 2, desired: 4, ready: 4 });
  expect(etcd.brokers).toEqual({ partitions: 4, desired: 8, ready: 8 });
  suite.passed();
}, 1_200_000);
