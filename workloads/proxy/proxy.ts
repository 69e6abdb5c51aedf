// Proxy: the entry point for publishers. Routes each Publish (and each
// history or heads request) to the leader of its room's broker partition,
// which the partition's replicas elect among themselves and announce on
// every link (PartitionLeader); relays the broker's answer back; and re-routes
// what a failed or deposed leader left unanswered to the partition's next
// leader (the message id makes a retried publish harmless downstream). A Publish and its PublishAck pass through as
// the bytes that arrived, with the correlation of the next hop appended
// (protocol/wire-scan.ts): the proxy decodes neither.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { HotCounter, sampledGauge } from '../observability/hot-metrics.js';
import { Long, peer, toNumber, type PeerFrameInit } from '../protocol/index.js';
import {
  HISTORY_REQUEST_CORRELATION_FIELD, HISTORY_REQUEST_FRAME_TAG, PUBLISH_ACK_CORRELATION_FIELD, PUBLISH_ACK_FRAME_TAG,
  PUBLISH_CORRELATION_FIELD, PUBLISH_FRAME_TAG, scanFrame, ScannedFields, withCorrelation,
} from '../protocol/wire-scan.js';
import type { Member } from '../registry/schema.js';
import { partitionOf, ReplicaIndex } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';

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
const leaderChanges = new Counter({ name: 'groupchat_proxy_leader_changes_total', help: 'Partition leaders this proxy learned of', registers: [metrics] });

function countAck(status: number): void {
  (ackedWith[status] ?? ackedWithOther).count++;
}

/** How each kind of request travels: its PeerFrame tag and where its correlation is. */
const PUBLISH = { frameTag: PUBLISH_FRAME_TAG, correlationField: PUBLISH_CORRELATION_FIELD } as const;
const HISTORY = { frameTag: HISTORY_REQUEST_FRAME_TAG, correlationField: HISTORY_REQUEST_CORRELATION_FIELD } as const;
const HEADS = { frameTag: (28 << 3) | 2, correlationField: 1 } as const;

/** Answers that mean "ask again, maybe elsewhere": the partition's leader moved or is being elected. */
const RETRY_STATUSES = new Set<number>([peer.PublishStatus.WRONG_PARTITION, peer.PublishStatus.NOT_LEADER, peer.PublishStatus.UNAVAILABLE]);

interface Pending {
  origin: PeerLink;
  originCorrelation: number;
  roomId: number;
  kind: typeof PUBLISH | typeof HISTORY | typeof HEADS;
  /** The request's message bytes, as the origin sent them; the correlation is appended per hop. */
  request: Uint8Array;
  /** A publish's message id, for a NO_ROUTE answer. */
  idLow: number;
  idHigh: number;
  brokerId: string | null;
  deadline: number;
}

export async function startProxy(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log } = ctx;
  const server = new PeerServer(ctx.self);
  const brokers = new PeerPool(ctx.self);
  const pending = new Map<number, Pending>();
  pendingGauge.source = () => pending.size;
  const paused = new Set<PeerLink>();
  let nextCorrelation = 1;
  const linkUp = (m: Member) => brokers.isUp(m.id);
  const index = new ReplicaIndex('broker');
  /** Each partition's leader as its replicas announced it; the newest term wins. */
  const leaders = new Map<number, { replica: number; term: number }>();
  const leaderOf = (roomId: number, partitions: number): Member | undefined => {
    const partition = partitionOf(roomId, partitions);
    const leader = leaders.get(partition);
    if (!leader) return undefined;
    return registry.members().find((m) => m.role === 'broker' && m.partition === partition && m.replica === leader.replica && linkUp(m));
  };

  const syncBrokers = () => {
    brokers.sync(registry.members().filter((m) => m.role === 'broker'));
    index.rebuild(registry.members());
  };
  registry.on('members', syncBrokers);
  syncBrokers();

  const route = (correlation: number, entry: Pending): void => {
    const topology = registry.topology().roles.broker;
    // Until a partition's leader is known, any live replica will say who it is (NOT_LEADER, then PartitionLeader).
    const target: Member | undefined = leaderOf(entry.roomId, topology.partitions)
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
    if (RETRY_STATUSES.has(status) && Date.now() < entry.deadline) {
      rerouted.inc();
      setTimeout(() => { if (pending.get(correlation) === entry) route(correlation, entry); }, ROUTE_RETRY_MS);
      return null;
    }
    pending.delete(correlation);
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
      } else if (frame.body === 'headsReply') {
        const entry = settle(frame.headsReply.correlation, frame.headsReply.status);
        entry?.origin.send({ headsReply: { ...frame.headsReply, correlation: entry.originCorrelation } });
      } else if (frame.body === 'partitionLeader') {
        const { partition, replica, term, known } = frame.partitionLeader;
        const current = leaders.get(partition);
        if (!known || (current && current.term > toNumber(term))) return;
        if (current?.replica === replica && current.term === toNumber(term)) return;
        leaders.set(partition, { replica, term: toNumber(term) });
        leaderChanges.inc();
        log.info({ partition, replica, term: toNumber(term) }, 'broker partition leader');
      }
    });
    link.on('drain', () => {
      for (const origin of paused) origin.socket.resume();
      paused.clear();
    });
  });
  brokers.on('down', (member) => {
    const leader = leaders.get(member.partition);
    if (leader?.replica === member.replica) leaders.delete(member.partition);
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
      brokerId: null, deadline: Date.now() + ROUTE_DEADLINE_MS,
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
      if (frame.body === 'headsRequest') {
        // The rooms of one request share a partition (the sender groups them); the first routes it.
        fields.correlation = frame.headsRequest.correlation;
        fields.roomId = frame.headsRequest.roomIds[0] ?? 0;
        if (fields.roomId === 0) return void origin.send({ headsReply: { correlation: fields.correlation, status: peer.PublishStatus.REJECTED } });
        accept(origin, HEADS, peer.HeadsRequest.encode(frame.headsRequest).finish(), fields);
        return;
      }
      if (frame.body !== 'publish') {
        origin.fail(10, `a proxy accepts only Publish, HistoryRequest and HeadsRequest frames, got ${frame.body}`);
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
    const status = peer.PublishStatus.NO_ROUTE;
    if (entry.kind === PUBLISH) return { publishAck: { messageId: Long.fromBits(entry.idLow, entry.idHigh, true), correlation: entry.originCorrelation, status } };
    if (entry.kind === HEADS) return { headsReply: { correlation: entry.originCorrelation, status } };
    return { historyReply: { correlation: entry.originCorrelation, complete: false, deliveries: [], status } };
  }

  const address = await server.listen(ctx.config.port, ctx.config.host);
  log.info({ address }, 'proxy listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => registry.members().some((m) => m.role === 'broker' && brokers.isUp(m.id)),
    stop: async () => {
      brokers.close();
      await server.close();
    },
  };
}
