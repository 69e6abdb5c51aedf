// Reports this gateway's room counts to the routers. Changes are batched per
// event-loop turn and each message carries the next gateway sequence (the
// seed's GatewayMsgID). Whenever the set of reachable routers changes, every
// router is sent a full snapshot of the rooms now assigned to it, which is how
// a restarted router rebuilds its state; and periodically anyway.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, type RoomCount } from '../protocol/index.js';
import type { Registry } from '../registry/registry.js';
import type { Member } from '../registry/schema.js';
import { onReturn } from '../registry/departures.js';
import { ReplicaIndex } from '../routing/placement.js';
import type { PeerIdentity } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import type { LocalRooms, Member as RoomMember } from './local-rooms.js';

/** Keeps every MembershipUpdate far below the peer frame limit. */
const ROOMS_PER_MESSAGE = 2000;

const reports = new Counter({ name: 'groupchat_gateway_membership_reports_total', help: 'MembershipUpdate messages sent to routers', registers: [metrics] });

/**
 * Every so often each router gets the full state again: anti-entropy, so a
 * report lost to a race (a router or broker dropping this gateway as it came
 * back from a stall) heals within this period without anyone noticing it.
 */
const FULL_EVERY_MS = 5000;

/** Joins wait at most this long for brokers to confirm their membership. */
const APPLY_TIMEOUT_MS = 3000;

export class MembershipReporter<S extends RoomMember> {
  private readonly routers: PeerPool;
  private readonly index = new ReplicaIndex('router');
  private seq = 0;
  private flushScheduled = false;
  private readonly refresh: NodeJS.Timeout;
  /** room → callers waiting for its next report to be applied */
  private readonly waiting = new Map<number, Array<() => void>>();
  /** gateway seq → callers that its MembershipAck releases, and the router it went to */
  private readonly sent = new Map<number, { routerId: string; release: Array<() => void> }>();

  constructor(
    private readonly gatewayId: string,
    private readonly gatewayAddress: string,
    private readonly rooms: LocalRooms<S>,
    private readonly registry: Registry,
    self: PeerIdentity,
  ) {
    this.routers = new PeerPool(self);
    this.routers.on('up', (_router, link) => {
      link.on('frame', (frame) => {
        if (frame.body === 'membershipAck') this.release(Number(frame.membershipAck.gatewaySeq));
      });
      this.sendFull();
    });
    this.routers.on('down', (router) => {
      // Its acks will not come; the snapshot sent to the others stands in for them.
      for (const [seq, entry] of this.sent) if (entry.routerId === router.id) this.release(seq);
      this.sendFull();
    });
    const sync = () => {
      this.routers.sync(registry.members().filter((m) => m.role === 'router'));
      this.index.rebuild(registry.members());
    };
    registry.on('members', sync);
    sync();
    onReturn(registry, gatewayId, () => this.sendFull());
    this.refresh = setInterval(() => this.sendFull(), FULL_EVERY_MS);
    this.refresh.unref();
  }

  get connected(): boolean {
    return this.routers.members().some((m) => this.routers.isUp(m.id));
  }

  /** Resolves once brokers applied the next report of roomId (or after a bound). */
  applied(roomId: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, APPLY_TIMEOUT_MS);
      let list = this.waiting.get(roomId);
      if (!list) this.waiting.set(roomId, (list = []));
      list.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  /** Call after rooms.dirty changed; the report leaves at the end of this turn. */
  schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  close(): void {
    clearInterval(this.refresh);
    this.routers.close();
  }

  private routerFor(roomId: number): Member | undefined {
    const topology = this.registry.topology().roles.router;
    return this.index.pick(roomId, topology.partitions, topology.replicas, (m) => this.routers.isUp(m.id));
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.rooms.dirty.size === 0) return;
    const byRouter = new Map<string, RoomCount[]>();
    const undelivered = new Set<number>();
    for (const roomId of this.rooms.dirty) {
      const router = this.routerFor(roomId);
      if (!router) { undelivered.add(roomId); continue; }
      let counts = byRouter.get(router.id);
      if (!counts) byRouter.set(router.id, (counts = []));
      counts.push(this.rooms.count(roomId));
    }
    this.rooms.dirty.clear();
    for (const roomId of undelivered) this.rooms.dirty.add(roomId); // sent with the next full snapshot
    for (const [routerId, counts] of byRouter) {
      for (let i = 0; i < counts.length; i += ROOMS_PER_MESSAGE) this.send(routerId, counts.slice(i, i + ROOMS_PER_MESSAGE), false);
    }
  }

  private sendFull(): void {
    const byRouter = new Map<string, RoomCount[]>();
    for (const router of this.routers.members()) if (this.routers.isUp(router.id)) byRouter.set(router.id, []);
    for (const roomId of this.rooms.roomIds()) {
      const router = this.routerFor(roomId);
      if (router) byRouter.get(router.id)?.push(this.rooms.count(roomId));
    }
    for (const [routerId, counts] of byRouter) {
      // The first chunk replaces the router's state; the rest add to it.
      for (let i = 0; i === 0 || i < counts.length; i += ROOMS_PER_MESSAGE) {
        this.send(routerId, counts.slice(i, i + ROOMS_PER_MESSAGE), i === 0);
      }
    }
    // Rooms left since the last report are not in a snapshot; report their zeros.
    this.schedule();
  }

  private send(routerId: string, rooms: RoomCount[], full: boolean): void {
    const link = this.routers.link(routerId);
    if (!link) return;
    reports.inc();
    const seq = ++this.seq;
    const release: Array<() => void> = [];
    for (const room of rooms) {
      const waiters = this.waiting.get(room.roomId);
      if (waiters) { release.push(...waiters); this.waiting.delete(room.roomId); }
    }
    if (release.length) this.sent.set(seq, { routerId, release });
    link.send({ membership: peer.MembershipUpdate.create({ gatewayId: this.gatewayId, gatewayAddress: this.gatewayAddress, gatewaySeq: seq, rooms, full }) });
  }

  private release(seq: number): void {
    const entry = this.sent.get(seq);
    if (!entry) return;
    this.sent.delete(seq);
    for (const done of entry.release) done();
  }
}
