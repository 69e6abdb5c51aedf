// The pure builders: what a cluster consists of, from its spec.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ClusterSpecSchema, type GroupChatCluster } from '../../../operator/api/v1alpha1.js';
import { desiredObjects } from '../../../operator/builders/desired.js';
import { clusterStateFromLegacyConfigMap, clusterStateFromStatus, stateStatus, topologyConfigMap } from '../../../operator/builders/topology.js';
import { step } from '../../../operator/scaling/doubling.js';

function cluster(file: string, name?: string): GroupChatCluster {
  const doc = parse(readFileSync(file, 'utf8'));
  return {
    apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster',
    metadata: { name: name ?? doc.metadata.name, namespace: 'ns', uid: 'uid-1', generation: 1 },
    spec: ClusterSpecSchema.parse(doc.spec),
  };
}

const objectsOf = (cr: GroupChatCluster) => desiredObjects(cr, step({ spec: cr.spec, state: undefined, members: [] }).state);
const byKind = (objects: ReturnType<typeof objectsOf>, kind: string) => objects.filter((o) => o.kind === kind) as any[];

test('the small example: a StatefulSet per partition, Deployments, services, PDBs, RBAC and the topology', () => {
  const objects = objectsOf(cluster('examples/small.yaml'));
  expect(byKind(objects, 'StatefulSet').map((s) => [s.metadata.name, s.spec.replicas]))
    .toEqual([['chat-broker-0', 2], ['chat-broker-1', 2], ['chat-router-0', 2]]);
  expect(byKind(objects, 'Deployment').map((d) => d.metadata.name)).toEqual(['chat-proxy', 'chat-gateway']);
  expect(byKind(objects, 'Service').map((s) => [s.metadata.name, s.spec.clusterIP ?? s.spec.type]))
    .toEqual([['chat-broker', 'None'], ['chat-router', 'None'], ['chat-proxy', 'ClusterIP'], ['chat-gateway', 'ClusterIP']]);
  expect(byKind(objects, 'PodDisruptionBudget')).toHaveLength(5);
  expect(objects.map((o) => o.kind)).toEqual(expect.arrayContaining(['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap']));
  // The topology goes last, so a phase is published only after what it speaks of.
  expect(objects.at(-1)!.kind).toBe('ConfigMap');
  for (const o of objects) {
    expect(o.metadata!.ownerReferences).toEqual([{ apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', name: 'chat', uid: 'uid-1', controller: true, blockOwnerDeletion: true }]);
    expect(o.metadata!.labels).toMatchObject({ 'groupchat.dev/cluster': 'chat', 'app.kubernetes.io/managed-by': 'groupchat-operator' });
  }
});

test('pods select exactly their partition, run locked down, and get their identity from the downward API', () => {
  const sts = byKind(objectsOf(cluster('examples/small.yaml')), 'StatefulSet')[1];
  expect(sts.spec.selector.matchLabels).toEqual({ 'groupchat.dev/cluster': 'chat', 'groupchat.dev/role': 'broker', 'groupchat.dev/partition': '1' });
  expect(sts.spec.template.metadata.labels).toMatchObject(sts.spec.selector.matchLabels);
  const pod = sts.spec.template.spec;
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
  const [container] = pod.containers;
  expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
  expect(env).toMatchObject({
    GROUPCHAT_PARTITION: '1', GROUPCHAT_REPLICA: "metadata.labels['apps.kubernetes.io/pod-index']",
    GROUPCHAT_POD_NAME: 'metadata.name', GROUPCHAT_NAMESPACE: 'metadata.namespace', GROUPCHAT_ADVERTISE_HOST: 'status.podIP',
  });
  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
});

test('the large example: stored roles get volumes, the auth and peer Secrets are mounted, resources are passed on', () => {
  const objects = objectsOf(cluster('examples/large.yaml'));
  const sts = byKind(objects, 'StatefulSet');
  expect(sts).toHaveLength(16 + 4 + 8 + 16 + 8);
  const xiu = sts.find((s) => s.metadata.name === 'chat-large-xiu-15');
  expect(xiu.spec.volumeClaimTemplates[0].spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '200Gi' } }, storageClassName: 'fast-ssd' });
  expect(xiu.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/groupchat' });
  const relay = sts.find((s) => s.metadata.name === 'chat-large-relay-0');
  expect(relay.spec.volumeClaimTemplates).toBeUndefined();
  const gateway = byKind(objects, 'Deployment').find((d) => d.metadata.name === 'chat-large-gateway');
  expect(gateway.spec.template.spec.volumes).toContainEqual({ name: 'auth', secret: { secretName: 'chat-large-auth', items: [{ key: 'key', path: 'key' }] } });
  expect(gateway.spec.template.spec.containers[0].env).toContainEqual({ name: 'GROUPCHAT_AUTH_KEY_FILE', value: '/etc/groupchat/auth/key' });
  // Only gateways verify tokens: nobody else gets the key.
  const proxy = byKind(objects, 'Deployment').find((d) => d.metadata.name === 'chat-large-proxy');
  expect(proxy.spec.template.spec.volumes.map((v: any) => v.name)).not.toContain('auth');
  // Every role speaks the peer protocol: every pod proves the cluster secret.
  for (const workload of [...sts, ...byKind(objects, 'Deployment')]) {
    const pod = workload.spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'peer-secret', secret: { secretName: 'chat-large-peer', items: [{ key: 'secret', path: 'secret' }] } });
    expect(pod.containers[0].env).toContainEqual({ name: 'GROUPCHAT_PEER_SECRET_FILE', value: '/etc/groupchat/peer/secret' });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'peer-secret', mountPath: '/etc/groupchat/peer', readOnly: true });
  }
  expect(gateway.spec.template.spec.containers[0].resources).toEqual({ requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '2Gi' } });
});

