// The recent messages of each room this replica sequences, so a member that
// dropped and rejoins gets exactly what it missed: bounded per room by count
// and age, and over all rooms by an LRU. Soft state, like the rest of the
// broker: a restarted broker serves history only from its restart on.
// Messages are kept as their encoded RoomDelivery bytes (one small buffer
// each, decoded only when a member asks) rather than as decoded objects: a
// busy broker retains a million of them, and every retained object is work for
// the garbage collector on every collection.
import { LRUCache } from 'lru-cache';
import { peer, type RoomDelivery } from '../protocol/index.js';

/** A room's retained messages are index first.. of these arrays; the evicted prefix is cut off in bulk. */
interface RoomLog {
  nextSeq: number;
  first: number;
  at: number[];
  seqs: number[];
  encoded: Uint8Array[];
}

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

  /** encoded: the RoomDelivery (peer.RoomDelivery.encode) of sequence number seq in roomId. */
  record(roomId: number, seq: number, encoded: Uint8Array, now = Date.now()): void {
    let room = this.rooms.get(roomId);
    if (!room) this.rooms.set(roomId, (room = { nextSeq: 0, first: 0, at: [], seqs: [], encoded: [] }));
    room.at.push(now);
    room.seqs.push(seq);
    room.encoded.push(encoded);
    room.nextSeq = seq + 1;
    if (room.seqs.length - room.first > this.perRoom) room.first++;
    if (room.first >= this.perRoom) {
      room.at.splice(0, room.first);
      room.seqs.splice(0, room.first);
      room.encoded.splice(0, room.first);
      room.first = 0;
    }
  }

  since(roomId: number, sequencerId: number, afterSeq: number, now = Date.now()): HistoryAnswer {
    const room = this.rooms.get(roomId);
    if (!room) return { complete: false, deliveries: [] };
    const held: number[] = [];
    for (let i = room.first; i < room.seqs.length; i++) if (now - room.at[i]! <= this.maxAgeMs) held.push(i);
    const decode = (i: number) => peer.RoomDelivery.decode(room.encoded[i]!) as unknown as RoomDelivery;
    if (sequencerId !== this.sequencerId) return { complete: false, deliveries: held.map(decode) };
    const after = held.filter((i) => room.seqs[i]! > afterSeq);
    const firstHeld = after.length ? room.seqs[after[0]!]! : room.nextSeq;
    return { complete: firstHeld === afterSeq + 1 && afterSeq < room.nextSeq, deliveries: after.map(decode) };
  }
}
