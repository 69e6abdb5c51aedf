// Talks to the leader of a pi or xiu partition. It learns who leads from the
// replicas themselves (a reply from the leader, or a NOT_LEADER naming the
// replica the answering one takes for the leader), not from the registry, so
// a failover is followed while the registry is unreachable; knowing none, it
// asks the partition's live replicas in turn. It retries through a leader
// change (NOT_LEADER, a lost link) until the deadline: safe because every
// write the roles expose is idempotent.
import { peer, type PeerFrame, type PeerFrameInit } from '../protocol/index.js';
import type { Registry } from '../registry/registry.js';
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';

type StoreOp = Omit<NonNullable<PeerFrameInit['storeRequest']>, 'correlation'>;
export type StoreReply = Extract<PeerFrame, { body: 'storeReply' }>['storeReply'];

export class StoreError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const RETRY_MS = 100;

export class StoreClient {
  private readonly pool: PeerPool;
  private readonly pending = new Map<number, { resolve: (reply: StoreReply) => void; memberId: string }>();
  /** partition → the replica last heard to lead it. */
  private readonly leaders = new Map<number, number>();
  private nextCorrelation = 1;

  constructor(private readonly role: 'pi' | 'xiu', private readonly registry: Registry, self: PeerIdentity, private readonly deadlineMs = 15_000) {
    this.pool = new PeerPool(self);
    this.pool.on('up', (_m, link) => link.on('frame', (frame) => {
      if (frame.body !== 'storeReply') return;
      const waiter = this.pending.get(frame.storeReply.correlation);
      if (!waiter) return;
      this.pending.delete(frame.storeReply.correlation);
      waiter.resolve(frame.storeReply);
    }));
    this.pool.on('down', (member) => {
      for (const [correlation, waiter] of this.pending) {
        if (waiter.memberId !== member.id) continue;
        this.pending.delete(correlation);
        waiter.resolve({ correlation, status: peer.StoreStatus.NOT_LEADER, message: 'link lost' } as StoreReply);
      }
    });
    const sync = () => this.pool.sync(registry.members().filter((m) => m.role === role));
    registry.on('members', sync);
    sync();
  }

  partitions(): number {
    return this.registry.topology().roles[this.role]?.partitions ?? 1;
  }

  /** Sends op to the partition's leader; resolves with a final (non-retryable) reply. */
  async call(partition: number, op: StoreOp): Promise<StoreReply> {
    const deadline = Date.now() + this.deadlineMs;
    let lastProblem = 'no replica reachable';
    let turn = 0;
    for (;;) {
      const target = this.target(partition, turn);
      if (target) {
        const reply = await this.send(target.id, target.link, op);
        if (reply.status === peer.StoreStatus.STORED) {
          this.leaders.set(partition, target.replica);
          return reply;
        }
        if (reply.status !== peer.StoreStatus.NOT_LEADER && reply.status !== peer.StoreStatus.NOT_REPLICATED) {
          throw new StoreError(reply.status, reply.message);
        }
        lastProblem = reply.message;
        const named = reply.leaderKnown && reply.leaderReplica !== target.replica ? reply.leaderReplica : null;
        if (named !== null && this.leaders.get(partition) !== named) {
          this.leaders.set(partition, named);
          continue; // a leader we had not tried yet: ask it at once
        }
        this.leaders.delete(partition);
        turn++;
      }
      if (Date.now() > deadline) {
        throw new StoreError(peer.StoreStatus.NOT_LEADER, `${this.role} partition ${partition} unavailable: ${lastProblem}`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  /** The replica last heard to lead the partition if it is linked, else the live replicas in turn. */
  private target(partition: number, turn: number): { id: string; replica: number; link: PeerLink } | null {
    const live = this.pool.members()
      .filter((m) => m.partition === partition)
      .map((m) => ({ id: m.id, replica: m.replica, link: this.pool.link(m.id) }))
      .filter((m): m is { id: string; replica: number; link: PeerLink } => m.link !== null)
      .sort((a, b) => a.replica - b.replica);
    if (live.length === 0) return null;
    return live.find((m) => m.replica === this.leaders.get(partition)) ?? live[turn % live.length]!;
  }

  close(): void {
    this.pool.close();
  }

  private send(memberId: string, link: PeerLink, op: StoreOp): Promise<StoreReply> {
    const correlation = this.nextCorrelation;
    this.nextCorrelation = this.nextCorrelation >= 0xffffffff ? 1 : this.nextCorrelation + 1;
    return new Promise((resolve) => {
      this.pending.set(correlation, { resolve, memberId });
      link.send({ storeRequest: { ...op, correlation } });
    });
  }
}
