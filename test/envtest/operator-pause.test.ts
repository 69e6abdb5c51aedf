// Issue 15, item 7, against a real kube-apiserver and the operator with the
// chart's RBAC: the groupchat.dev/paused annotation stops every change (an
// edit while paused is observed, not acted on, and lands once unpaused), and
// pods that cannot run (image pulls, crash loops, from the pod status the
// kubelet would write) are named in the Degraded condition in one sentence.
import { type ControlPlane } from './control-plane.js';
import { eventually, getJson, OPERATOR_USER, startOperator, startOperatorControlPlane, type CliProcess } from './support.js';

const NS = 'team-p';
const CLUSTER = 'chat';

let cp: ControlPlane;
let operator: CliProcess | undefined;

beforeAll(async () => {
  cp = await startOperatorControlPlane(NS, CLUSTER);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER));
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
});

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

const cluster = () => getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS]);
const condition = (cr: any, type: string) => cr.status?.conditions?.find((c: any) => c.type === type);
const gatewayReplicas = async () => (await getJson(cp, ['deployment', `${CLUSTER}-gateway`, '-n', NS])).spec.replicas;

test('a paused cluster changes nothing: an edit is observed, not acted on, and lands once unpaused', async () => {
  await eventually(async () => expect(await gatewayReplicas()).toBe(2));
  await cp.kubectl(['annotate', 'groupchatcluster', CLUSTER, '-n', NS, 'groupchat.dev/paused=true']);
  await eventually(async () => expect(condition(await cluster(), 'Paused')).toMatchObject({
    status: 'True', reason: 'PausedByAnnotation',
    message: 'Reconciling is paused by the annotation groupchat.dev/paused: nothing is created, changed or deleted until it is removed.',
  }));

  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { gateway: { replicas: 3 } } })]);
  const generation = (await cluster()).metadata.generation;
  // The operator has seen the edit (the status says which generation it observed)...
  await eventually(async () => expect((await cluster()).status.observedGeneration).toBe(generation));
  // ...and changed nothing.
  expect(await gatewayReplicas()).toBe(2);

  await cp.kubectl(['annotate', 'groupchatcluster', CLUSTER, '-n', NS, 'groupchat.dev/paused-']);
  await eventually(async () => expect(await gatewayReplicas()).toBe(3));
  await eventually(async () => expect(condition(await cluster(), 'Paused')).toBeUndefined());
});

/** A pod of the cluster as its Deployment would make it; its status is written below as the kubelet would. */
const POD = `${CLUSTER}-gateway-broken`;
const setContainerState = (state: object, restartCount = 0) => cp.kubectl(['patch', 'pod', POD, '-n', NS, '--subresource=status', '--type=merge',
  '-p', JSON.stringify({ status: { containerStatuses: [{ name: 'gateway', image: 'groupchat:9.9', imageID: '', ready: false, restartCount, state }] } })]);
const degraded = async () => condition(await cluster(), 'Degraded');

test('pods that cannot run are named in the Degraded condition, in one sentence, until they run', async () => {
  const labels = { 'app.kubernetes.io/name': 'groupchat', 'app.kubernetes.io/instance': CLUSTER, 'app.kubernetes.io/managed-by': 'groupchat-operator',
    'groupchat.dev/cluster': CLUSTER, 'groupchat.dev/role': 'gateway' };
  await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: POD, namespace: NS, labels }, spec: { containers: [{ name: 'gateway', image: 'groupchat:9.9' }] },
  }) });

  await setContainerState({ waiting: { reason: 'ErrImagePull', message: 'failed to resolve reference "groupchat:9.9": not found' } });
  await eventually(async () => expect(await degraded()).toMatchObject({
    status: 'True', reason: 'PodProblems', message: `1 pod cannot run: ${POD} cannot pull its image (ErrImagePull, groupchat:9.9).`,
  }));

  await setContainerState({ waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } }, 5);
  await eventually(async () => expect(await degraded()).toMatchObject({
    status: 'True', reason: 'PodProblems', message: `1 pod cannot run: ${POD} keeps crashing (CrashLoopBackOff, 5 restarts).`,
  }));

  await setContainerState({ running: { startedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } }, 5);
  await eventually(async () => expect(await degraded()).toMatchObject({ status: 'False', reason: 'AsExpected' }));
});
