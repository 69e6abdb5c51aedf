// Issue 13, item 7: the operator at scale, against a real kube-apiserver. A
// GroupChatCluster of 256 broker partitions × 3 replicas (objects only: no
// kubelet runs, so the test plays the workload controllers and every member's
// Lease) reaches Stable and Ready, then doubles to 512 partitions through
// Expanding and Switching and is Stable and Ready again. It prints what
// docs/capacity.md quotes: the time each step took, the API server's own count
// of writes (apiserver_request_total by verb and resource) and the operator's
// memory and CPU, read from /proc of the operator process (it runs as its
// own process, the real `groupchat operator`, with the chart's RBAC). And it
// checks that the members of a Stable cluster registering queue no
// reconciles, which at this size kept the operator busy back to back.
import { readFileSync } from 'node:fs';
import { AppsV1Api, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { memberLease } from '../../workloads/registry/kubernetes-objects.js';
import type { Member } from '../../workloads/registry/schema.js';
import { type ControlPlane } from './control-plane.js';
import {
  apiserverWrites, countsSince, eventually, getJson, inParallel, markWorkloadsReady, metricSum, operatorMetrics, startOperator,
  startOperatorControlPlane, topologyOf, workloadUser, type CliProcess, OPERATOR_USER,
} from './support.js';

const NS = 'scale';
const CLUSTER = 'chat';
const PARTITIONS = 256;
const REPLICAS = 3;
/** The members that are not brokers: router 2 × 3, proxy 2, gateway 2. */
const OTHER_PODS: [Member['role'], number, number][] = [
  ...[0, 1].flatMap((p) => [0, 1, 2].map((r): [Member['role'], number, number] => ['router', p, r])),
  ['proxy', 0, 0], ['proxy', 0, 1], ['gateway', 0, 0], ['gateway', 0, 1],
];
/** Long enough that no member Lease needs renewing while the suite runs: each is written only when its member changes. */
const LEASE_SECONDS = 3600;
/** How many requests the test's simulated pods make at once. */
const PARALLEL = 16;
const STEP_TIMEOUT_MS = 60_000;

let cp: ControlPlane;
let operator: CliProcess;
let leases: KubernetesObjectApi;

const cluster = () => getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS]);
const spec = (partitions: number) => ({
  image: 'groupchat:0.1.0',
  proxy: { replicas: 2 }, gateway: { replicas: 2 },
  broker: { partitions, replicas: REPLICAS }, router: { partitions: 2, replicas: 3 },
});

/** Every member of a cluster of `partitions` broker partitions, as its pod registers it. */
function members(partitions: number, epoch: number): Member[] {
  const brokers = Array.from({ length: partitions * REPLICAS }, (_, i): [Member['role'], number, number] =>
    ['broker', Math.floor(i / REPLICAS), i % REPLICAS]);
  return [...brokers, ...OTHER_PODS].map(([role, partition, replica]) => ({
    id: `${role}-${partition}-${replica}`, role, partition, replica,
    address: `10.${partition >> 8}.${partition & 255}.${replica}:7000`, ready: true, epoch,
  }));
}

/** Writes members' Leases as their pods' registries do (kubernetes-objects.ts), under the workloads' identity. */
async function register(list: Member[]): Promise<void> {
  await inParallel(list, PARALLEL, (member) => leases.patch(memberLease({
    name: member.id, namespace: NS, cluster: CLUSTER, member, durationSeconds: LEASE_SECONDS, renewedAt: new Date(),
  }), undefined, undefined, 'groupchat-member', true, PatchStrategy.ServerSideApply));
}

/**
 * The operator process's resident memory now and at its peak (MB), and the
 * CPU it has used (s), from the kernel. Linux counts CPU time in ticks of
 * 1/100 s (USER_HZ).
 */
function operatorUsage(): { rssMb: number; peakMb: number; cpuSeconds: number } {
  const pid = operator.child.pid;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name in parentheses.
  const [utime, stime] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).map(Number);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024), cpuSeconds: (utime! + stime!) / 100 };
}

/** What a step of the test reports: how long its parts took (s), the API server's writes, and the operator process. */
function stepFigures(before: Map<string, number>, after: Map<string, number>, durationsMs: Record<string, number>) {
  const seconds = Object.fromEntries(Object.entries(durationsMs).map(([what, ms]) => [what, Number((ms / 1000).toFixed(1))]));
  return { seconds, apiWrites: countsSince(before, after), operatorProcess: operatorUsage() };
}

async function statefulSetNames(): Promise<string[]> {
  const list = await cp.kubeConfig().makeApiClient(AppsV1Api).listNamespacedStatefulSet({ namespace: NS });
  return list.items.map((s) => s.metadata!.name!);
}

/** Waits until the cluster's status says `phase` at `epoch`, everything ready, with nothing degraded. */
async function settled(epoch: number, phase: string, pods: number): Promise<any> {
  return eventually(async () => {
    const cr = await cluster();
    expect(cr.status).toMatchObject({ epoch, phase, ready: `${pods}/${pods}` });
    expect(cr.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    return cr;
  }, STEP_TIMEOUT_MS);
}

const brokerNames = (partitions: number) => Array.from({ length: partitions }, (_, p) => `${CLUSTER}-broker-${p}`);
const podCount = (partitions: number) => partitions * REPLICAS + OTHER_PODS.length;

beforeAll(async () => {
  cp = await startOperatorControlPlane(NS, CLUSTER);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER));
  leases = KubernetesObjectApi.makeApiClient(cp.kubeConfig(workloadUser(NS, CLUSTER)));
});

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

