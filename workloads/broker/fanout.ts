// Fan-out of committed room messages to the gateways with members. An
// unsplit room's message is framed once and shared by every gateway's queue;
// a split room's 64 virtual rooms are shared among the partition's live
// replicas (ShareForward), each delivering its share, so one leader per
// partition is not the fan-out bottleneck of a very large room.
import { Counter, Histogram } from 'prom-client';
import { metrics } from '../observability/http.js';
import { HotCounter } from '../observability/hot-metrics.js';
import { ALL_VROOMS, Long, maskWith, peer, type RoomDelivery } from '../protocol/index.js';
import { framed, ROOM_DELIVERY_FRAME_TAG } from '../protocol/wire-scan.js';
import type { PeerLink } from '../transport/peer-link.js';
import { GatewayChannel, Obligation } from './gateway-channel.js';
import type { RoomTable } from './room-table.js';

const deliveries = new HotCounter({ name: 'groupchat_broker_delivery_total', help: 'RoomDelivery frames sent to gateways' }).cell();
const fanoutSize = new Histogram({ name: 'groupchat_broker_fanout_gateways', help: 'Gateways per fan-out', buckets: [0, 1, 2, 4, 8, 16, 32, 64], registers: [metrics] });
const splitFanouts = new Counter({ name: 'groupchat_broker_split_fanout_total', help: 'Messages to split rooms, by how their virtual rooms were served', labelNames: ['share'], registers: [metrics] });
const refusedDeliveries = new Counter({ name: 'groupchat_broker_delivery_refused_total', help: 'Deliveries refused because a gateway queue was full (its users resume from the room sequence)', registers: [metrics] });

/** A replica that can take a share of a split room: its id, replica number and link (null: this one). */
export interface ShareOwner { id: string; replica: number; link: PeerLink | null }

interface Forward { ownerId: string; delivery: RoomDelivery; obligation: Obligation }

export interface FanoutDeps {
  table: RoomTable;
  channelFor(gatewayId: string, address: string): GatewayChannel;
  /** Live replicas of the partition, this one included, by replica number. */
  shareOwners(): ShareOwner[];
}

export class Fanout {
  private readonly forwards = new Map<number, Forward>();
  private nextForwardId = 1;

  constructor(private readonly deps: FanoutDeps) {}

  /** Delivers a committed message to every gateway with members; done once all have acknowledged it. */
  deliver(delivery: RoomDelivery, done: () => void, encoded?: Uint8Array): void {
    if (this.deps.table.room(delivery.roomId)?.split) this.split(delivery, done);
    else this.local(delivery, null, done, encoded);
  }

  /**
   * Delivers to this replica's gateways for the virtual rooms in share (null:
   * the whole room). encoded: the delivery's RoomDelivery bytes when the
   * caller has them.
   */
  local(delivery: RoomDelivery, share: Long | null, done: () => void, encoded?: Uint8Array): void {
    const targets = this.deps.table.targets(delivery.roomId, share);
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
      if (!this.deps.channelFor(target.gatewayId, target.address).deliver(body, obligation, delivery.priority === peer.Priority.CRITICAL)) {
        refusedDeliveries.inc();
        obligation.complete();
      }
      deliveries.count++;
    }
  }

  /** A share another replica forwarded: fan it out here, answer when its gateways have it. */
  onShareForward(link: PeerLink, forwardId: number, delivery: RoomDelivery): void {
    const share = Long.fromBits(delivery.vroomMask.low, delivery.vroomMask.high, true);
    this.local(delivery, share, () => link.send({ shareAck: { forwardId } }));
  }

  onShareAck(forwardId: number): void {
    const forward = this.forwards.get(forwardId);
    if (!forward) return;
    this.forwards.delete(forwardId);
    forward.obligation.complete();
  }

  /** The replica holding a share went down before acknowledging it: deliver its virtual rooms from here. */
  onReplicaDown(memberId: string): void {
    for (const [forwardId, forward] of this.forwards) {
      if (forward.ownerId !== memberId) continue;
      this.forwards.delete(forwardId);
      const share = Long.fromBits(forward.delivery.vroomMask.low, forward.delivery.vroomMask.high, true);
      this.local(forward.delivery, share, () => forward.obligation.complete());
    }
  }

  private split(delivery: RoomDelivery, done: () => void): void {
    const owners = this.deps.shareOwners();
    const shares = new Map<string, { owner: ShareOwner; mask: Long }>();
    for (let v = 0; v < 64; v++) {
      const owner = owners[v % owners.length]!;
      const held = shares.get(owner.id);
      shares.set(owner.id, { owner, mask: maskWith(held?.mask ?? Long.UZERO, v) });
    }
    const obligation = new Obligation(shares.size, done);
    for (const { owner, mask } of shares.values()) {
      splitFanouts.inc({ share: owner.link ? 'forwarded' : 'local' });
      if (!owner.link) {
        this.local(delivery, mask, () => obligation.complete());
        continue;
      }
      const forwardId = this.nextForwardId++;
      const forwarded = { ...delivery, vroomMask: mask };
      this.forwards.set(forwardId, { ownerId: owner.id, delivery: forwarded, obligation });
      owner.link.send({ shareForward: { forwardId, delivery: forwarded } });
    }
  }
}
