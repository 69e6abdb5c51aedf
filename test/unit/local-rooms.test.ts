// LocalRooms: a gateway's sessions per room and its counts per virtual room.
import { describe, expect, test } from '@jest/globals';
import { LocalRooms } from '../../workloads/gateway/local-rooms.js';

class FakeSession {
  constructor(readonly userId: number) {}
}

describe('LocalRooms', () => {
  test('join and leave keep per-virtual-room counts (UserID % 64)', () => {
    const rooms = new LocalRooms<FakeSession>();
    const a = new FakeSession(1);
    const b = new FakeSession(65); // same virtual room as a
    const c = new FakeSession(2);
    expect(rooms.join(10, a)).toBe(true);
    expect(rooms.join(10, b)).toBe(true);
    expect(rooms.join(10, c)).toBe(true);
    expect(rooms.count(10)).toEqual({ roomId: 10, vrooms: [{ vroom: 1, count: 2 }, { vroom: 2, count: 1 }] });
    expect(rooms.leave(10, a)).toBe(true);
    expect(rooms.count(10)).toEqual({ roomId: 10, vrooms: [{ vroom: 1, count: 1 }, { vroom: 2, count: 1 }] });
    expect([...rooms.sessions(10)!]).toEqual([b, c]);
  });

  test('joining twice or leaving a room not joined changes nothing', () => {
    const rooms = new LocalRooms<FakeSession>();
    const a = new FakeSession(1);
    rooms.join(10, a);
    rooms.dirty.clear();
    expect(rooms.join(10, a)).toBe(false);
    expect(rooms.leave(11, a)).toBe(false);
    expect(rooms.leave(10, new FakeSession(1))).toBe(false); // another session of the same user
    expect(rooms.count(10)).toEqual({ roomId: 10, vrooms: [{ vroom: 1, count: 1 }] });
    expect(rooms.dirty.size).toBe(0);
  });

  test('two sessions of one user count twice', () => {
    const rooms = new LocalRooms<FakeSession>();
    rooms.join(10, new FakeSession(7));
    rooms.join(10, new FakeSession(7));
    expect(rooms.count(10).vrooms).toEqual([{ vroom: 7, count: 2 }]);
  });

  test('the last leave removes the room; its count is then empty (the zero that is reported)', () => {
    const rooms = new LocalRooms<FakeSession>();
    const a = new FakeSession(3);
    rooms.join(10, a);
    rooms.leave(10, a);
    expect(rooms.sessions(10)).toBeUndefined();
    expect(rooms.size).toBe(0);
    expect([...rooms.roomIds()]).toEqual([]);
    expect(rooms.count(10)).toEqual({ roomId: 10, vrooms: [] });
    expect(rooms.dirty.has(10)).toBe(true);
  });

  test('every change marks its room dirty', () => {
    const rooms = new LocalRooms<FakeSession>();
    const a = new FakeSession(1);
    rooms.join(1, a);
    rooms.join(2, a);
    expect([...rooms.dirty].sort()).toEqual([1, 2]);
    rooms.dirty.clear();
    rooms.leave(2, a);
    expect([...rooms.dirty]).toEqual([2]);
    expect([...rooms.roomIds()]).toEqual([1]);
  });

  test('virtual rooms 0 and 63 and the largest user id are counted', () => {
    const rooms = new LocalRooms<FakeSession>();
    rooms.join(5, new FakeSession(64));
    rooms.join(5, new FakeSession(63));
    rooms.join(5, new FakeSession(0xffffffff)); // % 64 = 63
    expect(rooms.count(5).vrooms).toEqual([{ vroom: 0, count: 1 }, { vroom: 63, count: 2 }]);
  });

  test('counts stay exact under many random joins and leaves', () => {
    const rooms = new LocalRooms<FakeSession>();
    const sessions = Array.from({ length: 200 }, (_, i) => new FakeSession(i * 37 + 1));
    const model = new Map<number, Set<FakeSession>>();
    let seed = 42;
    const random = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let step = 0; step < 5000; step++) {
      const room = 1 + random(5);
      const session = sessions[random(sessions.length)]!;
      let members = model.get(room);
      if (!members) model.set(room, (members = new Set()));
      if (random(2) === 0) { rooms.join(room, session); members.add(session); }
      else { rooms.leave(room, session); members.delete(session); }
    }
    for (const [room, members] of model) {
      const expected = new Map<number, number>();
      for (const s of members) expected.set(s.userId % 64, (expected.get(s.userId % 64) ?? 0) + 1);
      const got = new Map(rooms.count(room).vrooms.map((v) => [v.vroom, v.count]));
      expect(got).toEqual(expected);
      expect(rooms.sessions(room)?.size ?? 0).toBe(members.size);
    }
  });
});
