// Issue 4, acceptance 3: a broker process started with the environment its
// pod would have (the env of the StatefulSet the operator built, resolved
// against a Pod object, and only the pods' RBAC) registers its Lease and
// follows the topology as the operator changes it.
import { KubernetesRegistry } from '../../workloads/registry/kubernetes.js';
import { MEMBER_ANNOTATION } from '../../workloads/registry/kubernetes-objects.js';
import { MemberSchema, type Member } from '../../workloads/registry/schema.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { eventually, getJson, startCli, startOperator, type CliProcess } from './support.js';

const NS = 'team-b';
const CLUSTER = 'chat';
const POD = 'chat-broker-1-0';
const WORKLOAD_USER = `system:serviceaccount:${NS}:${CLUSTER}-workload`;

let cp: ControlPlane;
let operator: CliProcess | undefined;
let broker: CliProcess | undefined;

beforeAll(async () => {
  cp = await startControlPlane([{ name: WORKLOAD_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`] }]);
  await cp.kubectl(['create', 'namespace', NS]);
  operator = await startOperator(cp.kubeconfig(), { namespace: NS });
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
  await eventually(() => getJson(cp, ['statefulset', 'chat-broker-1', '-n', NS]));
});

afterAll(async () => {
  await broker?.stop();
  await operator?.stop();
  await cp?.stop();
});

/** The pod the StatefulSet controller would make for ordinal 0, and its container's env as the kubelet resolves it. */
async function podEnvironment(statefulSet = 'chat-broker-1', podName = POD): Promise<Record<string, string>> {
  const sts = await getJson(cp, ['statefulset', statefulSet, '-n', NS]);
  const template = sts.spec.template;
  const pod = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: podName, namespace: NS, labels: { ...template.metadata.labels, 'apps.kubernetes.io/pod-index': '0' } },
    // The StatefulSet controller would bind each volume claim template; an emptyDir stands in for it.
    spec: { ...template.spec, volumes: [...(template.spec.volumes ?? []), ...(sts.spec.volumeClaimTemplates ?? []).map((c: any) => ({ name: c.metadata.name, emptyDir: {} }))] },
  };
  const created = JSON.parse(await cp.kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) }));
  const fieldValue = (path: string): string => {
    const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
    if (label) return created.metadata.labels[label[1]!];
    const values: Record<string, string> = {
      'metadata.namespace': created.metadata.namespace, 'metadata.name': created.metadata.name,
      'metadata.uid': created.metadata.uid, 'status.podIP': '127.0.0.1',
    };
    return values[path]!;
  };
  const env: Record<string, string> = {};
  for (const e of template.spec.containers[0].env) env[e.name] = e.value ?? fieldValue(e.valueFrom.fieldRef.fieldPath);
  return env;
}

async function lease(): Promise<{ member: Member; lease: any }> {
  const lease = await getJson(cp, ['lease', POD, '-n', NS]);
  return { lease, member: MemberSchema.parse(JSON.parse(lease.metadata.annotations[MEMBER_ANNOTATION])) };
}

async function epochMetric(member: Member): Promise<number> {
  const text = await (await fetch(`http://${member.httpAddress}/metrics`)).text();
  return Number(/^groupchat_topology_epoch (\d+)$/m.exec(text)![1]);
}

test('a broker with its pod\'s environment registers its Lease and follows topology changes', async () => {
  const env = await podEnvironment();
  expect(env).toMatchObject({ GROUPCHAT_REGISTRY: 'kubernetes', GROUPCHAT_CLUSTER: CLUSTER, GROUPCHAT_NAMESPACE: NS, GROUPCHAT_PARTITION: '1', GROUPCHAT_REPLICA: '0' });
  broker = await startCli(['broker'], {
    ...env,
    // This machine is not a pod network: loopback and free ports instead of the pod's fixed ones.
    GROUPCHAT_HOST: '127.0.0.1', GROUPCHAT_PORT: '0', GROUPCHAT_HTTP_PORT: '0',
    KUBECONFIG: cp.kubeconfig(WORKLOAD_USER),
  }, (line) => line.msg === 'not ready' || line.msg === 'ready' || typeof line.address === 'string');

  const first = await eventually(async () => {
    const found = await lease();
    expect(found.member).toMatchObject({ role: 'broker', partition: 1, replica: 0, epoch: 1 });
    return found;
  });
  expect(first.lease.metadata.labels).toMatchObject({ 'groupchat.dev/cluster': CLUSTER, 'groupchat.dev/lease': 'member', 'groupchat.dev/role': 'broker' });
  expect(first.lease.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Pod', name: POD, uid: env.GROUPCHAT_POD_UID })]);
  expect(first.lease.spec.holderIdentity).toBe(first.member.id);
  expect(await epochMetric(first.member)).toBe(1);

  // Another member's view (through the same back-end) lists it.
  const view = await KubernetesRegistry.connect({ kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER });
  try {
    await eventually(() => expect(view.members().map((m) => m.id)).toContain(first.member.id));
  } finally {
    await view.close();
  }

  // The operator writes a new layout; the broker applies it and says so in its Lease.
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { broker: { partitions: 2, replicas: 3 } } })]);
  await eventually(async () => {
    const { member } = await lease();
    expect(member.epoch).toBe(2);
    expect(await epochMetric(member)).toBe(2);
  });
  expect(broker.logs).toContainEqual(expect.objectContaining({ msg: 'topology changed', epoch: 2 }));
  const renewed = (await lease()).lease.spec.renewTime;
  await eventually(async () => expect((await lease()).lease.spec.renewTime).not.toBe(renewed), 15_000);

  // A broker that stops takes its Lease with it.
  await broker.stop();
  await eventually(async () => expect(await cp.kubectl(['get', 'leases', '-n', NS, '-o', 'name'])).not.toContain(POD));
});

interface HttpProbe { httpGet: { path: string }; periodSeconds: number; timeoutSeconds: number; failureThreshold: number }

/** One probe as the kubelet makes it: success is a 2xx or 3xx answer within the timeout. */
async function probeOnce(address: string, probe: HttpProbe): Promise<boolean> {
  try {
    const res = await fetch(`http://${address}${probe.httpGet.path}`, { signal: AbortSignal.timeout(probe.timeoutSeconds * 1000) });
    return res.status >= 200 && res.status < 400;
  } catch {
    return false;
  }
}

/** Probes on the probe's period, `count` times, as the kubelet does; resolves with the longest run of failures. */
async function probeRuns(address: string, probe: HttpProbe, count: number): Promise<number> {
  let run = 0;
  let longest = 0;
  for (let i = 0; i < count; i++) {
    const started = Date.now();
    run = (await probeOnce(address, probe)) ? 0 : run + 1;
    longest = Math.max(longest, run);
    await new Promise((r) => setTimeout(r, Math.max(0, probe.periodSeconds * 1000 - (Date.now() - started))));
  }
  return longest;
}

test('a pod whose API server is away for longer than its liveness budget is not restarted, and is ready once it returns', async () => {
  // The probes the operator gave the pod, and the environment the kubelet would.
  const sts = await getJson(cp, ['statefulset', 'chat-router-0', '-n', NS]);
  const { startupProbe, livenessProbe, readinessProbe } = sts.spec.template.spec.containers[0] as Record<string, HttpProbe>;
  const env = await podEnvironment('chat-router-0', 'chat-router-0-0');
  const budgetSeconds = livenessProbe!.periodSeconds * livenessProbe!.failureThreshold;
  cp.freeze('kube-apiserver', true);
  const frozenAt = Date.now();
  let router: CliProcess | undefined;
  try {
    router = await startCli(['router'], {
      ...env, GROUPCHAT_HOST: '127.0.0.1', GROUPCHAT_PORT: '0', GROUPCHAT_HTTP_PORT: '0', KUBECONFIG: cp.kubeconfig(WORKLOAD_USER),
    }, (line) => line.msg === 'serving health');
    const http = router.logs.find((l) => l.msg === 'serving health')!.http as string;
    // The startup probe passes at once: the process is up, though it cannot register.
    expect(await probeRuns(http, startupProbe!, 1)).toBe(0);
    // Liveness, for one period more than its budget: never a failure, so never a restart.
    expect(await probeRuns(http, livenessProbe!, livenessProbe!.failureThreshold + 1)).toBe(0);
    expect(await probeOnce(http, readinessProbe!)).toBe(false);
    expect(router.child.exitCode).toBeNull();
    cp.freeze('kube-apiserver', false);
    const awaySeconds = Math.round((Date.now() - frozenAt) / 1000);
    // Back: it registers and turns ready, in the same process.
    await eventually(async () => expect(await probeOnce(http, readinessProbe!)).toBe(true), 60_000);
    expect(router.child.exitCode).toBeNull();
    process.stdout.write(`liveness budget ${budgetSeconds} s; API server away ${awaySeconds} s; no liveness failure\n`);
  } finally {
    cp.freeze('kube-apiserver', false);
    await router?.stop();
  }
}, 180_000);

test('a named Lease (a gateway ordinal) changes holder only once it expired, with a term that counts the turns', async () => {
  const connect = () => KubernetesRegistry.connect({ kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER });
  const [a, b] = [await connect(), await connect()];
  try {
    expect(await a.acquireLease('gateway-ordinal-0', 'a', 2000)).toEqual({ holder: 'a', term: 1 });
    expect(await b.acquireLease('gateway-ordinal-0', 'b', 2000)).toEqual({ holder: 'a', term: 1 });
    expect(await a.acquireLease('gateway-ordinal-0', 'a', 2000)).toEqual({ holder: 'a', term: 1 });
    const lease = await getJson(cp, ['lease', 'chat-leader-gateway-ordinal-0', '-n', NS]);
    expect(lease.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 2, leaseTransitions: 1 });

    // Not renewed: once it has expired, another candidate takes it.
    await eventually(async () => expect(await b.acquireLease('gateway-ordinal-0', 'b', 2000)).toEqual({ holder: 'b', term: 2 }), 15_000);
    // Two candidates racing for a free Lease: exactly one wins.
    const race = await Promise.all([a.acquireLease('gateway-ordinal-1', 'a', 2000), b.acquireLease('gateway-ordinal-1', 'b', 2000)]);
    expect(race[0]).toEqual(race[1]);
    expect(['a', 'b']).toContain(race[0].holder);
  } finally {
    await a.close();
    await b.close();
  }
});
