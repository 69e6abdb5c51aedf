// Talks to the leader of a pi or xiu partition: finds it by the leader flag
// in the registry, and retries through a leader change (NOT_LEADER, a lost
// link, no leader yet) until the deadline. Safe because every write the
// roles expose is idempotent.
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
    let lastProblem = 'no leader known';
    for (;;) {
      const leader = this.registry.members().find((m) => m.role === this.role && m.partition === partition && m.leader && m.ready);
      const link: PeerLink | null = leader ? this.pool.link(leader.id) : null;
      if (leader && link) {
        const reply = await this.send(leader.id, link, op);
        if (reply.status === peer.StoreStatus.STORED) return reply;
        if (reply.status !== peer.StoreStatus.NOT_LEADER && reply.status !== peer.StoreStatus.NOT_REPLICATED) {
          throw new StoreError(reply.status, reply.message);
        }
        lastProblem = reply.message;
      }
      if (Date.now() > deadline) {
        throw new StoreError(peer.StoreStatus.NOT_LEADER, `${this.role} partition ${partition} unavailable: ${lastProblem}`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
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
