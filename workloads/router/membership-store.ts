// The router's view of room membership: for every room, each gateway's latest
// counts and the gateway sequence that wrote them. It discards a gateway's
// messages that are not newer than the newest it has seen (stale
// GatewayMsgIDs), and can replay everything it holds as snapshots.
import { Long, toNumber, type MembershipUpdate, type RoomCount } from '../protocol/index.js';

interface GatewayState {
  address: string;
  maxSeq: number;
  /** room → [seq that wrote it, counts] */
  rooms: Map<number, { seq: number; count: RoomCount }>;
}

export class MembershipStore {
  private readonly gateways = new Map<string, GatewayState>();
  staleDiscarded = 0;

  /**
   * Records an update and returns the room counts brokers must apply, or null
   * if it is stale. A full update replaces what this router holds for the
   * gateway; rooms it omits moved to another router and are not zeroed here
   * (a gateway that left a room sent that as a count of zero).
   */
  record(update: MembershipUpdate): RoomCount[] | null {
    const seq = toNumber(update.gatewaySeq);
    let state = this.gateways.get(update.gatewayId);
    if (state && seq <= state.maxSeq) {
      this.staleDiscarded++;
      return null;
    }
    if (!state) {
      state = { address: update.gatewayAddress, maxSeq: 0, rooms: new Map() };
      this.gateways.set(update.gatewayId, state);
    }
    state.maxSeq = seq;
    state.address = update.gatewayAddress;
    if (update.full) state.rooms.clear();
    for (const count of update.rooms) {
      if (count.vrooms.some((v) => v.count > 0)) state.rooms.set(count.roomId, { seq, count });
      else state.rooms.delete(count.roomId);
    }
    return update.rooms;
  }

  removeGateway(gatewayId: string): boolean {
    return this.gateways.delete(gatewayId);
  }

  /** One update per gateway holding the rooms that match, each with the seq that wrote it. */
  snapshot(matches: (roomId: number) => boolean): MembershipUpdate[] {
    const out: MembershipUpdate[] = [];
    for (const [gatewayId, state] of this.gateways) {
      // Group by writing seq so a broker's per-entry ordering stays exact.
      const bySeq = new Map<number, RoomCount[]>();
      for (const [roomId, { seq, count }] of state.rooms) {
        if (!matches(roomId)) continue;
        let rooms = bySeq.get(seq);
        if (!rooms) bySeq.set(seq, (rooms = []));
        rooms.push(count);
      }
      for (const [seq, rooms] of bySeq) {
        out.push({ gatewayId, gatewayAddress: state.address, gatewaySeq: Long.fromNumber(seq, true), rooms, full: false });
      }
    }
    return out;
  }
}
