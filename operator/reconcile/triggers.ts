// Which watch events can change what a reconcile decides. A member Lease
// renewal moves only renewTime; what the doubling waits on (ready, epoch,
// role, partition, replica) is in the member annotation. A pod's status moves
// often; what the status reports of it is only its problem, if any
// (pod-problems.ts). So an object queues its cluster when it appears, goes,
// or changes in what matters, and a renewal or a probe costs nothing. And
// members matter only while a doubling waits on them: a Stable cluster's
// objects and status do not depend on them, so the pods of a large cluster
// starting or rolling (a member change each) queue no reconciles.
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { MEMBER_ANNOTATION } from '../../workloads/registry/kubernetes-objects.js';
import { podProblem } from '../status/pod-problems.js';

export class RelevantChanges {
  private readonly seen = new Map<string, string>();

  constructor(private readonly relevant: (object: KubernetesObject) => string) {}

  /** `present`: the object is in the cache after the event (false: deleted). */
  matters(object: KubernetesObject, present: boolean): boolean {
    const key = `${object.metadata?.namespace}/${object.metadata?.name}`;
    const before = this.seen.get(key);
    if (!present) return this.seen.delete(key);
    const value = this.relevant(object);
    this.seen.set(key, value);
    return before !== value;
  }
}

export const memberLeaseChanges = () => new RelevantChanges((lease) => lease.metadata?.annotations?.[MEMBER_ANNOTATION] ?? '');
export const podProblemChanges = () => new RelevantChanges((pod) => podProblem(pod as V1Pod) ?? '');

/**
 * Whether a cluster (as cached; undefined when not seen yet) waits on its
 * members: anything but a recorded Stable phase. A doubling started since
 * the cache was filled is looked at again every few seconds by its own
 * reconciles, so no member change is missed.
 */
export function waitsOnMembers(cluster: KubernetesObject | undefined): boolean {
  return (cluster as { status?: { phase?: string } } | undefined)?.status?.phase !== 'Stable';
}
