// Proxy: the entry point for publishers. Routes each Publish (and each
// HistoryRequest of a rejoining member) to the broker replica that orders its
// room, relays the broker's answer back, and re-routes what a failed broker
// left unanswered to the next live replica (the message id makes a retried
// publish harmless downstream).
import { Counter, Gauge } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, type PeerFrameInit } from '../protocol/index.js';
import type { Member } from '../registry/schema.js';
import { ReplicaIndex } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { DEFAULT_HEALTH, ReplicaHealth } from './replica-health.js';

const ROUTE_RETRY_MS = 50;
/** How long a publish may wait for a live broker before NO_ROUTE. */
const ROUTE_DEADLINE_MS = 5000;
export const MAX_PAYLOAD_BYTES = 64 * 1024;

const published = new Counter({ name: 'groupchat_proxy_publish_total', help: 'Publishes received', registers: [metrics] });
const acked = new Counter({ name: 'groupchat_proxy_ack_total', help: 'Acks returned to publishers', labelNames: ['status'], registers: [metrics] });
const rerouted = new Counter({ name: 'groupchat_proxy_reroute_total', help: 'Publishes re-sent to another broker replica', registers: [metrics] });
const pendingGauge = new Gauge({ name: 'groupchat_proxy_pending', help: 'Publishes awaiting a broker ack', registers: [metrics] });
const openCircuits = new Gauge({ name: 'groupchat_proxy_open_circuits', help: 'Broker replicas this proxy routes around', registers: [metrics] });

interface Pending {
  origin: PeerLink;
  originCorrelation: number;
  roomId: number;
  /** The frame to send a broker, with this proxy's correlation. */
  toBroker: (correlation: number) => PeerFrameInit;
  /** The answer to the origin when no broker could be reached. */
  noRoute: () => PeerFrameInit;
  brokerId: string | null;
  deadline: number;
  sentAt: number;
  /** Already counted as slow against brokerId. */
  slowCounted: boolean;
}

