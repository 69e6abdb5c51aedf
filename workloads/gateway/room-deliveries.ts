// Brokers' RoomDeliveries to the members this gateway holds: each (room,
// sender, message id) at most once per virtual room, a split room's message
// only to the members of the virtual rooms it names, held back for a member
// whose resume of that room is still sending what it missed.
import { RecentIds } from '../collections/recent-ids.js';
import { HotCounter } from '../observability/hot-metrics.js';
import { ALL_VROOMS, Long, maskHas, maskIsEmpty, maskWithout, messageIdKey, vroomOf, type RoomDelivery } from '../protocol/index.js';
import type { LocalRooms, Member } from './local-rooms.js';
import { encodeDelivery } from './server-frames.js';
import { Session } from './session.js';

const DEDUP_ENTRIES = 100_000;

const delivered = new HotCounter({ name: 'groupchat_gateway_delivered_total', help: 'Messages written to user connections' }).cell();
const duplicates = new HotCounter({ name: 'groupchat_gateway_duplicate_total', help: 'RoomDeliveries dropped as already delivered' }).cell();

export interface RoomDeliveriesDeps {
  /** Sessions per room; the latency probe's member is the one that is not a Session. */
  rooms: LocalRooms<Session | Member>;
  /** True when the delivery is the latency probe's own (latency-probe.ts). */
  isProbe(delivery: RoomDelivery): boolean;
  /** A broker delivered to a room with no member here: report the room again. */
  reportAgain(roomId: number): void;
  send(session: Session, frame: Buffer): void;
}

export class RoomDeliveries {
  /** (room, sender, message id) → virtual rooms already delivered here */
  private readonly seen = new RecentIds<Long>(DEDUP_ENTRIES);

  constructor(private readonly deps: RoomDeliveriesDeps) {}

  /** The hot path: one call per RoomDelivery, one encoding for every member. */
  readonly deliver = (delivery: RoomDelivery): void => {
    const { senderId, messageId } = delivery;
    const mask = Long.fromBits(delivery.vroomMask.low, delivery.vroomMask.high, true);
    const before = this.seen.get(delivery.roomId, senderId, messageId.high, messageId.low);
    const fresh = before ? maskWithout(mask, before) : mask;
    if (maskIsEmpty(fresh)) { duplicates.count++; return; }
    this.seen.set(delivery.roomId, senderId, messageId.high, messageId.low,
      before ? Long.fromBits((before.low | fresh.low) >>> 0, (before.high | fresh.high) >>> 0, true) : fresh);
    if (this.deps.isProbe(delivery)) return;
    const members = this.deps.rooms.sessions(delivery.roomId);
    if (!members) return this.deps.reportAgain(delivery.roomId);
    const frame = encodeDelivery(delivery);
    const everyone = fresh.equals(ALL_VROOMS);
    for (const session of members) {
      if (!(session instanceof Session)) continue;
      if (everyone || maskHas(fresh, vroomOf(session.userId))) {
        const held = session.resuming.size > 0 ? session.resuming.get(delivery.roomId) : undefined;
        if (held) held.push({ key: `${senderId}/${messageIdKey(messageId)}`, frame });
        else this.deps.send(session, frame);
        delivered.count++;
      }
    }
  };
}
