// Issue 4, acceptance 1, 2 and 5, against a real kube-apiserver: the operator
// (the real `groupchat operator` process, with the chart's RBAC and nothing
// more) creates a cluster's objects, follows replica edits, doubles partitions
// through Expanding and Switching as member Leases report, refuses a change
// during a doubling (the API server rejects unsafe ones), and finishes a
// doubling it was restarted in the middle of.
import { type Member, type Topology } from '../../workloads/registry/schema.js';
import { KubernetesRegistry } from '../../workloads/registry/kubernetes.js';
import type { Registration } from '../../workloads/registry/registry.js';
import { type ControlPlane } from './control-plane.js';
import { eventsSince, eventually, getJson, markWorkloadsReady, startOperator, type CliProcess, startOperatorControlPlane, workloadUser, OPERATOR_USER, topologyOf } from './support.js';

const NS = 'team-a';
const CLUSTER = 'chat';
const WORKLOAD_USER = workloadUser(NS, CLUSTER);

let cp: ControlPlane;
let operator: CliProcess;
let registry: KubernetesRegistry;
const registrations = new Map<string, Registration>();

const topology = (): Promise<Topology> => topologyOf(cp, NS, CLUSTER);
const cluster = () => getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS]);
const condition = (cr: any, type: string) => cr.status?.conditions?.find((c: any) => c.type === type);
const statefulSetNames = async () => (await getJson(cp, ['statefulsets', '-n', NS])).items.map((s: any) => s.metadata.name).sort();
const patchSpec = (spec: object) => cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec })]);
/** Counts the cluster's events recorded since the running test began: a test counts only what it caused. */
let recordedSinceTestBegan: (reason: string) => Promise<number>;
beforeEach(async () => { recordedSinceTestBegan = await eventsSince(cp, NS, CLUSTER); });
/** Events are recorded after the objects they speak of are applied: wait for them too. */
const eventRecorded = (reason: string) => eventually(async () => expect(await recordedSinceTestBegan(reason)).toBeGreaterThan(0));

/** A member as a pod's registry writes it: a Lease renewed by the kubernetes back-end. */
async function member(role: Member['role'], partition: number, replica: number, epoch: number, ready = true): Promise<void> {
  const id = `${role}-${partition}-${replica}-sim`;
  const existing = registrations.get(id);
  if (existing) return existing.update({ epoch, ready });
  registrations.set(id, await registry.register({
    id, role, partition, replica, address: `10.1.${partition}.${replica}:7000`, ready, epoch,
  }));
}

beforeAll(async () => {
  // The operator gets exactly the chart's RBAC.
  cp = await startOperatorControlPlane(NS, CLUSTER);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER));
});

afterAll(async () => {
  for (const r of registrations.values()) await r.close();
  await registry?.close();
  await operator?.stop();
  await cp?.stop();
});