test(`${PARTITIONS} broker partitions × ${REPLICAS} reach Stable, double to ${PARTITIONS * 2} and are Stable again`, async () => {
  const report: Record<string, unknown> = { operatorAtStart: operatorUsage() };
  const writesAtStart = await apiserverWrites(cp);
  const metricsAtStart = await operatorMetrics(operator);

  // Creation: the operator applies every object; the test plays the controllers and the pods.
  const applied = Date.now();
  await cp.kubectl(['apply', '-n', NS, '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name: CLUSTER }, spec: spec(PARTITIONS) }),
  });
  // The topology ConfigMap is applied last (builders/desired.ts): once it is there, so is everything before it.
  await eventually(async () => expect(await topologyOf(cp, NS, CLUSTER)).toMatchObject({ epoch: 1, phase: 'Stable' }), STEP_TIMEOUT_MS);
  const created = Date.now();
  await markWorkloadsReady(cp, NS, `groupchat.dev/cluster=${CLUSTER}`);
  // Members of a Stable cluster change nothing it decides: their pods starting queue no reconciles.
  const reconcilesBeforeMembers = metricSum(await operatorMetrics(operator), 'groupchat_operator_reconciles_total');
  await register(members(PARTITIONS, 1));
  const reconcilesForMembers = metricSum(await operatorMetrics(operator), 'groupchat_operator_reconciles_total') - reconcilesBeforeMembers;
  const simulated = Date.now();
  const first = await settled(1, 'Stable', podCount(PARTITIONS));
  const stable = Date.now();
  expect((await statefulSetNames()).sort()).toEqual([...brokerNames(PARTITIONS), `${CLUSTER}-router-0`, `${CLUSTER}-router-1`].sort());
  expect(first.status.roles.broker).toEqual({ partitions: PARTITIONS, desired: PARTITIONS * REPLICAS, ready: PARTITIONS * REPLICAS });
  // The workload status writes just before may still be reconciling (one running, one queued, and the one its
  // status write queues); the members queue none (without that rule: 178 here).
  expect(reconcilesForMembers).toBeLessThanOrEqual(5);
  const writesAtStable = await apiserverWrites(cp);
  const metricsAtStable = await operatorMetrics(operator);
  report.creation = {
    ...stepFigures(writesAtStart, writesAtStable, {
      toObjects: created - applied, toStableAndReady: stable - applied, fromLastSimulatedWriteToReady: stable - simulated,
    }),
    reconcilesWhileMembersRegistered: reconcilesForMembers,
  };

  // The doubling, as the existing doubling envtest plays it, for every member.
  const patched = Date.now();
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: spec(PARTITIONS * 2) })]);
  await eventually(async () => expect(await topologyOf(cp, NS, CLUSTER)).toMatchObject({ epoch: 1, phase: 'Expanding' }), STEP_TIMEOUT_MS);
  const expanded = Date.now();
  await markWorkloadsReady(cp, NS, `groupchat.dev/cluster=${CLUSTER}`);
  // The new partitions start, sync and serve epoch 2 ...
  await register(members(PARTITIONS * 2, 2).filter((m) => m.role === 'broker' && m.partition >= PARTITIONS));
  const synced = Date.now();
  await eventually(async () => expect(await topologyOf(cp, NS, CLUSTER)).toMatchObject({ epoch: 2, phase: 'Switching' }), STEP_TIMEOUT_MS);
  const flipped = Date.now();
  // ... then every other member switches to it.
  await register(members(PARTITIONS * 2, 2).filter((m) => m.role !== 'broker' || m.partition < PARTITIONS));
  const switched = Date.now();
  const second = await settled(2, 'Stable', podCount(PARTITIONS * 2));
  const doubled = Date.now();
  expect((await statefulSetNames()).sort()).toEqual([...brokerNames(PARTITIONS * 2), `${CLUSTER}-router-0`, `${CLUSTER}-router-1`].sort());
  expect(second.status.roles.broker).toEqual({ partitions: PARTITIONS * 2, desired: PARTITIONS * 2 * REPLICAS, ready: PARTITIONS * 2 * REPLICAS });
  expect(await topologyOf(cp, NS, CLUSTER)).toMatchObject({ epoch: 2, phase: 'Stable', roles: { broker: { partitions: PARTITIONS * 2, replicas: REPLICAS } } });
  const writesAtEnd = await apiserverWrites(cp);
  const metricsAtEnd = await operatorMetrics(operator);
  report.doubling = stepFigures(writesAtStable, writesAtEnd, {
    total: doubled - patched, toNewObjects: expanded - patched,
    fromSyncedToEpochFlip: flipped - synced, fromSwitchedToStableAndReady: doubled - switched,
  });
  const operatorFigures = (before: Map<string, number>, after: Map<string, number>) => {
    const delta = (name: string, labels: Record<string, string> = {}) => metricSum(after, name, labels) - metricSum(before, name, labels);
    const count = delta('groupchat_operator_reconcile_duration_seconds_count');
    return {
      reconciles: count,
      meanReconcileMs: count ? Math.round((delta('groupchat_operator_reconcile_duration_seconds_sum') * 1000) / count) : 0,
      applied: delta('groupchat_operator_applies_total', { outcome: 'applied' }),
      skipped: delta('groupchat_operator_applies_total', { outcome: 'skipped' }),
      statusWrites: delta('groupchat_operator_status_writes_total'),
      heapUsedMb: Math.round(metricSum(after, 'nodejs_heap_size_used_bytes') / 2 ** 20),
    };
  };
  report.operator = { creation: operatorFigures(metricsAtStart, metricsAtStable), doubling: operatorFigures(metricsAtStable, metricsAtEnd) };
  process.stdout.write(`operator at scale: ${JSON.stringify(report, null, 2)}\n`);
}, 240_000);
