// Broker: owns the rooms of one partition (RoomID % P). The replica that
// orders a room (RoomID % R, or the next live one) stamps each message with
// the room's sequence and fans it out to the gateways with members; a split
// room's virtual rooms are shared among the live replicas of the partition,
// which all hold the same RoomGatewayList. A publish is acked only when every
// gateway it went to has acknowledged it.
import { randomInt } from 'node:crypto';
import { Counter, Gauge, Histogram } from 'prom-client';
import { RecentIds } from '../collections/recent-ids.js';
import { metrics } from '../observability/http.js';
import { HotCounter } from '../observability/hot-metrics.js';
import {
  ALL_VROOMS, Long, maskWith, peer, toNumber,
  type MembershipUpdate, type Publish, type RoomDelivery,
} from '../protocol/index.js';
import type { Member } from '../registry/schema.js';
import { onDeparture } from '../registry/departures.js';
import { brokerPartitionKnown, membershipPartitions, partitionOf } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { isPeerAddress } from '../transport/peer-client.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { GatewayChannel, Obligation } from './gateway-channel.js';
import { limitFrom, TokenBuckets } from '../limits/token-bucket.js';
import { RoomHistory } from './room-history.js';
import { encodePublishAck, framed, ROOM_DELIVERY_FRAME_TAG } from '../protocol/wire-scan.js';
import { RoomTable } from './room-table.js';

const DEDUP_ENTRIES = 200_000;
/** Messages kept per room for members that rejoin, and for how long. */
const HISTORY_PER_ROOM = 1000;
const HISTORY_MAX_AGE_MS = 10 * 60_000;
/** Deliveries a broker holds for one gateway at most (unless the topology sets it). */
const DEFAULT_GATEWAY_QUEUE = 10_000;

const publishes = new HotCounter({ name: 'groupchat_broker_publish_total', help: 'Publishes received', labelNames: ['result'] });
const publishedBy = {
  accepted: publishes.cell({ result: 'accepted' }), duplicate: publishes.cell({ result: 'duplicate' }),
  rateLimited: publishes.cell({ result: 'rate_limited' }), wrongPartition: publishes.cell({ result: 'wrong_partition' }),
};
const deliveries = new HotCounter({ name: 'groupchat_broker_delivery_total', help: 'RoomDelivery frames sent to gateways' }).cell();
const fanoutSize = new Histogram({ name: 'groupchat_broker_fanout_gateways', help: 'Gateways per fan-out', buckets: [0, 1, 2, 4, 8, 16, 32, 64], registers: [metrics] });
const staleUpdates = new Counter({ name: 'groupchat_broker_stale_membership_total', help: 'Membership entries older than the table', registers: [metrics] });
const splitFanouts = new Counter({ name: 'groupchat_broker_split_fanout_total', help: 'Messages to split rooms, by how their virtual rooms were served', labelNames: ['share'], registers: [metrics] });
const roomsGauge = new Gauge({ name: 'groupchat_broker_rooms', help: 'Rooms with members in this partition', registers: [metrics] });
const refusedDeliveries = new Counter({ name: 'groupchat_broker_delivery_refused_total', help: 'Deliveries refused because a gateway queue was full (its users resume from the room sequence)', registers: [metrics] });
const queueGauge = new Gauge({ name: 'groupchat_broker_gateway_queue', help: 'Deliveries held for gateways, now', registers: [metrics] });
const queueHighWater = new Gauge({ name: 'groupchat_broker_gateway_queue_high_water', help: 'The most deliveries ever held for one gateway', registers: [metrics] });

interface DedupState { done: boolean; waiters: ReadonlyArray<() => void> }
const NO_WAITERS: ReadonlyArray<() => void> = Object.freeze([]);
interface Forward { ownerId: string; delivery: RoomDelivery; obligation: Obligation }