test('creating a GroupChatCluster makes its objects appear, and status reports them', async () => {
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);

  expect(await eventually(async () => {
    const names = await statefulSetNames();
    expect(names).toHaveLength(3);
    return names;
  })).toEqual(['chat-broker-0', 'chat-broker-1', 'chat-router-0']);

  const cr = await cluster();
  const broker = await getJson(cp, ['statefulset', 'chat-broker-1', '-n', NS]);
  expect(broker.spec.replicas).toBe(2);
  expect(broker.spec.serviceName).toBe('chat-broker');
  expect(broker.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'GroupChatCluster', uid: cr.metadata.uid, controller: true })]);
  const container = broker.spec.template.spec.containers[0];
  expect(container.args).toEqual(['broker']);
  expect(container.env).toEqual(expect.arrayContaining([
    { name: 'GROUPCHAT_REGISTRY', value: 'kubernetes' },
    { name: 'GROUPCHAT_CLUSTER', value: CLUSTER },
    { name: 'GROUPCHAT_PARTITION', value: '1' },
  ]));
  expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(broker.spec.template.spec.serviceAccountName).toBe('chat-workload');

  const deployments = await getJson(cp, ['deployments', '-n', NS]);
  expect(deployments.items.map((d: any) => [d.metadata.name, d.spec.replicas]).sort()).toEqual([['chat-gateway', 2], ['chat-proxy', 2]]);
  const services = await getJson(cp, ['services', '-n', NS]);
  expect(Object.fromEntries(services.items.map((s: any) => [s.metadata.name, s.spec.clusterIP === 'None' ? 'headless' : 'balanced'])))
    .toEqual({ 'chat-broker': 'headless', 'chat-router': 'headless', 'chat-proxy': 'balanced', 'chat-gateway': 'balanced' });
  const pdbs = await getJson(cp, ['poddisruptionbudgets', '-n', NS]);
  expect(pdbs.items.map((p: any) => p.metadata.name).sort())
    .toEqual(['chat-broker-0', 'chat-broker-1', 'chat-gateway', 'chat-proxy', 'chat-router-0']);
  const role = await getJson(cp, ['role', 'chat-workload', '-n', NS]);
  expect(role.rules).toEqual(expect.arrayContaining([
    expect.objectContaining({ resources: ['configmaps'], resourceNames: ['chat-topology'], verbs: ['get', 'list', 'watch'] }),
    expect.objectContaining({ apiGroups: ['coordination.k8s.io'], resources: ['leases'] }),
  ]));
  await getJson(cp, ['rolebinding', 'chat-workload', '-n', NS]);
  await getJson(cp, ['serviceaccount', 'chat-workload', '-n', NS]);
  expect(await topology()).toEqual({
    epoch: 1, phase: 'Stable', splitThreshold: 1000,
    roles: { broker: { partitions: 2, replicas: 2 }, router: { partitions: 1, replicas: 2 } },
  });

  // Status: nothing ready until the controllers say so, then everything.
  await eventually(async () => {
    const status = (await cluster()).status;
    expect(status).toMatchObject({ observedGeneration: 1, epoch: 1, phase: 'Stable' });
    expect(status.roles).toEqual({
      broker: { partitions: 2, desired: 4, ready: 0 }, router: { partitions: 1, desired: 2, ready: 0 },
      proxy: { desired: 2, ready: 0 }, gateway: { desired: 2, ready: 0 },
    });
    expect(condition({ status }, 'Ready').status).toBe('False');
  });
  await markWorkloadsReady(cp, NS, `groupchat.dev/cluster=${CLUSTER}`);
  await eventually(async () => {
    const cr = await cluster();
    expect(cr.status.roles.broker).toEqual({ partitions: 2, desired: 4, ready: 4 });
    expect(condition(cr, 'Ready')).toMatchObject({ status: 'True', reason: 'AllReady' });
    expect(condition(cr, 'Progressing')).toMatchObject({ status: 'False' });
    expect(condition(cr, 'Degraded')).toMatchObject({ status: 'False' });
  });
  await eventRecorded('TopologyCreated');
  const printed = await cp.kubectl(['get', 'groupchatcluster', CLUSTER, '-n', NS]);
  expect(printed).toMatch(/BROKERS\s+EPOCH\s+PHASE\s+READY/);
  expect(printed).toMatch(/chat\s+2\s+1\s+Stable\s+10\/10/);
});

test('editing replicas: the StatefulSets follow and the layout gets a new epoch', async () => {
  await patchSpec({ broker: { partitions: 2, replicas: 3 } });
  await eventually(async () => {
    for (const p of [0, 1]) expect((await getJson(cp, ['statefulset', `chat-broker-${p}`, '-n', NS])).spec.replicas).toBe(3);
    expect(await topology()).toMatchObject({ epoch: 2, phase: 'Stable', roles: { broker: { partitions: 2, replicas: 3 } } });
  });
  await eventually(async () => expect((await cluster()).status.roles.broker.desired).toBe(6));
});

test('kubectl scale scales the gateways through the scale subresource, as a HorizontalPodAutoscaler would', async () => {
  await cp.kubectl(['scale', 'groupchatcluster', CLUSTER, '-n', NS, '--replicas', '3']);
  expect((await cluster()).spec.gateway.replicas).toBe(3);
  await eventually(async () => expect((await getJson(cp, ['deployment', 'chat-gateway', '-n', NS])).spec.replicas).toBe(3));
  const scale = await eventually(async () => {
    const current = await getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS, '--subresource', 'scale']);
    expect(current.status.replicas).toBe(3);
    return current;
  });
  expect(scale).toMatchObject({ kind: 'Scale', spec: { replicas: 3 }, status: { selector: 'groupchat.dev/cluster=chat,groupchat.dev/role=gateway' } });
  // The selector finds the gateway pods' template labels.
  const template = (await getJson(cp, ['deployment', 'chat-gateway', '-n', NS])).spec.template.metadata.labels;
  expect(template).toMatchObject({ 'groupchat.dev/cluster': CLUSTER, 'groupchat.dev/role': 'gateway' });
  await cp.kubectl(['scale', 'groupchatcluster', CLUSTER, '-n', NS, '--replicas', '2']);
  await eventually(async () => expect((await getJson(cp, ['deployment', 'chat-gateway', '-n', NS])).spec.replicas).toBe(2));
});

