// The recent messages of each room this replica sequences, so a member that
// dropped and rejoins gets exactly what it missed: bounded per room by count
// and age, and over all rooms by an LRU. Soft state, like the rest of the
// broker: a restarted broker serves history only from its restart on.
import { LRUCache } from 'lru-cache';
import { toNumber, type RoomDelivery } from '../protocol/index.js';

interface Retained { at: number; delivery: RoomDelivery }

export interface HistoryAnswer {
  /** False when some message after the asked sequence is no longer held here. */
  complete: boolean;
  deliveries: RoomDelivery[];
}

export class RoomHistory {
  private readonly rooms: LRUCache<number, { nextSeq: number; entries: Retained[] }>;

  constructor(private readonly sequencerId: number, private readonly perRoom: number, private readonly maxAgeMs: number, maxRooms = 10_000) {
    this.rooms = new LRUCache({ max: maxRooms });
  }

  record(delivery: RoomDelivery, now = Date.now()): void {
    let room = this.rooms.get(delivery.roomId);
    if (!room) this.rooms.set(delivery.roomId, (room = { nextSeq: 0, entries: [] }));
    room.entries.push({ at: now, delivery });
    room.nextSeq = toNumber(delivery.roomSeq) + 1;
    if (room.entries.length > this.perRoom) room.entries.splice(0, room.entries.length - this.perRoom);
  }

  since(roomId: number, sequencerId: number, afterSeq: number, now = Date.now()): HistoryAnswer {
    const room = this.rooms.get(roomId);
    if (!room) return { complete: false, deliveries: [] };
    const fresh = room.entries.filter((e) => now - e.at <= this.maxAgeMs);
    if (sequencerId !== this.sequencerId) return { complete: false, deliveries: fresh.map((e) => e.delivery) };
    const deliveries = fresh.filter((e) => toNumber(e.delivery.roomSeq) > afterSeq).map((e) => e.delivery);
    const firstHeld = deliveries.length ? toNumber(deliveries[0]!.roomSeq) : room.nextSeq;
    return { complete: firstHeld === afterSeq + 1 && afterSeq < room.nextSeq, deliveries };
  }
}
