// RoomGatewayList: for each room of this broker's partition, which gateways
// have members in it, per virtual room. Pure data; no I/O. Each (room, gateway)
// entry remembers the gateway sequence that wrote it, so updates arriving
// late or twice (through two routers, or a snapshot after a live update)
// never roll it back; an entry emptied by a leave leaves a tombstone with its
// sequence for the same reason.
import { LRUCache } from 'lru-cache';
import { Long, maskWith, VROOM_COUNT, type RoomCount } from '../protocol/index.js';

/** Deleted (room, gateway) entries remembered, so a late older join cannot revive one. */
const TOMBSTONES = 100_000;

export interface GatewayEntry {
  gatewayId: string;
  address: string;
  seq: number;
  total: number;
  /** Virtual rooms in which the gateway has at least one member. */
  mask: Long;
}

export interface Room {
  gateways: Map<string, GatewayEntry>;
  total: number;
  split: boolean;
}

export interface FanoutTarget {
  gatewayId: string;
  address: string;
  mask: Long;
}

export class RoomTable {
  private readonly rooms = new Map<number, Room>();
  /** `${gatewayId}/${roomId}` → the sequence that emptied the entry */
  private readonly tombstones = new LRUCache<string, number>({ max: TOMBSTONES });

  /** splitAt: members at or above which a room splits; it merges again below half. */
  constructor(private splitAt: number) {}

  setSplitThreshold(splitAt: number): void {
    this.splitAt = splitAt;
    for (const room of this.rooms.values()) this.reclassify(room);
  }

  /** Applies one gateway's counts for one room. Returns false if the entry was newer. */
  apply(gatewayId: string, address: string, seq: number, count: RoomCount): boolean {
    let room = this.rooms.get(count.roomId);
    const existing = room?.gateways.get(gatewayId);
    if (existing && existing.seq >= seq) return false;
    const tombstone = `${gatewayId}/${count.roomId}`;
    if (!existing && (this.tombstones.get(tombstone) ?? -1) >= seq) return false;
    let total = 0;
    let mask = Long.UZERO;
    for (const v of count.vrooms) {
      if (v.vroom >= VROOM_COUNT || v.count === 0) continue;
      total += v.count;
      mask = maskWith(mask, v.vroom);
    }
    if (total === 0) this.tombstones.set(tombstone, seq);
    else this.tombstones.delete(tombstone);
    if (!room) {
      if (total === 0) return true;
      room = { gateways: new Map(), total: 0, split: false };
      this.rooms.set(count.roomId, room);
    }
    room.total -= existing?.total ?? 0;
    if (total === 0) {
      room.gateways.delete(gatewayId);
    } else {
      room.gateways.set(gatewayId, { gatewayId, address, seq, total, mask });
      room.total += total;
    }
    if (room.gateways.size === 0) this.rooms.delete(count.roomId);
    else this.reclassify(room);
    return true;
  }

  /** Forgets a gateway everywhere (it left the registry). Returns the rooms it was in. */
  removeGateway(gatewayId: string): number {
    for (const key of [...this.tombstones.keys()]) if (key.startsWith(`${gatewayId}/`)) this.tombstones.delete(key);
    let touched = 0;
    for (const [roomId, room] of this.rooms) {
      const entry = room.gateways.get(gatewayId);
      if (!entry) continue;
      touched++;
      room.gateways.delete(gatewayId);
      room.total -= entry.total;
      if (room.gateways.size === 0) this.rooms.delete(roomId);
      else this.reclassify(room);
    }
    return touched;
  }

  room(roomId: number): Room | undefined {
    return this.rooms.get(roomId);
  }

  /** Gateways to deliver to, limited to the virtual rooms in share. */
  targets(roomId: number, share: Long | null): FanoutTarget[] {
    const room = this.rooms.get(roomId);
    if (!room) return [];
    const out: FanoutTarget[] = [];
    for (const entry of room.gateways.values()) {
      if (!share) {
        out.push({ gatewayId: entry.gatewayId, address: entry.address, mask: entry.mask });
        continue;
      }
      const mask = Long.fromBits((entry.mask.low & share.low) >>> 0, (entry.mask.high & share.high) >>> 0, true);
      if (mask.low !== 0 || mask.high !== 0) out.push({ gatewayId: entry.gatewayId, address: entry.address, mask });
    }
    return out;
  }

  /** Every entry, as the updates that would rebuild it (snapshots, tests). */
  *entries(): Generator<[number, GatewayEntry]> {
    for (const [roomId, room] of this.rooms) for (const entry of room.gateways.values()) yield [roomId, entry];
  }

  get size(): number {
    return this.rooms.size;
  }

  private reclassify(room: Room): void {
    if (!room.split && room.total >= this.splitAt) room.split = true;
    else if (room.split && room.total < this.splitAt / 2) room.split = false;
  }
}
