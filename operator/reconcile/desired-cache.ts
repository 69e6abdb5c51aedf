// The desired objects of a cluster depend only on its identity (namespace,
// name, uid) and its state (the accepted spec and the topology). At 512
// broker partitions they are about 1,000 objects, 2 MB as JSON, and a
// cluster whose pods are starting reconciles on every workload status
// change: building and serialising them each time made a reconcile cost
// about 250 ms. So they are built once for each new state and reused, the
// same objects, so AppliedObjects serialises each of them once too.
import type { GroupChatCluster } from '../api/v1alpha1.js';
import { desiredObjects, type DesiredObject } from '../builders/desired.js';
import type { ClusterState } from '../builders/topology.js';

export class DesiredObjectsCache {
  private readonly built = new Map<string, { inputs: string; objects: readonly DesiredObject[] }>();

  /** The cluster's desired objects for `state`: the ones built last time when nothing they depend on changed. */
  of(cr: GroupChatCluster, state: ClusterState): readonly DesiredObject[] {
    const { namespace, name, uid } = cr.metadata;
    const key = `${namespace}/${name}`;
    const inputs = JSON.stringify({ uid, state });
    const cached = this.built.get(key);
    if (cached?.inputs === inputs) return cached.objects;
    const objects = desiredObjects(cr, state);
    this.built.set(key, { inputs, objects });
    return objects;
  }

  /** Drops a deleted cluster's objects. */
  forget(namespace: string, name: string): void {
    this.built.delete(`${namespace}/${name}`);
  }
}
