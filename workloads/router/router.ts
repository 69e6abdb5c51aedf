// Router: takes gateways' membership messages, discards stale ones, and
// forwards each room's counts to every replica of the broker partition that
// owns the room, so all replicas hold the same RoomGatewayList. A broker that
// (re)connects is sent a snapshot of its partition before anything else.
// During a partition doubling a room's counts go to both the partition that
// orders it now and the one that orders it after the epoch flip, and a new
// partition's snapshot waits until this router knows the layout that has it,
// so the new brokers hold complete lists before the operator flips the epoch.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { Long, peer, type MembershipUpdate, type RoomCount } from '../protocol/index.js';
import { onDeparture } from '../registry/departures.js';
import { brokerPartitionKnown, membershipPartitions } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { isPeerAddress } from '../transport/peer-client.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { MembershipStore } from './membership-store.js';

/** Rooms per snapshot frame, to stay well under the frame limit. */
const SNAPSHOT_CHUNK = 500;

const updatesIn = new Counter({ name: 'groupchat_router_membership_total', help: 'Membership messages from gateways', labelNames: ['result'], registers: [metrics] });
const snapshotsSent = new Counter({ name: 'groupchat_router_snapshots_total', help: 'Snapshots sent to brokers', registers: [metrics] });

export async function startRouter(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const store = new MembershipStore();
  const brokers = new PeerPool(ctx.self);
  const server = new PeerServer(ctx.self);

  // A broker that went away acks nothing more: what it owed is covered by its next snapshot.
  brokers.on('down', (member) => { for (const key of [...awaiting.keys()]) settle(key, member.id); });
  const syncBrokers = () => brokers.sync(registry.members().filter((m) => m.role === 'broker'));
  registry.on('members', syncBrokers);
  syncBrokers();
  onDeparture(registry, 'gateway', (id) => { if (store.removeGateway(id)) log.info({ gateway: id }, 'gateway gone'); });

  /** `${gateway}/${seq}` → the gateway link to ack, once no broker ack is outstanding. */
  const awaiting = new Map<string, { link: PeerLink; brokers: Set<string> }>();
  const settle = (key: string, brokerId: string) => {
    const entry = awaiting.get(key);
    if (!entry || !entry.brokers.delete(brokerId) || entry.brokers.size > 0) return;
    awaiting.delete(key);
    const [gatewayId, seq] = [key.slice(0, key.lastIndexOf('/')), key.slice(key.lastIndexOf('/') + 1)];
    entry.link.send({ membershipAck: { gatewayId, gatewaySeq: Long.fromString(seq, true) } });
  };

  const forward = (update: MembershipUpdate, changes: RoomCount[], from: PeerLink) => {
    const key = `${update.gatewayId}/${update.gatewaySeq.toString()}`;
    const brokersToAck = new Set<string>();
    const topology = registry.topology();
    const byPartition = new Map<number, RoomCount[]>();
    for (const count of changes) {
      for (const p of membershipPartitions(count.roomId, topology)) {
        let rooms = byPartition.get(p);
        if (!rooms) byPartition.set(p, (rooms = []));
        rooms.push(count);
      }
    }
    for (const [p, rooms] of byPartition) {
      const body = peer.PeerFrame.encode({
        membership: { gatewayId: update.gatewayId, gatewayAddress: update.gatewayAddress, gatewaySeq: update.gatewaySeq, rooms, full: false },
      }).finish();
      for (const broker of brokers.members()) {
        if (broker.partition !== p) continue;
        const link = brokers.link(broker.id);
        if (!link) continue; // it gets a snapshot when it comes back
        link.sendEncoded(body);
        brokersToAck.add(broker.id);
      }
    }
    if (brokersToAck.size === 0) {
      from.send({ membershipAck: { gatewayId: update.gatewayId, gatewaySeq: update.gatewaySeq } });
      return;
    }
    awaiting.set(key, { link: from, brokers: brokersToAck });
  };

  server.on('link', (link) => {
    link.on('frame', (frame) => {
      if (frame.body !== 'membership' || !frame.membership) {
        link.fail(10, `a router accepts only MembershipUpdate frames, got ${frame.body}`);
        return;
      }
      const update = frame.membership;
      if (!update.gatewayId || !isPeerAddress(update.gatewayAddress)) {
        link.fail(12, 'MembershipUpdate needs a gateway id and a host:port gateway address');
        return;
      }
      const changes = store.record(update);
      if (!changes) {
        link.send({ membershipAck: { gatewayId: update.gatewayId, gatewaySeq: update.gatewaySeq } });
        updatesIn.inc({ result: 'stale' });
        log.debug({ gateway: update.gatewayId, seq: update.gatewaySeq }, 'stale membership discarded');
        return;
      }
      updatesIn.inc({ result: 'applied' });
      forward(update, changes, link);
    });
  });

  brokers.on('up', (member, link) => {
    link.on('frame', (frame) => {
      if (frame.body === 'membershipAck') settle(`${frame.membershipAck.gatewayId}/${frame.membershipAck.gatewaySeq.toString()}`, member.id);
    });
    awaitingSnapshot.set(member.id, { member, link });
    sendSnapshots();
  });
  brokers.on('down', (member) => { awaitingSnapshot.delete(member.id); });

  /** Brokers linked but not yet sent their snapshot: a new partition waits for the layout that has it. */
  const awaitingSnapshot = new Map<string, { member: { id: string; partition: number }; link: PeerLink }>();
  const sendSnapshots = () => {
    const topology = registry.topology();
    for (const [id, { member, link }] of awaitingSnapshot) {
      if (!brokerPartitionKnown(member.partition, topology)) continue;
      awaitingSnapshot.delete(id);
      const updates = store.snapshot((roomId) => membershipPartitions(roomId, topology).includes(member.partition));
      for (let i = 0; i < updates.length; i += SNAPSHOT_CHUNK) {
        link.send({ snapshot: { gateways: updates.slice(i, i + SNAPSHOT_CHUNK), last: false } });
      }
      link.send({ snapshot: { gateways: [], last: true } });
      snapshotsSent.inc();
      log.info({ broker: member.id, partition: member.partition, gateways: updates.length }, 'snapshot sent');
    }
  };
  registry.on('topology', sendSnapshots);

  const address = await server.listen(config.port, config.host);
  log.info({ address }, 'router listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => true,
    stop: async () => {
      brokers.close();
      await server.close();
    },
  };
}
