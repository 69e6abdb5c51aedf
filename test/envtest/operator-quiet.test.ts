// Issue 15, item 2: an operator at rest makes no writes. With a cluster Ready
// and every member renewing its Lease every second, the API server's own
// request counters (apiserver_request_total) see no write from the operator
// over the window but its leader Lease; resyncs still reconcile (and find
// nothing to do). Objects someone deletes or edits are put back at once.
import { KubernetesRegistry } from '../../workloads/registry/kubernetes.js';
import type { Registration } from '../../workloads/registry/registry.js';
import type { Member } from '../../workloads/registry/schema.js';
import { type ControlPlane } from './control-plane.js';
import { apiserverWrites, countsSince, eventually, getJson, markWorkloadsReady, metricSum, operatorMetrics, startOperator, type CliProcess, startOperatorControlPlane, workloadUser, OPERATOR_USER } from './support.js';

const NS = 'quiet';
const CLUSTER = 'chat';
const WORKLOAD_USER = workloadUser(NS, CLUSTER);
const WINDOW_MS = 30_000;
const RESYNC_SECONDS = 10;

let cp: ControlPlane;
let operator: CliProcess;
let registry: KubernetesRegistry;
const registrations: Registration[] = [];

beforeAll(async () => {
  // The operator gets exactly the chart's RBAC.
  cp = await startOperatorControlPlane(NS, CLUSTER);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER), { args: ['--resync-seconds', String(RESYNC_SECONDS)] });
});

afterAll(async () => {
  for (const r of registrations) await r.close();
  await registry?.close();
  await operator?.stop();
  await cp?.stop();
});

const cluster = () => getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS]);

test('at rest, with every member renewing its Lease each second, the operator writes nothing', async () => {
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
  await eventually(async () => expect((await getJson(cp, ['statefulsets', '-n', NS])).items).toHaveLength(3));
  await markWorkloadsReady(cp, NS, `groupchat.dev/cluster=${CLUSTER}`);
  // Every pod of examples/small.yaml as a member whose Lease is renewed every second.
  registry = await KubernetesRegistry.connect({
    kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER, leaseDurationSeconds: 3,
  });
  const pods: [Member['role'], number, number][] = [
    ...[0, 1].flatMap((p) => [0, 1].map((r): [Member['role'], number, number] => ['broker', p, r])),
    ['router', 0, 0], ['router', 0, 1], ['proxy', 0, 0], ['proxy', 0, 1], ['gateway', 0, 0], ['gateway', 0, 1],
  ];
  for (const [role, partition, replica] of pods) {
    registrations.push(await registry.register({
      id: `${role}-${partition}-${replica}-idle`, role, partition, replica, address: `10.2.${partition}.${replica}:7000`, ready: true, epoch: 1,
    }));
  }
  await eventually(async () => {
    const cr = await cluster();
    expect(cr.status).toMatchObject({ observedGeneration: 1, ready: '10/10' });
    expect(cr.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });
  // At rest: the cluster is Ready and its status says so; nothing is left to do.
  const apiBefore = await apiserverWrites(cp);
  const opBefore = await operatorMetrics(operator);
  await new Promise((r) => setTimeout(r, WINDOW_MS)); // the measurement window itself
  const writes = countsSince(apiBefore, await apiserverWrites(cp));
  const opAfter = await operatorMetrics(operator);
  const delta = (name: string, labels: Record<string, string> = {}) => metricSum(opAfter, name, labels) - metricSum(opBefore, name, labels);

  const perMinute = Object.fromEntries(Object.entries(writes).map(([k, v]) => [k, Math.round((v * 60_000) / WINDOW_MS)]));
  process.stdout.write(`writes per minute at rest, by verb and resource: ${JSON.stringify(perMinute)}\n`);
  // The members' renewals (server-side apply of their Leases) and Lease updates
  // with PUT are the only writes: the operator's leader Lease (every 2 s) and
  // the API server's own identity Lease (every 10 s). The API server also
  // writes the endpoints of its own Service, which the operator may not touch.
  const { 'APPLY leases': memberRenewals = 0, 'PUT leases': leaseUpdates = 0, 'POST endpoints': _own, 'PUT endpoints': _ownToo, ...others } = writes;
  expect(others).toEqual({});
  expect(memberRenewals).toBeGreaterThanOrEqual((pods.length * WINDOW_MS) / 1000 / 2);
  expect(leaseUpdates).toBeLessThanOrEqual(WINDOW_MS / 2000 + WINDOW_MS / 10_000 + 2);
  // Renewals queued nothing; the resyncs reconciled, applied nothing and wrote no status.
  const reconciles = delta('groupchat_operator_reconciles_total');
  expect(reconciles).toBeGreaterThanOrEqual(Math.floor(WINDOW_MS / 1000 / RESYNC_SECONDS) - 1);
  expect(reconciles).toBeLessThanOrEqual(Math.ceil(WINDOW_MS / 1000 / RESYNC_SECONDS) + 1);
  expect(delta('groupchat_operator_applies_total', { outcome: 'applied' })).toBe(0);
  expect(delta('groupchat_operator_applies_total', { outcome: 'skipped' })).toBeGreaterThan(0);
  expect(delta('groupchat_operator_status_writes_total')).toBe(0);
}, 240_000);

test('an owned object someone deletes or edits is put back', async () => {
  await cp.kubectl(['delete', 'service', 'chat-gateway', '-n', NS]);
  await cp.kubectl(['scale', 'statefulset', 'chat-broker-0', '-n', NS, '--replicas=5']);
  await cp.kubectl(['patch', 'configmap', 'chat-topology', '-n', NS, '--type=merge', '-p', '{"data":{"topology.json":"{}"}}']);
  await eventually(async () => {
    expect((await getJson(cp, ['service', 'chat-gateway', '-n', NS])).spec.ports[0].port).toBe(8081);
    expect((await getJson(cp, ['statefulset', 'chat-broker-0', '-n', NS])).spec.replicas).toBe(2);
    expect(JSON.parse((await getJson(cp, ['configmap', 'chat-topology', '-n', NS])).data['topology.json'])).toMatchObject({ epoch: 1, phase: 'Stable' });
  });
});
