// The recent messages of each room this replica sequences, so a member that
// dropped and rejoins gets exactly what it missed: bounded per room by count
// and age, and over all rooms by an LRU. Soft state, like the rest of the
// broker: a restarted broker serves history only from its restart on.
import { LRUCache } from 'lru-cache';
import type { RoomDelivery } from '../protocol/index.js';

interface Retained { at: number; seq: number; delivery: RoomDelivery }

/** A room's retained messages are entries[first..]; the evicted prefix is cut off in bulk, not per message. */
interface RoomLog { nextSeq: number; first: number; entries: Retained[] }

export interface HistoryAnswer {
  /** False when some message after the asked sequence is no longer held here. */
  complete: boolean;
  deliveries: RoomDelivery[];
}

export class RoomHistory {
  private readonly rooms: LRUCache<number, RoomLog>;

  constructor(private readonly sequencerId: number, private readonly perRoom: number, private readonly maxAgeMs: number, maxRooms = 10_000) {
    this.rooms = new LRUCache({ max: maxRooms });
  }

  /** seq is delivery.roomSeq, which the caller has as a number already. */
  record(delivery: RoomDelivery, seq: number, now = Date.now()): void {
    let room = this.rooms.get(delivery.roomId);
    if (!room) this.rooms.set(delivery.roomId, (room = { nextSeq: 0, first: 0, entries: [] }));
    room.entries.push({ at: now, seq, delivery });
    room.nextSeq = seq + 1;
    if (room.entries.length - room.first > this.perRoom) room.first++;
    if (room.first >= this.perRoom) {
      room.entries.splice(0, room.first);
      room.first = 0;
    }
  }

  since(roomId: number, sequencerId: number, afterSeq: number, now = Date.now()): HistoryAnswer {
    const room = this.rooms.get(roomId);
    if (!room) return { complete: false, deliveries: [] };
    const fresh = room.entries.slice(room.first).filter((e) => now - e.at <= this.maxAgeMs);
    if (sequencerId !== this.sequencerId) return { complete: false, deliveries: fresh.map((e) => e.delivery) };
    const after = fresh.filter((e) => e.seq > afterSeq);
    const firstHeld = after.length ? after[0]!.seq : room.nextSeq;
    const deliveries = after.map((e) => e.delivery);
    return { complete: firstHeld === afterSeq + 1 && afterSeq < room.nextSeq, deliveries };
  }
}
