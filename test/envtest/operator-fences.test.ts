// Issue 15, item 6, against a whole control plane (the garbage collector runs):
// the operator fences each cluster with NetworkPolicies in the cluster's own
// namespace, owned by the cluster; and the chart's RBAC lets it read
// everywhere but write only in the namespaces it manages clusters in: nothing
// in kube-system, and no RoleBinding that grants more than it holds there.
import { startFullControlPlane, type FullControlPlane } from '../e2e/control-plane.js';
import { eventually, getJson, OPERATOR_USER, startOperator, startOperatorControlPlane, type CliProcess } from './support.js';

const NS = 'team-f';
const CLUSTER = 'chat';
/** A namespace the chart does not let the operator manage. */
const ELSEWHERE = 'elsewhere';

let cp: FullControlPlane;
let operator: CliProcess | undefined;

beforeAll(async () => {
  cp = await startOperatorControlPlane(NS, CLUSTER, startFullControlPlane);
  await cp.kubectl(['create', 'namespace', ELSEWHERE]);
  operator = await startOperator(cp.kubeconfig(OPERATOR_USER));
});

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

interface PolicyList { items: { metadata: { name: string; ownerReferences?: object[] }; spec: Record<string, unknown> }[] }
const policies = async () => {
  const list = await getJson<PolicyList>(cp, ['networkpolicies', '-n', NS]);
  return new Map(list.items.map((p) => [p.metadata.name, p]));
};

test('the operator keeps a cluster\'s NetworkPolicies in its namespace, owned by the cluster, and they go with it', async () => {
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { networkPolicy: { metricsNamespace: 'monitoring' } } })]);
  const uid = (await getJson(cp, ['groupchatcluster', CLUSTER, '-n', NS])).metadata.uid;
  const found = await eventually(async () => {
    const map = await policies();
    expect([...map.keys()].sort()).toEqual(['chat-metrics', 'chat-peers', 'chat-publishers', 'chat-users']);
    return map;
  });
  const clusterPods = { matchLabels: { 'groupchat.dev/cluster': CLUSTER, 'app.kubernetes.io/managed-by': 'groupchat-operator' } };
  const tcp = (port: number) => ({ port, protocol: 'TCP' });
  // Peer and health ports: only from the cluster's own pods.
  expect(found.get('chat-peers')!.spec).toEqual({
    podSelector: clusterPods, policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: clusterPods }], ports: [tcp(7000), tcp(8080)] }],
  });
  // Users reach only the gateways' WebSocket port; publishers only the proxies' peer port.
  expect(found.get('chat-users')!.spec).toEqual({
    podSelector: { matchLabels: { 'groupchat.dev/cluster': CLUSTER, 'groupchat.dev/role': 'gateway' } }, policyTypes: ['Ingress'],
    ingress: [{ ports: [tcp(8081)] }],
  });
  expect(found.get('chat-publishers')!.spec).toEqual({
    podSelector: { matchLabels: { 'groupchat.dev/cluster': CLUSTER, 'groupchat.dev/role': 'proxy' } }, policyTypes: ['Ingress'],
    ingress: [{ ports: [tcp(7000)] }],
  });
  // Metrics: from the namespace the spec names.
  expect(found.get('chat-metrics')!.spec).toEqual({
    podSelector: clusterPods, policyTypes: ['Ingress'],
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [tcp(8080)] }],
  });
  for (const policy of found.values()) {
    expect(policy.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'GroupChatCluster', name: CLUSTER, uid, controller: true })]);
  }

  // Without a metrics namespace, its policy goes.
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/networkPolicy' }])]);
  await eventually(async () => expect([...(await policies()).keys()].sort()).toEqual(['chat-peers', 'chat-publishers', 'chat-users']));

  // The cluster deleted, the garbage collector removes its policies.
  await cp.kubectl(['delete', 'groupchatcluster', CLUSTER, '-n', NS, '--wait=false']);
  await eventually(async () => expect([...(await policies()).keys()]).toEqual([]), 60_000);
});

/** Whether the operator's service account may, as the API server's own authorizer answers. */
const operatorMay = (verb: string, resource: string, namespace?: string) => {
  const [kind, subresource] = resource.split('/');
  return cp.kubectl(['auth', 'can-i', '--quiet', verb, kind!, ...(subresource ? [`--subresource=${subresource}`] : []),
    '--as', OPERATOR_USER, ...(namespace ? ['-n', namespace] : ['--all-namespaces'])])
    .then(() => true, () => false);
};

test('the chart\'s RBAC: the operator reads everywhere, writes only where it manages clusters, and nothing in kube-system', async () => {
  const checks: [string, string, string | undefined][] = [
    ['list', 'statefulsets', undefined], ['watch', 'leases.coordination.k8s.io', undefined], ['watch', 'pods', undefined],
    ['patch', 'groupchatclusters.groupchat.dev/status', undefined],
    ...['kube-system', ELSEWHERE, NS].flatMap((ns): [string, string, string][] => [
      ['create', 'configmaps', ns], ['update', 'configmaps', ns], ['delete', 'leases.coordination.k8s.io', ns],
      ['create', 'rolebindings.rbac.authorization.k8s.io', ns], ['patch', 'statefulsets.apps', ns],
      ['create', 'networkpolicies.networking.k8s.io', ns], ['create', 'events.events.k8s.io', ns],
    ]),
  ];
  const answers = await Promise.all(checks.map(async ([verb, resource, ns]) => `${verb} ${resource} in ${ns ?? 'every namespace'}: ${await operatorMay(verb, resource, ns) ? 'yes' : 'no'}`));
  expect(answers).toEqual(checks.map(([verb, resource, ns]) => `${verb} ${resource} in ${ns ?? 'every namespace'}: ${ns === undefined || ns === NS ? 'yes' : 'no'}`));

  // A cluster where the operator may not write says why in its status.
  await cp.kubectl(['apply', '-n', ELSEWHERE, '-f', 'examples/small.yaml']);
  const degraded = await eventually(async () => {
    const cr = await getJson(cp, ['groupchatcluster', CLUSTER, '-n', ELSEWHERE]);
    const condition = cr.status?.conditions?.find((c: { type: string }) => c.type === 'Degraded');
    expect(condition).toMatchObject({ status: 'True', reason: 'ApplyFailed' });
    return condition;
  });
  expect(degraded.message).toMatch(/is forbidden: .*The operator may write only in the namespaces its chart lists in clusterNamespaces; add elsewhere there$/);

  // Where it may create RoleBindings, it may not grant more than it holds.
  await expect(cp.kubectl(['create', 'rolebinding', 'escalate', '-n', NS, '--clusterrole=cluster-admin', `--serviceaccount=${NS}:default`, '--as', OPERATOR_USER]))
    .rejects.toThrow(/forbidden: user .* is attempting to grant RBAC permissions not currently held/);
});
