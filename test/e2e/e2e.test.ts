// End to end on a real control plane, the way the product is used:
// `helm install` the chart (its operator Deployment runs as a pod on the test
// node, with the chart's RBAC), `kubectl apply` the small example cluster,
// chat through the real gateways and proxies, and while the chat goes on
// `kubectl patch` broker partitions 2 → 4 and replicas 2 → 3 and delete a
// broker pod. Nothing may be lost, duplicated or reordered; the cluster ends
// Ready with the new counts; deleting it removes everything it made.
import { expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { getJson } from '../envtest/support.js';
import { ChatTraffic, type TrafficReport } from './chat-traffic.js';
import { CLUSTER, e2eSuite, entryPoints, helmInstall, isReady, NAMESPACE, OPERATOR_NAMESPACE, until } from './harness.js';

const RELEASE = 'groupchat';
// A failed run leaves every process's log in dist/e2e-artifacts, for whoever looks next.
const suite = e2eSuite(resolve('dist/e2e-artifacts'));

test('helm install, chat, double the partitions and add replicas under traffic, delete a broker pod: nothing lost', async () => {
  const report: Record<string, unknown> = {};

  // 1. The chart, as a platform team installs it. --wait: the operator pod is Ready.
  const { cp, agent } = suite.env;
  const helmStarted = Date.now();
  await helmInstall(cp, RELEASE, OPERATOR_NAMESPACE, NAMESPACE);
  report.helmInstallMs = Date.now() - helmStarted;

  // 2. The small example cluster, as a user applies it.
  await cp.kubectl(['apply', '-n', NAMESPACE, '-f', resolve('examples/small.yaml')]);
  const applied = Date.now();
  const before = await until('the cluster to be Ready', async () => { const c = await suite.cluster(); return isReady(c) && c; }, 180_000);
  report.readyAfterApplyMs = Date.now() - applied;
  expect(before.status?.roles?.broker).toEqual({ partitions: 2, desired: 4, ready: 4 });
  expect(before.status?.phase).toBe('Stable');

  // 3. Users on the gateways, a backend on the proxies, found as clients find them.
  const { gateways, proxies } = await entryPoints(cp, NAMESPACE, CLUSTER);
  const traffic = new ChatTraffic({
    gateways, proxies, rooms: 16, users: 24, roomsPerUser: 4,
    pauseMs: 30, maxPerRoom: 20_000, maxDurationMs: 240_000, messageDeadlineMs: 60_000, maxAttempts: 100,
  });
  suite.traffic = traffic;
  await traffic.connect();
  traffic.start();
  await until('traffic to flow', async () => traffic.sent >= 200, 60_000);

  // 4. Scale by editing the cluster, while the chat goes on.
  const sentBeforePatch = traffic.sent;
  const patched = Date.now();
  const epochBefore = await suite.startDoubling({ broker: { partitions: 4, replicas: 3 } });

  // 5. A broker pod goes away in the middle of it (a node drain, an eviction).
  const deletedPod = `${CLUSTER}-broker-0-0`;
  const deletedUid = (await getJson<{ metadata: { uid: string } }>(cp, ['pod', deletedPod, '-n', NAMESPACE])).metadata.uid;
  await cp.kubectl(['delete', 'pod', deletedPod, '-n', NAMESPACE, '--wait=false']);
  report.brokerPodDeletedAfterMs = Date.now() - patched;

  let flippedAt = 0;
  const after = await suite.untilDoubled('the doubling to complete with every pod ready', epochBefore, 240_000, (c) => {
    if (!flippedAt && (c.status?.epoch ?? 0) > epochBefore) flippedAt = Date.now();
  });
  const doublingMs = Date.now() - patched;
  const doubledAt = Date.now();
  report.epochFlipAfterMs = flippedAt - patched;
  report.messagesDuringDoubling = traffic.sent - sentBeforePatch;

  // Keep chatting on the new layout for a while, then stop and let the last deliveries land.
  const sentAtEnd = traffic.sent;
  await until('traffic on the new layout', async () => traffic.sent >= sentAtEnd + 300, 60_000);
  await traffic.stop();
  await traffic.drain(20_000);
  const audit: TrafficReport = traffic.audit();

  const summary = {
    sent: audit.sent, delivered: audit.delivered, expected: audit.expected,
    lost: audit.lost, duplicated: audit.duplicated, reordered: audit.reordered, failed: audit.failed,
    seqBreaks: audit.seqBreaks, retries: audit.retries, sdkDeduplicated: audit.sdkDeduplicated,
    doublingMs, longestOutageDuringDoubling: traffic.longestOutage(patched, doubledAt), ...report, trafficMs: audit.durationMs,
    epoch: `${epochBefore} → ${after.status?.epoch}`, brokers: after.status?.roles?.broker,
  };
  writeFileSync(resolve('dist/e2e-report.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`\n==== e2e report ====\n${Object.entries(summary).map(([k, v]) => `${k.padEnd(24)} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n')}\n====================\n`);

  expect(traffic.errors).toEqual([]);
  // seqBreaks: room_seq not one more than the member's previous (a publish retried across the doubling's
  // flip numbered by both partitions would leave one; the hand-off carries recent ids to prevent it).
  expect({ lost: audit.lost, duplicated: audit.duplicated, reordered: audit.reordered, failed: audit.failed, seqBreaks: audit.seqBreaks })
    .toEqual({ lost: 0, duplicated: 0, reordered: 0, failed: 0, seqBreaks: 0 });
  expect(audit.delivered).toBe(audit.expected);
  expect(after.status?.roles?.broker).toEqual({ partitions: 4, desired: 12, ready: 12 });
  expect(after.status?.roles?.router).toEqual({ partitions: 1, desired: 2, ready: 2 });
  // The deleted broker came back as a new pod (same name, new uid), and it is Ready.
  const replacement = await getJson<{ metadata: { uid: string }; status: { conditions?: { type: string; status: string }[] } }>(
    cp, ['pod', deletedPod, '-n', NAMESPACE]);
  expect(replacement.metadata.uid).not.toBe(deletedUid);
  expect(replacement.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  const statefulSets = await getJson<{ items: { metadata: { name: string }; status: { readyReplicas?: number } }[] }>(
    cp, ['statefulsets', '-n', NAMESPACE, '-l', `groupchat.dev/cluster=${CLUSTER},groupchat.dev/role=broker`]);
  expect(statefulSets.items.map((s) => [s.metadata.name, s.status.readyReplicas]).sort())
    .toEqual([0, 1, 2, 3].map((p) => [`${CLUSTER}-broker-${p}`, 3]));

  // 6. Deleting the cluster deletes what it made (the garbage collector, through owner references).
  await traffic.close();
  suite.traffic = undefined;
  await cp.kubectl(['delete', 'groupchatcluster', CLUSTER, '-n', NAMESPACE, '--wait=true', '--timeout=60s']);
  const kinds = 'statefulsets,deployments,replicasets,pods,services,endpointslices,poddisruptionbudgets,configmaps,serviceaccounts,roles,rolebindings,leases,networkpolicies';
  const leftovers = await until('everything the cluster made to be gone', async () => {
    const list = await getJson<{ items: { kind: string; metadata: { name: string } }[] }>(cp, [kinds, '-n', NAMESPACE]);
    // What Kubernetes itself puts in every namespace stays, and the chart's RoleBinding letting the operator manage clusters here.
    const left = list.items.filter((o) => !(o.kind === 'ServiceAccount' && o.metadata.name === 'default')
      && !(o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt')
      && !(o.kind === 'RoleBinding' && o.metadata.name === `${RELEASE}-manage`));
    return left.length === 0 ? [] as string[] : undefined;
  }, 120_000, 500).catch(async (err) => {
    const list = await getJson<{ items: { kind: string; metadata: { name: string } }[] }>(cp, [kinds, '-n', NAMESPACE]);
    throw new Error(`${(err as Error).message}; left: ${list.items.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  });
  expect(leftovers).toEqual([]);
  expect(agent.running().filter((p) => p.namespace === NAMESPACE)).toEqual([]);
  suite.passed();
}, 900_000);
