// Which watch events can change what a reconcile decides. A member Lease
// renewal moves only renewTime; what the doubling waits on (ready, epoch,
// role, partition, replica) is in the member annotation. A pod's status moves
// often; what the status reports of it is only its problem, if any
// (pod-problems.ts). So an object queues its cluster when it appears, goes,
// or changes in what matters, and a renewal or a probe costs nothing.
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
