// What keeps a reconcile of a large cluster cheap (issue 13, item 7): member
// changes queue nothing while the cluster is Stable, the desired objects are
// built once per state, and each is serialised once.
import type { KubernetesObject } from '@kubernetes/client-node';
import { ClusterSpecSchema, type GroupChatCluster } from '../../../operator/api/v1alpha1.js';
import { AppliedObjects } from '../../../operator/reconcile/applied.js';
import { DesiredObjectsCache } from '../../../operator/reconcile/desired-cache.js';
import { waitsOnMembers } from '../../../operator/reconcile/triggers.js';
import { step } from '../../../operator/scaling/doubling.js';

const cluster = (uid: string, brokerReplicas: number): GroupChatCluster => ({
  apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster',
  metadata: { name: 'chat', namespace: 'ns', uid, generation: 1 },
  spec: ClusterSpecSchema.parse({
    image: 'groupchat:0.1.0', proxy: { replicas: 1 }, gateway: { replicas: 1 },
    broker: { partitions: 4, replicas: brokerReplicas }, router: { partitions: 1, replicas: 1 },
  }),
});
const stateOf = (cr: GroupChatCluster) => step({ spec: cr.spec, state: undefined, members: [] }).state;

test('members matter to a cluster only while it is not recorded Stable', () => {
  const withPhase = (phase?: string): KubernetesObject => ({ metadata: { name: 'chat' }, ...(phase ? { status: { phase } } : {}) } as KubernetesObject);
  expect(waitsOnMembers(withPhase('Stable'))).toBe(false);
  expect(waitsOnMembers(withPhase('Expanding'))).toBe(true);
  expect(waitsOnMembers(withPhase('Switching'))).toBe(true);
  // Not seen yet, or no status yet: look.
  expect(waitsOnMembers(withPhase())).toBe(true);
  expect(waitsOnMembers(undefined)).toBe(true);
});

test('the desired objects are built once per state and cluster, and again when either changes', () => {
  const cache = new DesiredObjectsCache();
  const cr = cluster('uid-1', 3);
  const first = cache.of(cr, stateOf(cr));
  expect(cache.of(cr, stateOf(cr))).toBe(first);
  const more = cluster('uid-1', 5);
  const changed = cache.of(more, stateOf(more));
  expect(changed).not.toBe(first);
  expect(changed.find((o) => o.metadata!.name === 'chat-broker-0')).toMatchObject({ spec: { replicas: 5 } });
  // The same name re-created is another cluster: its objects have another owner.
  const recreated = cluster('uid-2', 5);
  expect(cache.of(recreated, stateOf(recreated))[0]!.metadata!.ownerReferences![0]).toMatchObject({ uid: 'uid-2' });
  cache.forget('ns', 'chat');
  expect(cache.of(recreated, stateOf(recreated))).not.toBe(changed);
});

test('a desired object is serialised once however often it is compared', () => {
  let serialisations = 0;
  const desired = {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'ns' },
    toJSON() { serialisations++; return { apiVersion: this.apiVersion, kind: this.kind, metadata: this.metadata }; },
  };
  const applied = new AppliedObjects();
  applied.record(desired, { metadata: { uid: 'u', resourceVersion: '1' } });
  for (let i = 0; i < 3; i++) expect(applied.upToDate(desired, { metadata: { uid: 'u', resourceVersion: '1' } })).toBe(true);
  expect(serialisations).toBe(1);
});
