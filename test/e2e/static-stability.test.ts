// Static stability (issue 15, item 0) on a whole control plane: with room
// traffic flowing, the kube-apiserver is stopped (SIGSTOP) for 120 s in the
// middle of a partition doubling, which completes once it is continued; then
// etcd is stopped for 120 s. Through both: no pod restarts, the operator's
// included (the node agent's restart counts, same pods), no broker drops a gateway (its log line), no
// user is disconnected, and every acknowledged message reaches every member
// exactly once. Direct messages (pi, xiu) are not part of the traffic: the
// small example runs none.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Component } from '../envtest/control-plane.js';
import { ChatTraffic } from './chat-traffic.js';
import { entryPoints, helmInstall, isReady, readCluster, startEnvironment, until, type E2eEnvironment } from './harness.js';

const NAMESPACE = 'chat';
const CLUSTER = 'chat';
const OPERATOR_NAMESPACE = 'groupchat-system';
const ARTIFACTS = resolve('dist/e2e-artifacts-static-stability');
/** How long each outage lasts: longer than every lease, probe budget and renew deadline in the system. */
const OUTAGE_MS = 120_000;
/** What a broker logs when it drops a gateway's rooms (workloads/broker/broker.ts). */
const GATEWAY_DROPPED = 'gateway left the registry; dropping its rooms';

let env: E2eEnvironment;
let traffic: ChatTraffic | undefined;
let passed = false;

const cluster = () => readCluster(env.cp, NAMESPACE, CLUSTER);

beforeAll(async () => {
  env = await startEnvironment();
}, 180_000);

afterAll(async () => {
  await traffic?.close();
  await env?.stop(passed, ARTIFACTS);
}, 120_000);

/**
 * Stops a control-plane component for OUTAGE_MS while the traffic goes on,
 * and counts the messages acked meanwhile. No API call is made while it is
 * stopped (it would hang until the end).
 */
async function outage(component: Component): Promise<{ component: Component; ackedDuring: number }> {
  const ackedBefore = traffic!.sent;
  env.cp.freeze(component, true);
  try {
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
  } finally {
    env.cp.freeze(component, false);
  }
  return { component, ackedDuring: traffic!.sent - ackedBefore };
}

/** Lines of the cluster's pods' logs (every incarnation, pods gone included) that say a broker dropped a gateway. */
function gatewaysDropped(): string[] {
  const logs = join(env.workDir, 'logs');
  return readdirSync(logs).filter((f) => f.startsWith(`${NAMESPACE}_`))
    .flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l.includes(GATEWAY_DROPPED)).map((l) => `${f}: ${l}`));
}

test('the apiserver stopped for 120 s during a doubling, then etcd for 120 s: no restart, no gateway dropped, nobody disconnected, nothing lost', async () => {
  const { cp, agent } = env;
  await helmInstall(cp, 'groupchat', OPERATOR_NAMESPACE, NAMESPACE);
  await cp.kubectl(['apply', '-n', NAMESPACE, '-f', resolve('examples/small.yaml')]);
  await until('the cluster to be Ready', async () => { const c = await cluster(); return isReady(c) && c; }, 180_000);

  const { gateways, proxies } = await entryPoints(cp, NAMESPACE, CLUSTER);
  traffic = new ChatTraffic({
    gateways, proxies, rooms: 12, users: 16, roomsPerUser: 3,
    // Bounded well beyond both outages and the doubling; stopped by the test before.
    pauseMs: 50, maxPerRoom: 50_000, maxDurationMs: 600_000, messageDeadlineMs: 60_000, maxAttempts: 300,
  });
  await traffic.connect();
  traffic.start();
  await until('traffic to flow', async () => traffic!.sent >= 200, 60_000);
  const podsBefore = agent.running().filter((p) => p.namespace === NAMESPACE);
  const epochBefore = (await cluster()).status!.epoch!;

  // 1. The API server goes away in the middle of a doubling (2 → 4 broker partitions).
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NAMESPACE, '--type=merge',
    '-p', JSON.stringify({ spec: { broker: { partitions: 4 } } })]);
  await until('the doubling to start', async () => (await cluster()).status?.phase === 'Expanding', 30_000, 100);
  const apiserver = await outage('kube-apiserver');
  const resumed = Date.now();
  const doubled = await until('the doubling to complete after the API server returned', async () => {
    const c = await cluster();
    return c.status?.phase === 'Stable' && (c.status?.epoch ?? 0) > epochBefore && isReady(c) && c;
  }, 300_000, 250);
  const doublingCompletedAfterMs = Date.now() - resumed;

  // 2. etcd goes away: the API server is up and answers nothing that needs storage.
  const etcd = await outage('etcd');
  await until('the cluster to be Ready again after etcd returned', async () => { const c = await cluster(); return isReady(c) && c; }, 120_000);
  // The traffic goes on after both (the doubling's new partitions included) before it is audited.
  const sentAfter = traffic.sent;
  await until('traffic after both outages', async () => traffic!.sent >= sentAfter + 200, 60_000);
  await traffic.stop();
  await traffic.drain(30_000);
  const audit = traffic.audit();

  const podsAfter = agent.running().filter((p) => p.namespace === NAMESPACE);
  const operatorRestarts = agent.running().filter((p) => p.namespace === OPERATOR_NAMESPACE).reduce((n, p) => n + p.restarts, 0);
  const dropped = gatewaysDropped();
  process.stdout.write(`\n==== static stability ====\n${JSON.stringify({
    outageMs: OUTAGE_MS, ackedDuringApiserverOutage: apiserver.ackedDuring, ackedDuringEtcdOutage: etcd.ackedDuring,
    doublingCompletedAfterMs, epoch: `${epochBefore} → ${doubled.status?.epoch}`,
    sent: audit.sent, delivered: audit.delivered, lost: audit.lost, duplicated: audit.duplicated, failed: audit.failed,
    retries: audit.retries, seqBreaks: audit.seqBreaks,
    podRestarts: podsAfter.reduce((n, p) => n + p.restarts, 0), operatorRestarts, gatewaysDropped: dropped.length,
  }, null, 2)}\n==========================\n`);

  // Nobody disconnected (a close is an error of the traffic), no send given up.
  expect(traffic.errors).toEqual([]);
  expect({ lost: audit.lost, duplicated: audit.duplicated, reordered: audit.reordered, failed: audit.failed })
    .toEqual({ lost: 0, duplicated: 0, reordered: 0, failed: 0 });
  expect(audit.delivered).toBe(audit.expected);
  // Rooms went on being served while the control plane was away.
  expect(apiserver.ackedDuring).toBeGreaterThan(0);
  expect(etcd.ackedDuring).toBeGreaterThan(0);
  expect(dropped).toEqual([]);
  // The same pods as before (none replaced), none restarted; the new partitions' pods neither.
  const byName = new Map(podsAfter.map((p) => [p.name, p]));
  expect(podsBefore.map((p) => [p.name, byName.get(p.name)?.uid === p.uid])).toEqual(podsBefore.map((p) => [p.name, true]));
  expect(podsAfter.filter((p) => p.restarts > 0).map((p) => `${p.name}: ${p.restarts}`)).toEqual([]);
  // The operator steps down and campaigns again in its process rather than exit.
  expect(operatorRestarts).toBe(0);
  expect(doubled.status?.roles?.broker).toEqual({ partitions: 4, desired: 8, ready: 8 });
  passed = true;
}, 900_000);
