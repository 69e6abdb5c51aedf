// Issue 15, item 3: the state of a cluster cannot go backwards. The status
// records the topology (epoch, phase, the doubling's next layout) and the
// accepted spec; the topology ConfigMap is a projection of it. Deleting the
// ConfigMap, outside a doubling and in the middle of one, with the operator
// running or stopped and restarted, brings it back as it was; the API server
// refuses a status whose epoch goes backwards.
import { KubernetesRegistry } from '../../workloads/registry/kubernetes.js';
import type { Registration } from '../../workloads/registry/registry.js';
import { type Topology } from '../../workloads/registry/schema.js';
import { type ControlPlane } from './control-plane.js';
import { eventsSince, eventually, getJson, startOperator, type CliProcess, startOperatorControlPlane, workloadUser, OPERATOR_USER, topologyOf } from './support.js';

const NS = 'state';
const CLUSTER = 'chat';
const WORKLOAD_USER = workloadUser(NS, CLUSTER);

let cp: ControlPlane;
let operator: CliProcess;
let registry: KubernetesRegistry;
const registrations = new Map<string, Registration>();

const topology = (): Promise<Topology> => topologyOf(cp, NS, CLUSTER);
const cluster = () => getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS]);
const patchSpec = (spec: object) => cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec })]);
const deleteTopology = () => cp.kubectl(['delete', 'configmap', `${CLUSTER}-topology`, '-n', NS]);
const startTheOperator = () => startOperator(cp.kubeconfig(OPERATOR_USER));

async function member(partition: number, replica: number, epoch: number): Promise<void> {
  const id = `broker-${partition}-${replica}-sim`;
  const existing = registrations.get(id);
  if (existing) return existing.update({ epoch, ready: true });
  registrations.set(id, await registry.register({ id, role: 'broker', partition, replica, address: `10.3.${partition}.${replica}:7000`, ready: true, epoch }));
}

beforeAll(async () => {
  // The operator gets exactly the chart's RBAC.
  cp = await startOperatorControlPlane(NS, CLUSTER);
  operator = await startTheOperator();
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
  registry = await KubernetesRegistry.connect({ kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER });
});

afterAll(async () => {
  for (const r of registrations.values()) await r.close();
  await registry?.close();
  await operator?.stop();
  await cp?.stop();
});

test('outside a doubling: a deleted topology ConfigMap comes back at its epoch, also across an operator restart', async () => {
  await patchSpec({ broker: { partitions: 2, replicas: 3 } });
  const stable = { epoch: 2, phase: 'Stable', roles: { broker: { partitions: 2, replicas: 3 } } };
  await eventually(async () => expect(await topology()).toMatchObject(stable));
  expect((await cluster()).status).toMatchObject({ epoch: 2, phase: 'Stable', topology: stable, acceptedSpec: { broker: { partitions: 2, replicas: 3 } } });

  await deleteTopology();
  await eventually(async () => expect(await topology()).toMatchObject(stable));

  await operator.kill();
  await deleteTopology();
  operator = await startTheOperator();
  await eventually(async () => expect(await topology()).toMatchObject(stable));
  expect((await cluster()).status.epoch).toBe(2);
});

test('during a doubling: a deleted topology ConfigMap comes back Expanding, across a restart, and the doubling completes', async () => {
  for (const p of [0, 1]) for (const r of [0, 1, 2]) await member(p, r, 2);
  const doublingsStarted = await eventsSince(cp, NS, CLUSTER);
  await patchSpec({ broker: { partitions: 4, replicas: 3 } });
  const expanding = { epoch: 2, phase: 'Expanding', roles: { broker: { partitions: 2 } }, next: { roles: { broker: { partitions: 4, replicas: 3 } } } };
  await eventually(async () => expect(await topology()).toMatchObject(expanding));

  await deleteTopology();
  await eventually(async () => expect(await topology()).toMatchObject(expanding));

  await operator.kill();
  await deleteTopology();
  operator = await startTheOperator();
  await eventually(async () => expect(await topology()).toMatchObject(expanding));
  expect((await cluster()).status).toMatchObject({ epoch: 2, phase: 'Expanding' });

  for (const p of [2, 3]) for (const r of [0, 1, 2]) await member(p, r, 3);
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 3, phase: 'Switching' }));
  for (const p of [0, 1]) for (const r of [0, 1, 2]) await member(p, r, 3);
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 3, phase: 'Stable', roles: { broker: { partitions: 4 } } }));
  // Started once: neither the deletions nor the restart began it again.
  expect(await doublingsStarted('DoublingStarted')).toBe(1);
});

test('the API server refuses a status whose epoch goes backwards', async () => {
  const { status } = await cluster();
  const older = { status: { topology: { ...status.topology, epoch: 1 } } };
  await expect(cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify(older)]))
    .rejects.toThrow(/status.topology.epoch never goes backwards/);
});
