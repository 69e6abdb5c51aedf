// The seed's routing rules: partition = key % partitions, and within a
// partition the preferred replica is key % replicas, failing over to the next
// live replica in ring order, so one replica orders a room while it lives.
import type { Member, Topology } from '../registry/schema.js';

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
  const byReplica: Array<Member | undefined> = [];
  for (const m of live) byReplica[m.replica] = m;
  return pickFrom(byReplica, key, replicas, isUp);
}

function pickFrom(byReplica: ReadonlyArray<Member | undefined>, key: number, replicas: number, isUp: (member: Member) => boolean): Member | undefined {
  const preferred = key % replicas;
  for (let step = 0; step < replicas; step++) {
    const member = byReplica[(preferred + step) % replicas];
    if (member && isUp(member)) return member;
  }
  return undefined;
}

/**
 * The live members of one role by partition and replica, kept current from
 * the registry: what a hot path routes with, instead of filtering and sorting
 * the member list for every message.
 */
export class ReplicaIndex {
  private byPartition = new Map<number, Array<Member | undefined>>();

  constructor(private readonly role: string) {}

  rebuild(members: readonly Member[]): void {
    const next = new Map<number, Array<Member | undefined>>();
    for (const m of members) {
      if (m.role !== this.role || !m.ready) continue;
      let row = next.get(m.partition);
      if (!row) next.set(m.partition, (row = []));
      row[m.replica] = m;
    }
    this.byPartition = next;
  }

  pick(key: number, partitions: number, replicas: number, isUp: (member: Member) => boolean = () => true): Member | undefined {
    const row = this.byPartition.get(key % partitions);
    return row ? pickFrom(row, key, replicas, isUp) : undefined;
  }
}

/** The broker partition counts a topology speaks of: the routed one, and the other side of a doubling. */
function brokerLayouts(topology: Topology): number[] {
  const current = topology.roles.broker.partitions;
  const counts = [current];
  // Expanding: the new partitions take their rooms over at the flip.
  if (topology.phase === 'Expanding' && topology.next) counts.push(topology.next.roles.broker.partitions);
  // Switching: members that have not seen the flip yet still route by the
  // layout before it (half as many, since partitions only double).
  if (topology.phase === 'Switching' && current % 2 === 0) counts.push(current / 2);
  return counts;
}

/**
 * The broker partitions that must hold a room's membership (its
 * RoomGatewayList) under `topology`: the partition that orders the room now,
 * and while a doubling is under way also the partition that orders it on the
 * other side of the epoch flip, so that neither side fans out to a partial list.
 */
export function membershipPartitions(roomId: number, topology: Topology): number[] {
  return [...new Set(brokerLayouts(topology).map((p) => partitionOf(roomId, p)))];
}

/** Whether `topology` gives broker partition `partition` any rooms at all (a new partition: only once Expanding is seen). */
export function brokerPartitionKnown(partition: number, topology: Topology): boolean {
  return brokerLayouts(topology).some((p) => partition < p);
}
