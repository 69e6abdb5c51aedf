// Which member Lease events can change what a reconcile decides. A renewal
// moves only renewTime; what the doubling waits on (ready, epoch, role,
// partition, replica) is in the member annotation. So a Lease queues its
// cluster when it appears, goes, or carries a different member, and a
// renewal, every few seconds per pod, costs nothing.
import type { V1Lease } from '@kubernetes/client-node';
import { MEMBER_ANNOTATION } from '../../workloads/registry/kubernetes-objects.js';

export class MemberLeaseChanges {
  private readonly members = new Map<string, string>();

  /** `present`: the Lease is in the cache after the event (false: deleted). */
  matters(lease: V1Lease, present: boolean): boolean {
    const key = `${lease.metadata?.namespace}/${lease.metadata?.name}`;
    const before = this.members.get(key);
    if (!present) return this.members.delete(key);
    const member = lease.metadata?.annotations?.[MEMBER_ANNOTATION] ?? '';
    this.members.set(key, member);
    return before !== member;
  }
}
