// Broker: one replica of a partition of rooms (RoomID % P). The partition's
// replicas keep one replicated room log (workloads/replication): its leader,
// elected by the replicas themselves, numbers every message of every room of
// the partition and appends it; a message is fanned out to the gateways with
// members once a majority has it on disk, and acknowledged once they all have
// it. Every replica holds the same RoomGatewayList (from the routers) and the
// same history, so any of them can take over; split rooms' virtual rooms are
// fanned out by all of them. This file wires the units together: the log
// (replicated-log.ts), its state machine (room-log.ts), the leader's
// numbering (sequencer.ts) and the fan-out (fanout.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, toNumber, type MembershipUpdate, type PeerFrame, type Publish } from '../protocol/index.js';
import type { Member, Topology } from '../registry/schema.js';
import { onDeparture } from '../registry/departures.js';
import { brokerPartitionKnown, membershipPartitions, partitionOf } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { isPeerAddress } from '../transport/peer-client.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { GatewayChannel } from './gateway-channel.js';
import { limitFrom, TokenBuckets } from '../limits/token-bucket.js';
import { encodePublishAck } from '../protocol/wire-scan.js';
import { KvStore } from '../store/kv-store.js';
import { ReplicatedLog, type FsyncPolicy } from '../replication/replicated-log.js';
import { fromWire, toWire } from '../replication/wire.js';
import { DEFAULT_RETENTION, DURABLE_SEQUENCER_ID, MAX_HISTORY_PAGE, RoomLog, type Retention } from './room-log.js';
import { Doubling } from './doubling.js';
import { RoomTable } from './room-table.js';
import { Fanout } from './fanout.js';
import { Sequencer } from './sequencer.js';

/** Deliveries a broker holds for one gateway at most (unless the topology sets it). */
const DEFAULT_GATEWAY_QUEUE = 10_000;
const MAX_HEADS_PER_REQUEST = 1000;
const COMPACTION_INTERVAL_MS = 5000;

const staleUpdates = new Counter({ name: 'groupchat_broker_stale_membership_total', help: 'Membership entries older than the table', registers: [metrics] });
const roomsGauge = new Gauge({ name: 'groupchat_broker_rooms', help: 'Rooms with members in this partition', registers: [metrics] });
const queueGauge = new Gauge({ name: 'groupchat_broker_gateway_queue', help: 'Deliveries held for gateways, now', registers: [metrics] });
const refusedRaft = new Counter({ name: 'groupchat_broker_raft_refused_total', help: 'Replication messages refused (from outside the partition, or malformed)', registers: [metrics] });

/** A broker replica's stable name in its partition's log: it outlives restarts, unlike the member id. */
export function voterId(partition: number, replica: number): string {
  return `broker-${partition}-${replica}`;
}

export function retentionOf(topology: Topology): Retention {
  const h = topology.history ?? {};
  return {
    messagesPerRoom: h.messagesPerRoom ?? DEFAULT_RETENTION.messagesPerRoom,
    maxAgeSeconds: h.maxAgeSeconds ?? DEFAULT_RETENTION.maxAgeSeconds,
    bytesPerPartition: h.bytesPerPartition ?? DEFAULT_RETENTION.bytesPerPartition,
  };
}

export function fsyncOf(topology: Topology): FsyncPolicy {
  return topology.history?.fsync === 'batch' ? { mode: 'batch', intervalMs: topology.history.fsyncIntervalMs ?? 10 } : { mode: 'always' };
}

