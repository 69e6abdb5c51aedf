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
import { HotCounter } from '../observability/hot-metrics.js';
import { Long, peer, toNumber } from '../protocol/index.js';
import { PUBLISH_ACK_CORRELATION_FIELD, PUBLISH_ACK_FRAME_TAG, PUBLISH_FRAME_TAG, scanFrame, ScannedFields, withCorrelation } from '../protocol/wire-scan.js';
import type { Member } from '../registry/schema.js';
import { partitionOf, ReplicaIndex } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { PartitionLeaders } from './partition-leaders.js';
import { HEADS, HISTORY, PendingRoutes, PUBLISH } from './pending-routes.js';

export const MAX_PAYLOAD_BYTES = 64 * 1024;

const published = new HotCounter({ name: 'groupchat_proxy_publish_total', help: 'Publishes received' }).cell();
const acks = new HotCounter({ name: 'groupchat_proxy_ack_total', help: 'Acks returned to publishers', labelNames: ['status'] });
const ackedWith = Object.values(peer.PublishStatus).filter((v): v is number => typeof v === 'number')
  .map((status) => acks.cell({ status: peer.PublishStatus[status]! }));
const ackedWithOther = acks.cell({ status: 'unknown' });
const leaderChanges = new Counter({ name: 'groupchat_proxy_leader_changes_total', help: 'Partition leaders this proxy learned of', registers: [metrics] });

function countAck(status: number): void {
  (ackedWith[status] ?? ackedWithOther).count++;
}

export async function startProxy(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log } = ctx;
  const server = new PeerServer(ctx.self);
  const brokers = new PeerPool(ctx.self);
  const paused = new Set<PeerLink>();
  const linkUp = (m: Member) => brokers.isUp(m.id);
  const index = new ReplicaIndex('broker');
  const leaders = new PartitionLeaders();
  const leaderOf = (roomId: number, partitions: number): Member | undefined => {
    const partition = partitionOf(roomId, partitions);
    const replica = leaders.replicaOf(partition);
    if (replica === undefined) return undefined;
    return registry.members().find((m) => m.role === 'broker' && m.partition === partition && m.replica === replica && linkUp(m));
  };

  const syncBrokers = () => {
    brokers.sync(registry.members().filter((m) => m.role === 'broker'));
    index.rebuild(registry.members());
  };
  registry.on('members', syncBrokers);
  syncBrokers();

  const pending = new PendingRoutes<PeerLink>({
    target: (roomId) => {
      const topology = registry.topology().roles.broker;
      // Until a partition's leader is known, any live replica will say who it is (NOT_LEADER, then PartitionLeader).
      const member = leaderOf(roomId, topology.partitions) ?? index.pick(roomId, topology.partitions, topology.replicas, linkUp);
      return member && brokers.link(member.id) ? member.id : undefined;
    },
    sendTo: (brokerId, bytes) => brokers.link(brokerId)!.sendEncoded(bytes),
    now: () => Date.now(),
    later: (run, delayMs) => setTimeout(run, delayMs),
    backpressure: (origin) => {
      // Stop reading this publisher until the broker drains.
      if (paused.has(origin)) return;
      paused.add(origin);
      origin.socket.pause();
    },
    answered: countAck,
  });

  const ack = new ScannedFields();
  brokers.on('up', (_member, link) => {
    link.rawFrames = (bytes) => {
      if (!scanFrame(bytes, PUBLISH_ACK_FRAME_TAG, ack)) return false;
      const entry = pending.settle(ack.correlation, ack.status);
      entry?.origin.sendEncoded(withCorrelation(PUBLISH_ACK_FRAME_TAG, ack.message, PUBLISH_ACK_CORRELATION_FIELD, entry.originCorrelation));
      return true;
    };
    link.on('frame', (frame) => {
      if (frame.body === 'publishAck') {
        const entry = pending.settle(frame.publishAck.correlation, frame.publishAck.status);
        entry?.origin.send({ publishAck: { ...frame.publishAck, correlation: entry.originCorrelation } });
      } else if (frame.body === 'historyReply') {
        const entry = pending.settle(frame.historyReply.correlation, frame.historyReply.status);
        entry?.origin.send({ historyReply: { ...frame.historyReply, correlation: entry.originCorrelation } });
      } else if (frame.body === 'headsReply') {
        const entry = pending.settle(frame.headsReply.correlation, frame.headsReply.status);
        entry?.origin.send({ headsReply: { ...frame.headsReply, correlation: entry.originCorrelation } });
      } else if (frame.body === 'partitionLeader') {
        const { partition, replica, term, known } = frame.partitionLeader;
        if (!leaders.learn({ partition, replica, term: toNumber(term), known })) return;
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
    leaders.lost(member.partition, member.replica);
    const count = pending.brokerDown(member.id);
    log.warn({ broker: member.id, rerouted: count }, 'broker link down; publishes re-routed');
  });

  const acceptPublish = (origin: PeerLink, fields: ScannedFields) => {
    published.count++;
    if (fields.roomId === 0 || fields.payloadLength > MAX_PAYLOAD_BYTES) {
      const messageId = Long.fromBits(fields.idLow, fields.idHigh, true);
      origin.send({ publishAck: { messageId, correlation: fields.correlation, status: peer.PublishStatus.REJECTED } });
      return;
    }
    pending.accept(origin, PUBLISH, fields.message, fields);
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
        pending.accept(origin, HISTORY, peer.HistoryRequest.encode(frame.historyRequest).finish(), fields);
        return;
      }
      if (frame.body === 'headsRequest') {
        // The rooms of one request share a partition (the sender groups them); the first routes it.
        fields.correlation = frame.headsRequest.correlation;
        fields.roomId = frame.headsRequest.roomIds[0] ?? 0;
        if (fields.roomId === 0) return void origin.send({ headsReply: { correlation: fields.correlation, status: peer.PublishStatus.REJECTED } });
        pending.accept(origin, HEADS, peer.HeadsRequest.encode(frame.headsRequest).finish(), fields);
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
      pending.originClosed(origin);
    });
  });

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