test('names stay within what the API allows for the longest cluster name and partition', () => {
  const cr = cluster('examples/large.yaml', 'c'.repeat(40));
  cr.spec.broker.partitions = 1024;
  for (const o of objectsOf(cr)) {
    // A StatefulSet's name goes into its pods' controller-revision-hash label (63) with 11 more characters.
    expect(o.metadata!.name!.length).toBeLessThanOrEqual(o.kind === 'StatefulSet' ? 52 : 63);
  }
});

test('limits reach the topology', () => {
  const cr = cluster('examples/large.yaml');
  const { state } = step({ spec: cr.spec, state: undefined, members: [] });
  expect(state.topology.limits).toEqual({ userMessagesPerSecond: 5, userBurst: 20, roomMessagesPerSecond: 200, roomBurst: 400 });
});

test('the status records the state and reads back as it; the ConfigMap is only its topology', () => {
  const cr = cluster('examples/small.yaml');
  const { state } = step({ spec: cr.spec, state: undefined, members: [] });
  const status = JSON.parse(JSON.stringify(stateStatus(state)));
  expect(clusterStateFromStatus(status)).toEqual(state);
  expect(clusterStateFromStatus(undefined)).toBeUndefined();
  expect(() => clusterStateFromStatus({ ...status, acceptedSpec: { image: '' } })).toThrow(/status.acceptedSpec is not a valid spec: image/);
  const configMap = topologyConfigMap(cr, state);
  expect(Object.keys(configMap.data!)).toEqual(['topology.json']);
  expect(JSON.parse(configMap.data!['topology.json']!)).toEqual(state.topology);
});

test('a ConfigMap an older operator wrote (topology and accepted spec) reads back as its state', () => {
  const cr = cluster('examples/small.yaml');
  const { state } = step({ spec: cr.spec, state: undefined, members: [] });
  const legacy = { data: { ...topologyConfigMap(cr, state).data, 'accepted-spec.json': JSON.stringify(state.accepted) } };
  expect(clusterStateFromLegacyConfigMap(legacy)).toEqual(state);
  expect(() => clusterStateFromLegacyConfigMap({ data: { 'topology.json': '{"epoch":-1}' } })).toThrow();
});