test('editing partitions 2 → 4 doubles them through Expanding and Switching as members sync', async () => {
  registry = await KubernetesRegistry.connect({ kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER });
  // The members of the current layout, serving epoch 2.
  for (const p of [0, 1]) for (const r of [0, 1, 2]) await member('broker', p, r, 2);

  await patchSpec({ broker: { partitions: 4, replicas: 3 } });
  await eventually(async () => {
    expect(await statefulSetNames()).toEqual(['chat-broker-0', 'chat-broker-1', 'chat-broker-2', 'chat-broker-3', 'chat-router-0']);
    const t = await topology();
    expect(t).toMatchObject({ epoch: 2, phase: 'Expanding', roles: { broker: { partitions: 2 } }, next: { roles: { broker: { partitions: 4, replicas: 3 } } } });
    expect((await cluster()).status).toMatchObject({ phase: 'Expanding', epoch: 2 });
  });
  await eventRecorded('DoublingStarted');
  // The registry the pods use sees the phase change.
  await eventually(() => expect(registry.topology().phase).toBe('Expanding'));

  // A second change while the doubling runs is refused whole.
  await patchSpec({ broker: { partitions: 4, replicas: 5 } });
  await eventually(async () => {
    expect(condition(await cluster(), 'Degraded')).toMatchObject({ status: 'True', reason: 'ChangeDuringDoubling' });
  });
  await eventRecorded('ChangeDuringDoubling');
  expect((await getJson(cp, ['statefulset', 'chat-broker-0', '-n', NS])).spec.replicas).toBe(3);
  await patchSpec({ broker: { partitions: 4, replicas: 3 } });

  // New partitions that are up but not synced (ready, still on epoch 2) do not flip the epoch. The last
  // member registered already serves epoch 3: once the operator's condition counts it, the operator has
  // judged a view holding every member registered before it (the watch delivers them in order).
  for (const p of [2, 3]) for (const r of [0, 1, 2]) await member('broker', p, r, p === 3 && r === 2 ? 3 : 2);
  await eventually(async () => {
    expect(condition(await cluster(), 'Progressing')?.message).toBe('new partitions to sync: broker 2 (0/3), broker 3 (1/3)');
  });
  expect((await topology()).phase).toBe('Expanding');
  // Synced: every replica of every new partition is ready and serves epoch 3.
  for (const p of [2, 3]) for (const r of [0, 1, 2]) await member('broker', p, r, 3);
  await eventually(async () => {
    expect(await topology()).toMatchObject({ epoch: 3, phase: 'Switching', roles: { broker: { partitions: 4, replicas: 3 } } });
  });
  expect((await topology()).next).toBeUndefined();
  await eventRecorded('EpochFlipped');

  // Switching ends once the old partitions' members serve the new epoch too.
  for (const p of [0, 1]) for (const r of [0, 1, 2]) await member('broker', p, r, 3);
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 3, phase: 'Stable' }));
  await eventually(async () => {
    const cr = await cluster();
    expect(cr.status).toMatchObject({ phase: 'Stable', epoch: 3 });
    expect(condition(cr, 'Degraded')).toMatchObject({ status: 'False' });
  });
  await eventRecorded('DoublingComplete');
});

test('4 → 3, 4 → 2 and 4 → 16 are rejected by the API server, so spec and cluster never disagree', async () => {
  const before = await topology();
  await expect(patchSpec({ broker: { partitions: 3, replicas: 3 } })).rejects.toThrow(/partitions must be a power of two/);
  await expect(patchSpec({ broker: { partitions: 2, replicas: 4 } })).rejects.toThrow(/broker partitions can only stay as they are or double/);
  await expect(patchSpec({ broker: { partitions: 16, replicas: 3 } })).rejects.toThrow(/broker partitions can only stay as they are or double/);
  expect((await cluster()).spec.broker).toEqual({ partitions: 4, replicas: 3 });
  expect(condition(await cluster(), 'Degraded')).toMatchObject({ status: 'False' });
  expect(await topology()).toEqual(before);
});

test('an operator restarted in the middle of a doubling resumes and completes it', async () => {
  await patchSpec({ broker: { partitions: 8, replicas: 3 } });
  await eventually(async () => {
    expect(await topology()).toMatchObject({ epoch: 3, phase: 'Expanding' });
    expect(await statefulSetNames()).toHaveLength(9);
  });
  await operator.kill();

  // While no operator runs, the new partitions come up and sync.
  for (let p = 4; p < 8; p++) for (const r of [0, 1, 2]) await member('broker', p, r, 4);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER));
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 4, phase: 'Switching' }));
  for (let p = 0; p < 4; p++) for (const r of [0, 1, 2]) await member('broker', p, r, 4);
  await eventually(async () => {
    expect(await topology()).toMatchObject({ epoch: 4, phase: 'Stable', roles: { broker: { partitions: 8, replicas: 3 } } });
    expect((await cluster()).status).toMatchObject({ phase: 'Stable', epoch: 4 });
  });
  // Started once, not twice: the new operator carried on from the ConfigMap.
  expect(await recordedSinceTestBegan('DoublingStarted')).toBe(1);
});

