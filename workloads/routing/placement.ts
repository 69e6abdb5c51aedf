// The seed's routing rules: partition = key % partitions, and within a
// partition the preferred replica is key % replicas, failing over to the next
// live replica in ring order, so one replica orders a room while it lives.
import type { Member } from '../registry/schema.js';

export function partitionOf(key: number, partitions: number): number {
  return key % partitions;
}

/** Live members of one partition of a role, indexed by replica. */
export function replicasOf(members: readonly Member[], role: string, partition: number): Member[] {
  return members
    .filter((m) => m.role === role && m.partition === partition && m.ready)
    .sort((a, b) => a.replica - b.replica);
}

/**
 * The member that should handle key: the preferred replica if live, else the
 * next live one. `isUp` lets a caller skip replicas whose link is down before
 * the registry notices.
 */
export function pickReplica(
  key: number,
  replicas: number,
  live: readonly Member[],
  isUp: (member: Member) => boolean = () => true,
): Member | undefined {
  const byReplica = new Map(live.map((m) => [m.replica, m]));
  const preferred = key % replicas;
  for (let step = 0; step < replicas; step++) {
    const member = byReplica.get((preferred + step) % replicas);
    if (member && isUp(member)) return member;
  }
  return undefined;
}