export async function startProxy(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log } = ctx;
  const server = new PeerServer(ctx.self);
  const brokers = new PeerPool(ctx.self);
  const pending = new Map<number, Pending>();
  const paused = new Set<PeerLink>();
  let nextCorrelation = 1;
  const health = new ReplicaHealth();
  const linkUp = (m: Member) => brokers.isUp(m.id);
  const usable = (m: Member) => linkUp(m) && health.allows(m.id);
  const index = new ReplicaIndex('broker');

  const syncBrokers = () => {
    brokers.sync(registry.members().filter((m) => m.role === 'broker'));
    index.rebuild(registry.members());
  };
  registry.on('members', syncBrokers);
  syncBrokers();

  const route = (correlation: number, entry: Pending): void => {
    const topology = registry.topology().roles.broker;
    // Open circuits are avoided, but never at the price of having no replica at all.
    const target: Member | undefined = index.pick(entry.roomId, topology.partitions, topology.replicas, usable)
      ?? index.pick(entry.roomId, topology.partitions, topology.replicas, linkUp);
    const link = target ? brokers.link(target.id) : null;
    if (!target || !link) {
      entry.brokerId = null;
      if (Date.now() > entry.deadline) {
        pending.delete(correlation);
        acked.inc({ status: 'NO_ROUTE' });
        entry.origin.send(entry.noRoute());
        return;
      }
      setTimeout(() => { if (pending.get(correlation) === entry) route(correlation, entry); }, ROUTE_RETRY_MS);
      return;
    }
    entry.brokerId = target.id;
    entry.sentAt = Date.now();
    entry.slowCounted = false;
    const accepted = link.send(entry.toBroker(correlation));
    if (!accepted && !paused.has(entry.origin)) {
      // Back-pressure: stop reading this publisher until the broker drains.
      paused.add(entry.origin);
      entry.origin.socket.pause();
    }
  };

  brokers.on('up', (_member, link) => {
    link.on('frame', (frame) => {
      if (frame.body !== 'publishAck' && frame.body !== 'historyReply') return;
      const answer = frame.body === 'publishAck' ? frame.publishAck : frame.historyReply;
      const entry = pending.get(answer.correlation);
      if (!entry) return;
      if (answer.status === peer.PublishStatus.WRONG_PARTITION) {
        rerouted.inc();
        setTimeout(() => { if (pending.get(answer.correlation) === entry) route(answer.correlation, entry); }, ROUTE_RETRY_MS);
        return;
      }
      pending.delete(answer.correlation);
      pendingGauge.set(pending.size);
      if (entry.brokerId) health.success(entry.brokerId, Date.now() - entry.sentAt);
      acked.inc({ status: peer.PublishStatus[answer.status] ?? String(answer.status) });
      entry.origin.send(frame.body === 'publishAck'
        ? { publishAck: { ...frame.publishAck, correlation: entry.originCorrelation } }
        : { historyReply: { ...frame.historyReply, correlation: entry.originCorrelation } });
    });
    link.on('drain', () => {
      for (const origin of paused) origin.socket.resume();
      paused.clear();
    });
  });
  brokers.on('down', (member) => {
    health.failure(member.id);
    let count = 0;
    for (const [correlation, entry] of pending) {
      if (entry.brokerId !== member.id) continue;
      rerouted.inc();
      count++;
      route(correlation, entry);
    }
    log.warn({ broker: member.id, rerouted: count }, 'broker link down; publishes re-routed');
  });

  server.on('link', (origin) => {
    const accept = (entry: Omit<Pending, 'brokerId' | 'deadline' | 'sentAt' | 'slowCounted'>) => {
      const correlation = nextCorrelation;
      nextCorrelation = nextCorrelation >= 0xffffffff ? 1 : nextCorrelation + 1;
      const full: Pending = { ...entry, brokerId: null, deadline: Date.now() + ROUTE_DEADLINE_MS, sentAt: 0, slowCounted: false };
      pending.set(correlation, full);
      pendingGauge.set(pending.size);
      route(correlation, full);
    };
    origin.on('frame', (frame) => {
      if (frame.body === 'historyRequest') {
        const request = frame.historyRequest;
        accept({
          origin, originCorrelation: request.correlation, roomId: request.roomId,
          toBroker: (correlation) => ({ historyRequest: { ...request, correlation } }),
          noRoute: () => ({ historyReply: { correlation: request.correlation, complete: false, deliveries: [], status: peer.PublishStatus.NO_ROUTE } }),
        });
        return;
      }
      if (frame.body !== 'publish') {
        origin.fail(10, `a proxy accepts only Publish and HistoryRequest frames, got ${frame.body}`);
        return;
      }
      const publish = frame.publish;
      published.inc();
      if (publish.roomId === 0 || publish.payload.length > MAX_PAYLOAD_BYTES) {
        origin.send({ publishAck: { messageId: publish.messageId, correlation: publish.correlation, status: peer.PublishStatus.REJECTED } });
        return;
      }
      accept({
        origin, originCorrelation: publish.correlation, roomId: publish.roomId,
        toBroker: (correlation) => ({ publish: { ...publish, correlation } }),
        noRoute: () => ({ publishAck: { messageId: publish.messageId, correlation: publish.correlation, status: peer.PublishStatus.NO_ROUTE } }),
      });
    });
    origin.on('close', () => {
      paused.delete(origin);
      for (const [correlation, entry] of pending) if (entry.origin === origin) pending.delete(correlation);
      pendingGauge.set(pending.size);
    });
  });

  // Publishes a replica sits on count against it; once its circuit opens, its
  // rooms (and what it holds of theirs) move to the next replica.
  const sweep = setInterval(() => {
    const now = Date.now();
    const opened = new Set<string>();
    for (const entry of pending.values()) {
      if (!entry.brokerId || entry.slowCounted || now - entry.sentAt < DEFAULT_HEALTH.slowMs) continue;
      entry.slowCounted = true;
      health.failure(entry.brokerId);
      if (!health.allows(entry.brokerId)) opened.add(entry.brokerId);
    }
    for (const brokerId of opened) {
      log.warn({ broker: brokerId }, 'broker replica slow: circuit open, its rooms move to the next replica');
      for (const [correlation, entry] of pending) if (entry.brokerId === brokerId) route(correlation, entry);
    }
    openCircuits.set(health.snapshot().filter((r) => r.state !== 'closed').length);
  }, 250);
  sweep.unref();

  const address = await server.listen(ctx.config.port, ctx.config.host);
  log.info({ address }, 'proxy listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => registry.members().some((m) => m.role === 'broker' && brokers.isUp(m.id)),
    stop: async () => {
      clearInterval(sweep);
      brokers.close();
      await server.close();
    },
  };
}
