// Proxy: the entry point for publishers. Routes each Publish (and each
// HistoryRequest of a rejoining member) to the broker replica that orders its
// room, relays the broker's answer back, and re-routes what a failed broker
// left unanswered to the next live replica (the message id makes a retried
// publish harmless downstream). A Publish and its PublishAck pass through as
// the bytes that arrived, with the correlation of the next hop appended
// (protocol/wire-scan.ts): the proxy decodes neither.
import { Counter, Gauge } from 'prom-client';
import { metrics } from '../observability/http.js';
import { HotCounter, sampledGauge } from '../observability/hot-metrics.js';
import { Long, peer, type PeerFrameInit } from '../protocol/index.js';
import {
  HISTORY_REQUEST_CORRELATION_FIELD, HISTORY_REQUEST_FRAME_TAG, PUBLISH_ACK_CORRELATION_FIELD, PUBLISH_ACK_FRAME_TAG,
  PUBLISH_CORRELATION_FIELD, PUBLISH_FRAME_TAG, scanFrame, ScannedFields, withCorrelation,
} from '../protocol/wire-scan.js';
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

const published = new HotCounter({ name: 'groupchat_proxy_publish_total', help: 'Publishes received' }).cell();
const acks = new HotCounter({ name: 'groupchat_proxy_ack_total', help: 'Acks returned to publishers', labelNames: ['status'] });
const ackedWith = Object.values(peer.PublishStatus).filter((v): v is number => typeof v === 'number')
  .map((status) => acks.cell({ status: peer.PublishStatus[status]! }));
const ackedWithOther = acks.cell({ status: 'unknown' });
const rerouted = new Counter({ name: 'groupchat_proxy_reroute_total', help: 'Publishes re-sent to another broker replica', registers: [metrics] });
const pendingGauge = sampledGauge({ name: 'groupchat_proxy_pending', help: 'Publishes awaiting a broker ack' });
const openCircuits = new Gauge({ name: 'groupchat_proxy_open_circuits', help: 'Broker replicas this proxy routes around', registers: [metrics] });

function countAck(status: number): void {
  (ackedWith[status] ?? ackedWithOther).count++;
}

/** How each kind of request travels: its PeerFrame tag and where its correlation is. */
const PUBLISH = { frameTag: PUBLISH_FRAME_TAG, correlationField: PUBLISH_CORRELATION_FIELD } as const;
const HISTORY = { frameTag: HISTORY_REQUEST_FRAME_TAG, correlationField: HISTORY_REQUEST_CORRELATION_FIELD } as const;

