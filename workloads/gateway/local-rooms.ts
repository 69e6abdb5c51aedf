// Which of this gateway's sessions are in which room, and how many per
// virtual room: the state the gateway reports to routers.
import { vroomOf, VROOM_COUNT, type RoomCount } from '../protocol/index.js';

export interface Member {
  userId: number;
}

interface LocalRoom<S> {
  sessions: Set<S>;
  perVroom: Uint32Array;
}

export class LocalRooms<S extends Member> {
  private readonly rooms = new Map<number, LocalRoom<S>>();
  /** Rooms whose counts changed since the last report. */
  readonly dirty = new Set<number>();

  join(roomId: number, session: S): boolean {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = { sessions: new Set(), perVroom: new Uint32Array(VROOM_COUNT) };
      this.rooms.set(roomId, room);
    }
    if (room.sessions.has(session)) return false;
    room.sessions.add(session);
    room.perVroom[vroomOf(session.userId)]!++;
    this.dirty.add(roomId);
    return true;
  }

  leave(roomId: number, session: S): boolean {
    const room = this.rooms.get(roomId);
    if (!room || !room.sessions.delete(session)) return false;
    room.perVroom[vroomOf(session.userId)]!--;
    if (room.sessions.size === 0) this.rooms.delete(roomId);
    this.dirty.add(roomId);
    return true;
  }

  sessions(roomId: number): Set<S> | undefined {
    return this.rooms.get(roomId)?.sessions;
  }

  /** The absolute counts of a room (no vrooms listed: nobody here). */
  count(roomId: number): RoomCount {
    const room = this.rooms.get(roomId);
    const vrooms: Array<{ vroom: number; count: number }> = [];
    if (room) {
      for (let v = 0; v < VROOM_COUNT; v++) if (room.perVroom[v]) vrooms.push({ vroom: v, count: room.perVroom[v]! });
    }
    return { roomId, vrooms };
  }

  roomIds(): IterableIterator<number> {
    return this.rooms.keys();
  }

  get size(): number {
    return this.rooms.size;
  }
}