export async function startBroker(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const partition = config.partition;
  const self = voterId(partition, config.replica);
  const table = new RoomTable(registry.topology().splitThreshold);
  const roomLimitOf = () => limitFrom(registry.topology().limits?.roomMessagesPerSecond, registry.topology().limits?.roomBurst);
  const roomLimits = new TokenBuckets<number>(roomLimitOf());
  const channels = new Map<string, GatewayChannel>();
  const peers = new PeerPool(ctx.self);
  const server = new PeerServer(ctx.self);
  /** Routers whose snapshot arrived whole; the table is complete once every router's has. */
  const snapshotsFrom = new Set<string>();
  let tableComplete = false;

  const dataDir = config.dataDir ?? join('data', self);
  mkdirSync(dataDir, { recursive: true });
  const kv = await KvStore.open(dataDir);
  const rooms = new RoomLog(kv, retentionOf(registry.topology()));
  await rooms.load();

  const replicaOf = (m: Member) => (m.role === 'broker' && m.partition === partition ? m.replica : -1);
  // The voters of the partition's log: its replicas in the layout being moved to when a doubling is
  // under way (a new partition's pods start then), else in the current one. A change of the replica
  // count reaches a replica's log when it restarts (there is no joint consensus yet; docs/decisions.md).
  const topologyAtStart = registry.topology();
  const replicas = Math.max(topologyAtStart.roles.broker.replicas, topologyAtStart.next?.roles.broker.replicas ?? 0, config.replica + 1);
  const roomLog = await ReplicatedLog.open({
    name: 'rooms', self, voters: Array.from({ length: replicas }, (_, r) => voterId(partition, r)), kv, dataDir,
    stateMachine: rooms, log, fsync: fsyncOf(registry.topology()),
    send: (message) => {
      const replica = Number(message.to.slice(message.to.lastIndexOf('-') + 1));
      const member = peers.members().find((m) => replicaOf(m) === replica);
      const link = member ? peers.link(member.id) : null;
      link?.send({ raft: toWire(message, partition) }); // a lost message is the core's to repeat
    },
  });
  rooms.account(range(roomLog.raft.firstIndex, roomLog.appliedIndex).map((i) => roomLog.raft.entryAt(i)!).filter(Boolean));

  const channelFor = (gatewayId: string, address: string): GatewayChannel => {
    let channel = channels.get(gatewayId);
    if (!channel) {
      channel = new GatewayChannel(gatewayId, address, ctx.self, registry.topology().limits?.gatewayQueueMessages ?? DEFAULT_GATEWAY_QUEUE);
      channels.set(gatewayId, channel);
    }
    return channel;
  };
  const fanout = new Fanout({
    table, channelFor,
    shareOwners: () => {
      const owners = peers.members().filter((m) => m.ready && peers.isUp(m.id)).map((m) => ({ id: m.id, replica: m.replica, link: peers.link(m.id) }));
      owners.push({ id: ctx.memberId, replica: config.replica, link: null });
      return owners.sort((a, b) => a.replica - b.replica);
    },
  });
  /** The leader may number and serve: it leads, holds its lease, and owns every room a doubling gave it. */
  const serving = () => roomLog.ready && rooms.pendingInheritance() === null;
  const sequencer = new Sequencer({
    rooms, roomLimits, fanout: (delivery, done, encoded) => fanout.deliver(delivery, done, encoded),
    log: {
      get ready() { return serving(); },
      get isLeader() { return roomLog.raft.role === 'leader'; },
      get term() { return roomLog.raft.term; },
      get appliedIndex() { return roomLog.appliedIndex; },
      get lastIndex() { return roomLog.raft.lastIndex; },
      propose: (data) => roomLog.propose(data),
      entryAt: (index) => roomLog.raft.entryAt(index),
    },
  });
  roomLog.on('applied', (entries) => sequencer.onApplied(entries));
  const doubling = new Doubling({
    partition, self: ctx.self, log, registry, rooms, sequencer,
    leader: () => roomLog.ready,
  });
  roomLog.on('applied', () => doubling.onApplied());

  // Who leads, told to every peer that dialed us (proxies route publishes by it).
  const accepted = new Set<PeerLink>();
  let announced = '';
  const leaderNotice = () => {
    const leader = roomLog.leaderId;
    return { partition, replica: leader ? Number(leader.slice(leader.lastIndexOf('-') + 1)) : 0, term: roomLog.raft.term, known: leader !== null };
  };
  const announceLeader = () => {
    const notice = leaderNotice();
    const key = `${notice.known}:${notice.replica}:${notice.term}`;
    if (key === announced) return;
    announced = key;
    for (const link of accepted) link.send({ partitionLeader: notice });
  };
  roomLog.on('leadership', () => { sequencer.checkReady(); announceLeader(); });
  const watch = setInterval(() => { sequencer.checkReady(); announceLeader(); doubling.tick(); }, 50);
  watch.unref();

  const compaction = setInterval(() => {
    const { index, writes } = rooms.compactionPoint(Date.now(), (i) => roomLog.raft.entryAt(i));
    if (index === 0) return;
    kv.write(writes).then(() => roomLog.compact(index)).catch((err: Error) => log.error({ err: err.message }, 'room log compaction failed'));
  }, COMPACTION_INTERVAL_MS);
  compaction.unref();

  const dropGateway = (gatewayId: string) => {
    table.removeGateway(gatewayId);
    channels.get(gatewayId)?.close();
    channels.delete(gatewayId);
    roomsGauge.set(table.size);
  };

  const onPublish = (link: PeerLink, publish: Publish) => {
    const ack = (status: number) => link.sendEncoded(encodePublishAck(publish.messageId.low, publish.messageId.high, publish.correlation, status));
    if (partitionOf(publish.roomId, registry.topology().roles.broker.partitions) !== partition) return ack(peer.PublishStatus.WRONG_PARTITION);
    sequencer.publish(publish, ack);
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

  const onHistory = async (link: PeerLink, request: Extract<PeerFrame, { body: 'historyRequest' }>['historyRequest']) => {
    const answer = (fields: Record<string, unknown>) => link.send({ historyReply: { correlation: request.correlation, ...fields } });
    // A successor partition reads what a room had here before a doubling moved it.
    const predecessor = request.predecessorRead && rooms.movedAway(request.roomId);
    if (!predecessor && partitionOf(request.roomId, registry.topology().roles.broker.partitions) !== partition) return answer({ status: peer.PublishStatus.WRONG_PARTITION });
    if (!(predecessor ? roomLog.ready : serving())) return answer({ status: roomLog.raft.role === 'leader' ? peer.PublishStatus.UNAVAILABLE : peer.PublishStatus.NOT_LEADER });
    const { head, base } = rooms.position(request.roomId);
    const after = toNumber(request.afterSeq);
    const before = toNumber(request.beforeSeq);
    // A position from before durable rooms (another sequencer_id) cannot be mapped: start over, incomplete.
    const foreign = request.sequencerId !== 0 && request.sequencerId !== DURABLE_SEQUENCER_ID;
    // A resume position beyond the head was never given out: the client is confused, say so. (before_seq beyond it just means the newest.)
    if (after > head || request.limit > MAX_HISTORY_PAGE) return answer({ status: peer.PublishStatus.REJECTED, headSeq: head });
    const from = foreign ? Math.max(0, head - MAX_HISTORY_PAGE) : after;
    const page = base > 0
      ? await doubling.pageAcross(request.roomId, base, from, before, request.limit, (a, b, l) => rooms.page(request.roomId, a, b, l, (i) => roomLog.entry(i)))
      : await rooms.page(request.roomId, from, before, request.limit, (i) => roomLog.entry(i));
    answer({
      status: peer.PublishStatus.DELIVERED, complete: page.complete && !foreign, deliveries: page.deliveries,
      headSeq: page.head, firstSeq: page.first,
    });
  };

  const onHeads = (link: PeerLink, request: Extract<PeerFrame, { body: 'headsRequest' }>['headsRequest']) => {
    const answer = (fields: Record<string, unknown>) => link.send({ headsReply: { correlation: request.correlation, ...fields } });
    const partitions = registry.topology().roles.broker.partitions;
    if (request.roomIds.length > MAX_HEADS_PER_REQUEST || request.roomIds.some((r) => r === 0)) return answer({ status: peer.PublishStatus.REJECTED });
    if (request.roomIds.some((r) => partitionOf(r, partitions) !== partition)) return answer({ status: peer.PublishStatus.WRONG_PARTITION });
    if (!serving()) return answer({ status: roomLog.raft.role === 'leader' ? peer.PublishStatus.UNAVAILABLE : peer.PublishStatus.NOT_LEADER });
    const heads = request.roomIds.map((roomId) => {
      const { head, floor } = rooms.position(roomId);
      return { roomId, headSeq: head, firstSeq: floor };
    });
    answer({ status: peer.PublishStatus.DELIVERED, heads });
  };

  const onRaft = (link: PeerLink, frame: Extract<PeerFrame, { body: 'raft' }>['raft']) => {
    const sender = registry.members().find((m) => m.id === link.remote?.memberId);
    const message = fromWire(frame);
    // Terms and log entries are trusted only from this partition's replicas, each speaking for itself.
    if (typeof message === 'string' || frame.partition !== partition || !sender || replicaOf(sender) < 0 || message.from !== voterId(partition, sender.replica) || message.to !== self) {
      refusedRaft.inc();
      return link.fail(13, typeof message === 'string' ? message : `${link.remote?.memberId ?? 'an unknown peer'} may not send replication messages for broker partition ${partition} as ${message.from}`);
    }
    roomLog.receive(message);
  };

  server.on('link', (link) => {
    accepted.add(link);
    link.on('close', () => accepted.delete(link));
    if (announced) link.send({ partitionLeader: leaderNotice() });
    link.on('frame', (frame) => {
      switch (frame.body) {
        case 'publish': return onPublish(link, frame.publish);
        case 'raft': return onRaft(link, frame.raft);
        case 'membership':
          if (!onMembership(frame.membership)) return link.fail(12, 'MembershipUpdate needs a gateway id and a dialable host:port gateway address');
          link.send({ membershipAck: { gatewayId: frame.membership.gatewayId, gatewaySeq: frame.membership.gatewaySeq } });
          return;
        case 'historyRequest': return void onHistory(link, frame.historyRequest).catch((err: Error) => {
          log.error({ err: err.message, room: frame.historyRequest.roomId }, 'history read failed');
          link.send({ historyReply: { correlation: frame.historyRequest.correlation, status: peer.PublishStatus.UNAVAILABLE } });
        });
        case 'headsRequest': return onHeads(link, frame.headsRequest);
        case 'handoffRequest': return doubling.onHandoffRequest(link, frame.handoffRequest);
        case 'snapshot':
          for (const update of frame.snapshot.gateways) onMembership(update); // an invalid entry is skipped
          if (frame.snapshot.last) snapshotsFrom.add(link.remote!.memberId);
          return;
        case 'shareForward': {
          const { forwardId, delivery } = frame.shareForward;
          if (!delivery) return link.fail(11, 'ShareForward without a delivery');
          fanout.onShareForward(link, toNumber(forwardId), delivery);
          return;
        }
        default:
          link.fail(10, `a broker does not accept ${frame.body} frames`);
      }
    });
  });

  peers.on('up', (_member, link) => {
    link.on('frame', (frame) => {
      if (frame.body === 'shareAck') fanout.onShareAck(toNumber(frame.shareAck.forwardId));
    });
  });
  peers.on('down', (member) => fanout.onReplicaDown(member.id));

  onDeparture(registry, 'gateway', (id) => {
    log.info({ gateway: id }, 'gateway left the registry; dropping its rooms');
    dropGateway(id);
  });
  const onMembers = (members: Member[]) => {
    peers.sync(members.filter((m) => replicaOf(m) >= 0 && m.id !== ctx.memberId && m.replica !== config.replica));
  };
  registry.on('members', onMembers);
  registry.on('topology', (topology) => {
    table.setSplitThreshold(topology.splitThreshold);
    roomLimits.setLimit(roomLimitOf());
    rooms.setRetention(retentionOf(topology));
  });
  onMembers(registry.members());

  const gauges = setInterval(() => {
    queueGauge.set([...channels.values()].reduce((n, c) => n + c.pending, 0));
  }, 500);
  gauges.unref();

  const address = await server.listen(config.port, config.host);
  log.info({ address, partition, replica: config.replica, voter: self, replicas }, 'broker listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    // Ready once every live router has given us its part of the table (then it stays ready),
    // and, in a partition a doubling adds, once it has recorded whom it inherits its rooms from.
    isReady: () => (tableComplete ||= registry.members().every((m) => m.role !== 'router' || !m.ready || snapshotsFrom.has(m.id)))
      && doubling.readyForFlip(),
    advertise: () => ({ leader: serving() }),
    stop: async () => {
      clearInterval(gauges);
      clearInterval(watch);
      clearInterval(compaction);
      doubling.close();
      peers.close();
      for (const channel of channels.values()) channel.close();
      await server.close();
      await roomLog.close();
      await kv.close();
    },
  };
}

function range(from: number, to: number): number[] {
  return to < from ? [] : Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