interface Pending {
  origin: PeerLink;
  originCorrelation: number;
  roomId: number;
  kind: typeof PUBLISH | typeof HISTORY;
  /** The request's message bytes, as the origin sent them; the correlation is appended per hop. */
  request: Uint8Array;
  /** A publish's message id, for a NO_ROUTE answer. */
  idLow: number;
  idHigh: number;
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
  pendingGauge.source = () => pending.size;
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
        countAck(peer.PublishStatus.NO_ROUTE);
        entry.origin.send(noRoute(entry));
        return;
      }
      setTimeout(() => { if (pending.get(correlation) === entry) route(correlation, entry); }, ROUTE_RETRY_MS);
      return;
    }
    entry.brokerId = target.id;
    entry.sentAt = Date.now();
    entry.slowCounted = false;
    const accepted = link.sendEncoded(withCorrelation(entry.kind.frameTag, entry.request, entry.kind.correlationField, correlation));
    if (!accepted && !paused.has(entry.origin)) {
      // Back-pressure: stop reading this publisher until the broker drains.
      paused.add(entry.origin);
      entry.origin.socket.pause();
    }
  };

  /** The broker's answer for correlation: the entry to answer, or null when it was re-routed (or is unknown). */
  const settle = (correlation: number, status: number): Pending | null => {
    const entry = pending.get(correlation);
    if (!entry) return null;
    if (status === peer.PublishStatus.WRONG_PARTITION) {
      rerouted.inc();
      setTimeout(() => { if (pending.get(correlation) === entry) route(correlation, entry); }, ROUTE_RETRY_MS);
      return null;
    }
    pending.delete(correlation);
    if (entry.brokerId) health.success(entry.brokerId, Date.now() - entry.sentAt);
    countAck(status);
    return entry;
  };

  const ack = new ScannedFields();
  brokers.on('up', (_member, link) => {
    link.rawFrames = (bytes) => {
      if (!scanFrame(bytes, PUBLISH_ACK_FRAME_TAG, ack)) return false;
      const entry = settle(ack.correlation, ack.status);
      entry?.origin.sendEncoded(withCorrelation(PUBLISH_ACK_FRAME_TAG, ack.message, PUBLISH_ACK_CORRELATION_FIELD, entry.originCorrelation));
      return true;
    };
    link.on('frame', (frame) => {
      if (frame.body === 'publishAck') {
        const entry = settle(frame.publishAck.correlation, frame.publishAck.status);
        entry?.origin.send({ publishAck: { ...frame.publishAck, correlation: entry.originCorrelation } });
      } else if (frame.body === 'historyReply') {
        const entry = settle(frame.historyReply.correlation, frame.historyReply.status);
        entry?.origin.send({ historyReply: { ...frame.historyReply, correlation: entry.originCorrelation } });
      }
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

  const accept = (origin: PeerLink, kind: Pending['kind'], request: Uint8Array, fields: ScannedFields) => {
    const correlation = nextCorrelation;
    nextCorrelation = nextCorrelation >= 0xffffffff ? 1 : nextCorrelation + 1;
    const entry: Pending = {
      origin, originCorrelation: fields.correlation, roomId: fields.roomId, kind, request, idLow: fields.idLow, idHigh: fields.idHigh,
      brokerId: null, deadline: Date.now() + ROUTE_DEADLINE_MS, sentAt: 0, slowCounted: false,
    };
    pending.set(correlation, entry);
    route(correlation, entry);
  };
  const acceptPublish = (origin: PeerLink, fields: ScannedFields) => {
    published.count++;
    if (fields.roomId === 0 || fields.payloadLength > MAX_PAYLOAD_BYTES) {
      const messageId = Long.fromBits(fields.idLow, fields.idHigh, true);
      origin.send({ publishAck: { messageId, correlation: fields.correlation, status: peer.PublishStatus.REJECTED } });
      return;
    }
    accept(origin, PUBLISH, fields.message, fields);
  };

  const publish = new ScannedFields();
  server.on('link', (origin) => {
    origin.rawFrames = (bytes) => {
      if (!scanFrame(bytes, PUBLISH_FRAME_TAG, publish)) return false;
      acceptPublish(origin, publish);
      return true;
    };
    origin.on('frame', (frame) => {
      // What the scanner left to the decoder: the same requests, re-encoded plainly.
      const fields = new ScannedFields();
      if (frame.body === 'historyRequest') {
        fields.correlation = frame.historyRequest.correlation;
        fields.roomId = frame.historyRequest.roomId;
        accept(origin, HISTORY, peer.HistoryRequest.encode(frame.historyRequest).finish(), fields);
        return;
      }
      if (frame.body !== 'publish') {
        origin.fail(10, `a proxy accepts only Publish and HistoryRequest frames, got ${frame.body}`);
        return;
      }
      if (!scanFrame(peer.PeerFrame.encode({ publish: frame.publish }).finish(), PUBLISH_FRAME_TAG, fields)) {
        origin.fail(2, 'a Publish the proxy cannot re-encode'); // unreachable for a decoded message; never forward what is not plain
        return;
      }
      acceptPublish(origin, fields);
    });
    origin.on('close', () => {
      paused.delete(origin);
      for (const [correlation, entry] of pending) if (entry.origin === origin) pending.delete(correlation);
    });
  });

  function noRoute(entry: Pending): PeerFrameInit {
    return entry.kind === PUBLISH
      ? { publishAck: { messageId: Long.fromBits(entry.idLow, entry.idHigh, true), correlation: entry.originCorrelation, status: peer.PublishStatus.NO_ROUTE } }
      : { historyReply: { correlation: entry.originCorrelation, complete: false, deliveries: [], status: peer.PublishStatus.NO_ROUTE } };
  }

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