export async function startBroker(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const partition = config.partition;
  const table = new RoomTable(registry.topology().splitThreshold);
  const sequencerId = randomInt(1, 0xffffffff);
  const roomSeq = new Map<number, number>();
  const history = new RoomHistory(sequencerId, HISTORY_PER_ROOM, HISTORY_MAX_AGE_MS);
  const roomLimitOf = () => limitFrom(registry.topology().limits?.roomMessagesPerSecond, registry.topology().limits?.roomBurst);
  const roomLimits = new TokenBuckets<number>(roomLimitOf());
  // Ids are chosen by publishers: one can only ever collide with its own, so (sender, id) is the key.
  const dedup = new RecentIds<DedupState>(DEDUP_ENTRIES);
  const channels = new Map<string, GatewayChannel>();
  const peers = new PeerPool(ctx.self);
  const forwards = new Map<number, Forward>();
  let nextForwardId = 1;
  /** Routers whose snapshot arrived whole; the table is complete once every router's has. */
  const snapshotsFrom = new Set<string>();
  let tableComplete = false;
  const server = new PeerServer(ctx.self);

  const channelFor = (gatewayId: string, address: string): GatewayChannel => {
    let channel = channels.get(gatewayId);
    if (!channel) {
      channel = new GatewayChannel(gatewayId, address, ctx.self, registry.topology().limits?.gatewayQueueMessages ?? DEFAULT_GATEWAY_QUEUE);
      channels.set(gatewayId, channel);
    }
    return channel;
  };

  const dropGateway = (gatewayId: string) => {
    table.removeGateway(gatewayId);
    channels.get(gatewayId)?.close();
    channels.delete(gatewayId);
    roomsGauge.set(table.size);
  };

  /** Delivers to this replica's gateways for the virtual rooms in share (null: the whole room). */
  /** encoded: the delivery's RoomDelivery bytes when the caller has them (an unsplit room's message, already encoded for history). */
  const fanoutLocal = (delivery: RoomDelivery, share: Long | null, done: () => void, encoded?: Uint8Array): void => {
    const targets = table.targets(delivery.roomId, share);
    fanoutSize.observe(targets.length);
    const obligation = new Obligation(targets.length, done);
    // Encode once per distinct mask: every gateway of an unsplit room shares one frame.
    const whole = share || targets.length === 0 ? null
      : encoded ? framed(ROOM_DELIVERY_FRAME_TAG, encoded) : peer.PeerFrame.encode({ roomDelivery: { ...delivery, vroomMask: ALL_VROOMS } }).finish();
    const bySplitMask = share ? new Map<string, Uint8Array>() : null;
    for (const target of targets) {
      let body = whole;
      if (!body) {
        const key = `${target.mask.high}:${target.mask.low}`;
        body = bySplitMask!.get(key) ?? null;
        if (!body) bySplitMask!.set(key, (body = peer.PeerFrame.encode({ roomDelivery: { ...delivery, vroomMask: target.mask } }).finish()));
      }
      if (!channelFor(target.gatewayId, target.address).deliver(body, obligation, delivery.priority === peer.Priority.CRITICAL)) {
        refusedDeliveries.inc();
        obligation.complete();
      }
      deliveries.count++;
    }
  };

  /** Live replicas of this partition that can take a share, this one included, by replica. */
  const shareOwners = (): Array<{ id: string; replica: number }> => {
    const owners = peers.members()
      .filter((m) => m.ready && peers.isUp(m.id))
      .map((m) => ({ id: m.id, replica: m.replica }));
    owners.push({ id: ctx.memberId, replica: config.replica });
    return owners.sort((a, b) => a.replica - b.replica);
  };

  const fanoutSplit = (delivery: RoomDelivery, done: () => void): void => {
    const owners = shareOwners();
    const shares = new Map<string, Long>();
    for (let v = 0; v < 64; v++) {
      const owner = owners[v % owners.length]!;
      shares.set(owner.id, maskWith(shares.get(owner.id) ?? Long.UZERO, v));
    }
    const obligation = new Obligation(shares.size, done);
    for (const [ownerId, share] of shares) {
      const link = ownerId === ctx.memberId ? null : peers.link(ownerId);
      splitFanouts.inc({ share: link ? 'forwarded' : 'local' });
      if (!link) {
        fanoutLocal(delivery, share, () => obligation.complete());
        continue;
      }
      const forwardId = nextForwardId++;
      const forwarded = { ...delivery, vroomMask: share };
      forwards.set(forwardId, { ownerId, delivery: forwarded, obligation });
      link.send({ shareForward: { forwardId, delivery: forwarded } });
    }
  };

  const onPublish = (link: PeerLink, publish: Publish) => {
    const topology = registry.topology().roles.broker;
    const ack = (status: number) => link.sendEncoded(encodePublishAck(publish.messageId.low, publish.messageId.high, publish.correlation, status));
    if (partitionOf(publish.roomId, topology.partitions) !== partition) {
      publishedBy.wrongPartition.count++;
      ack(peer.PublishStatus.WRONG_PARTITION);
      return;
    }
    const { senderId, messageId } = publish;
    const seen = dedup.get(senderId, messageId.high, messageId.low);
    const delivered = () => ack(peer.PublishStatus.DELIVERED);
    if (seen) {
      // A retry or a redundant copy: never fan out twice, ack when the first is done.
      publishedBy.duplicate.count++;
      if (seen.done) delivered();
      else (seen.waiters as Array<() => void>).push(delivered);
      return;
    }
    if (!roomLimits.take(publish.roomId)) {
      publishedBy.rateLimited.count++;
      ack(peer.PublishStatus.RATE_LIMITED);
      return;
    }
    publishedBy.accepted.count++;
    const state: DedupState = { done: false, waiters: [delivered] };
    dedup.set(senderId, messageId.high, messageId.low, state);
    const seq = (roomSeq.get(publish.roomId) ?? 0) + 1;
    roomSeq.set(publish.roomId, seq);
    const delivery: RoomDelivery = {
      messageId, roomId: publish.roomId, senderId,
      roomSeq: Long.fromNumber(seq, true), sequencerId, payload: publish.payload, sentAtMs: publish.sentAtMs, vroomMask: ALL_VROOMS,
      priority: publish.priority,
    };
    const encoded = peer.RoomDelivery.encode(delivery).finish();
    history.record(publish.roomId, seq, encoded);
    const finish = () => {
      state.done = true;
      for (const waiter of state.waiters) waiter();
      state.waiters = NO_WAITERS; // the id stays known for a while; its closures need not
    };
    if (table.room(publish.roomId)?.split) fanoutSplit(delivery, finish);
    else fanoutLocal(delivery, null, finish, encoded);
  };

  /** False (and nothing applied) if the update names no gateway, or one at an address no one can dial. */
  const onMembership = (update: MembershipUpdate): boolean => {
    if (!update.gatewayId || !isPeerAddress(update.gatewayAddress)) return false;
    // A doubling's new partition keeps the rooms it orders after the flip; one
    // whose topology does not show it yet takes what the router computed for it.
    const topology = registry.topology();
    const known = brokerPartitionKnown(partition, topology);
    const seq = toNumber(update.gatewaySeq);
    for (const room of update.rooms) {
      if (known && !membershipPartitions(room.roomId, topology).includes(partition)) continue;
      if (!table.apply(update.gatewayId, update.gatewayAddress, seq, room)) staleUpdates.inc();
    }
    roomsGauge.set(table.size);
    return true;
  };

  server.on('link', (link) => {
    link.on('frame', (frame) => {
      switch (frame.body) {
        case 'publish': return onPublish(link, frame.publish!);
        case 'membership':
          if (!onMembership(frame.membership)) return link.fail(12, 'MembershipUpdate needs a gateway id and a dialable host:port gateway address');
          link.send({ membershipAck: { gatewayId: frame.membership.gatewayId, gatewaySeq: frame.membership.gatewaySeq } });
          return;
        case 'historyRequest': {
          const request = frame.historyRequest;
          const { partitions } = registry.topology().roles.broker;
          if (partitionOf(request.roomId, partitions) !== partition) {
            return void link.send({ historyReply: { correlation: request.correlation, status: peer.PublishStatus.WRONG_PARTITION } });
          }
          const answer = history.since(request.roomId, request.sequencerId, toNumber(request.afterSeq));
          return void link.send({ historyReply: { correlation: request.correlation, status: peer.PublishStatus.DELIVERED, ...answer } });
        }
        case 'snapshot':
          for (const update of frame.snapshot!.gateways) onMembership(update); // an invalid entry is skipped
          if (frame.snapshot!.last) snapshotsFrom.add(link.remote!.memberId);
          return;
        case 'shareForward': {
          const { forwardId, delivery } = frame.shareForward!;
          if (!delivery) return link.fail(11, 'ShareForward without a delivery');
          const share = Long.fromBits(delivery.vroomMask.low, delivery.vroomMask.high, true);
          fanoutLocal(delivery, share, () => link.send({ shareAck: { forwardId } }));
          return;
        }
        default:
          link.fail(10, `a broker does not accept ${frame.body} frames`);
      }
    });
  });

  peers.on('up', (_member, link) => {
    link.on('frame', (frame) => {
      if (frame.body !== 'shareAck') return;
      const forwardId = toNumber(frame.shareAck!.forwardId);
      const forward = forwards.get(forwardId);
      if (!forward) return;
      forwards.delete(forwardId);
      forward.obligation.complete();
    });
  });
  peers.on('down', (member) => {
    // The replica holding a share died: deliver its virtual rooms from here.
    for (const [forwardId, forward] of forwards) {
      if (forward.ownerId !== member.id) continue;
      forwards.delete(forwardId);
      const share = Long.fromBits(forward.delivery.vroomMask.low, forward.delivery.vroomMask.high, true);
      fanoutLocal(forward.delivery, share, () => forward.obligation.complete());
    }
  });

  onDeparture(registry, 'gateway', (id) => {
    log.info({ gateway: id }, 'gateway left the registry; dropping its rooms');
    dropGateway(id);
  });
  const onMembers = (members: Member[]) => {
    peers.sync(members.filter((m) => m.role === 'broker' && m.partition === partition && m.id !== ctx.memberId));
  };
  registry.on('members', onMembers);
  registry.on('topology', (topology) => {
    table.setSplitThreshold(topology.splitThreshold);
    roomLimits.setLimit(roomLimitOf());
  });
  onMembers(registry.members());

  const gauges = setInterval(() => {
    queueGauge.set([...channels.values()].reduce((n, c) => n + c.pending, 0));
    queueHighWater.set(Math.max(0, ...[...channels.values()].map((c) => c.highWater)));
  }, 500);
  gauges.unref();

  const address = await server.listen(config.port, config.host);
  log.info({ address, partition, replica: config.replica, sequencerId }, 'broker listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    // Ready once every live router has given us its part of the table (then it stays ready).
    isReady: () => (tableComplete ||= registry.members().every((m) => m.role !== 'router' || !m.ready || snapshotsFrom.has(m.id))),
    stop: async () => {
      clearInterval(gauges);
      peers.close();
      for (const channel of channels.values()) channel.close();
      await server.close();
    },
  };
}
