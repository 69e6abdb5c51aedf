// Each broker partition's leader as its replicas announce it (PartitionLeader
// frames on every link): the newest term wins, an older announcement is stale.
export interface LeaderAnnouncement { partition: number; replica: number; term: number; known: boolean }

export class PartitionLeaders {
  private readonly leaders = new Map<number, { replica: number; term: number }>();

  /** True when the announcement names a new leader (or a new term). */
  learn({ partition, replica, term, known }: LeaderAnnouncement): boolean {
    const current = this.leaders.get(partition);
    if (!known || (current && current.term > term)) return false;
    if (current?.replica === replica && current.term === term) return false;
    this.leaders.set(partition, { replica, term });
    return true;
  }

  /** The replica leading the partition, as last announced. */
  replicaOf(partition: number): number | undefined {
    return this.leaders.get(partition)?.replica;
  }

  /** A replica's link went down: if it led its partition, the leader is unknown until the next announcement. */
  lost(partition: number, replica: number): void {
    if (this.leaders.get(partition)?.replica === replica) this.leaders.delete(partition);
  }
}
