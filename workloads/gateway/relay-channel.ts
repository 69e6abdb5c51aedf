// The gateway's side of one-to-one messaging: tells the relays which users
// are online here (batched, sequenced, and in full whenever a relay link comes
// up), sends users' Direct messages and inbox acks to the relay that owns the
// recipient, and hands the inbox items relays push to the gateway.
import { EventEmitter } from 'node:events';
import { peer, type Long, type PeerFrame } from '../protocol/index.js';
import type { Registry } from '../registry/registry.js';
import type { Member } from '../registry/schema.js';
import { onReturn } from '../registry/departures.js';
import { ReplicaIndex } from '../routing/placement.js';
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';

export type InboxPush = Extract<PeerFrame, { body: 'inboxPush' }>['inboxPush'];
type RelayReply = Extract<PeerFrame, { body: 'directAck' }>['directAck'];
type Request = { correlation: number; userId: number; frame: Parameters<PeerLink['send']>[0]; relayId: string | null; deadline: number; resolve: (reply: RelayReply) => void };

export class RelayError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const RETRY_MS = 100;
const DEADLINE_MS = 15_000;

export class RelayChannel extends EventEmitter<{ inbox: [InboxPush] }> {
  private readonly relays: PeerPool;
  private readonly index = new ReplicaIndex('relay');
  private readonly online = new Map<number, number>(); // user → sessions here
  private readonly changed = new Map<number, boolean>(); // user → online?
  private readonly requests = new Map<number, Request>();
  private seq = 0;
  private nextCorrelation = 1;
  private flushScheduled = false;

  constructor(private readonly gatewayId: string, private readonly registry: Registry, self: PeerIdentity) {
    super();
    this.relays = new PeerPool(self);
    this.relays.on('up', (member, link) => {
      link.on('frame', (frame) => this.onFrame(frame));
      this.sendFull(member, link);
    });
    this.relays.on('down', (member) => {
      for (const request of this.requests.values()) if (request.relayId === member.id) this.dispatch(request);
    });
    const sync = () => {
      this.relays.sync(registry.members().filter((m) => m.role === 'relay'));
      this.index.rebuild(registry.members());
    };
    registry.on('members', sync);
    sync();
    onReturn(registry, gatewayId, () => {
      for (const relay of this.relays.members()) {
        const link = this.relays.link(relay.id);
        if (link) this.sendFull(relay, link);
      }
    });
  }

  get connected(): boolean {
    return this.relays.members().some((m) => this.relays.isUp(m.id));
  }

  /** A session of userId logged in here (each login re-syncs the inbox from the cursor). */
  login(userId: number): void {
    this.online.set(userId, (this.online.get(userId) ?? 0) + 1);
    this.changed.set(userId, true);
    this.schedule();
  }

  logout(userId: number): void {
    const sessions = (this.online.get(userId) ?? 1) - 1;
    if (sessions > 0) { this.online.set(userId, sessions); return; }
    this.online.delete(userId);
    this.changed.set(userId, false);
    this.schedule();
  }

  /** Stores a one-to-one message; resolves with its inbox position. */
  async direct(fromUser: number, toUser: number, clientMessageId: Long, payload: Uint8Array): Promise<number> {
    const reply = await this.request(toUser, (correlation) => ({
      directSend: { correlation, fromUser, toUser, clientMessageId, payload, sentAtMs: Date.now() },
    }));
    return Number(reply.position);
  }

  /** Moves userId's cursor; resolves with the cursor now stored. */
  async ackInbox(userId: number, position: number): Promise<number> {
    const reply = await this.request(userId, (correlation) => ({ inboxAck: { correlation, userId, position } }));
    return Number(reply.position);
  }

  close(): void {
    this.relays.close();
  }

  private relayFor(userId: number): Member | undefined {
    const { partitions, replicas } = this.registry.topology().roles.relay ?? { partitions: 1, replicas: 1 };
    return this.index.pick(userId, partitions, replicas, (m) => this.relays.isUp(m.id));
  }

  private request(userId: number, build: (correlation: number) => Parameters<PeerLink['send']>[0]): Promise<RelayReply> {
    const correlation = this.nextCorrelation;
    this.nextCorrelation = this.nextCorrelation >= 0xffffffff ? 1 : this.nextCorrelation + 1;
    return new Promise<RelayReply>((resolve) => {
      const request: Request = { correlation, userId, frame: build(correlation), relayId: null, deadline: Date.now() + DEADLINE_MS, resolve };
      this.requests.set(correlation, request);
      this.dispatch(request);
    }).then((reply) => {
      if (reply.status !== peer.StoreStatus.STORED) throw new RelayError(reply.status, reply.message);
      return reply;
    });
  }

  /** Sends (or re-sends: the relay's writes are idempotent) to the owning relay. */
  private dispatch(request: Request): void {
    if (!this.requests.has(request.correlation)) return;
    const relay = this.relayFor(request.userId);
    const link = relay ? this.relays.link(relay.id) : null;
    if (!relay || !link) {
      request.relayId = null;
      if (Date.now() > request.deadline) {
        this.requests.delete(request.correlation);
        request.resolve({ correlation: request.correlation, status: peer.StoreStatus.NOT_LEADER, message: 'no relay reachable', position: 0 } as unknown as RelayReply);
        return;
      }
      setTimeout(() => this.dispatch(request), RETRY_MS).unref();
      return;
    }
    request.relayId = relay.id;
    link.send(request.frame);
  }

  private onFrame(frame: PeerFrame): void {
    if (frame.body === 'inboxPush') {
      this.emit('inbox', frame.inboxPush);
      return;
    }
    if (frame.body !== 'directAck') return;
    const request = this.requests.get(frame.directAck.correlation);
    if (!request) return;
    const retryable = frame.directAck.status === peer.StoreStatus.NOT_LEADER || frame.directAck.status === peer.StoreStatus.NOT_REPLICATED;
    if (retryable && Date.now() < request.deadline) {
      setTimeout(() => this.dispatch(request), RETRY_MS).unref();
      return;
    }
    this.requests.delete(request.correlation);
    request.resolve(frame.directAck);
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Presence changes go to every live replica of each user's relay partition. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.changed.size === 0) return;
    const partitions = this.registry.topology().roles.relay?.partitions ?? 1;
    const byPartition = new Map<number, { online: number[]; offline: number[] }>();
    for (const [userId, isOnline] of this.changed) {
      const p = userId % partitions;
      let lists = byPartition.get(p);
      if (!lists) byPartition.set(p, (lists = { online: [], offline: [] }));
      (isOnline ? lists.online : lists.offline).push(userId);
    }
    this.changed.clear();
    for (const relay of this.relays.members()) {
      const lists = byPartition.get(relay.partition);
      if (lists) this.relays.link(relay.id)?.send({ presence: { gatewayId: this.gatewayId, gatewaySeq: ++this.seq, ...lists, full: false } });
    }
  }

  private sendFull(relay: Member, link: PeerLink): void {
    const partitions = this.registry.topology().roles.relay?.partitions ?? 1;
    const online = [...this.online.keys()].filter((u) => u % partitions === relay.partition);
    link.send({ presence: { gatewayId: this.gatewayId, gatewaySeq: ++this.seq, online, offline: [], full: true } });
  }
}
