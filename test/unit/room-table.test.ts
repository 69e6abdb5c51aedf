// RoomTable: the broker's RoomGatewayList.
import { describe, expect, test } from '@jest/globals';
import { RoomTable } from '../../workloads/broker/room-table.js';
import { ALL_VROOMS, Long, maskHas, type RoomCount } from '../../workloads/protocol/index.js';

function count(roomId: number, perVroom: Record<number, number>): RoomCount {
  return { roomId, vrooms: Object.entries(perVroom).map(([vroom, n]) => ({ vroom: Number(vroom), count: n })) };
}

function maskOf(...vrooms: number[]): Long {
  let low = 0;
  let high = 0;
  for (const v of vrooms) {
    if (v < 32) low |= 1 << v;
    else high |= 1 << (v - 32);
  }
  return Long.fromBits(low >>> 0, high >>> 0, true);
}

function vroomsIn(mask: Long): number[] {
  const out: number[] = [];
  for (let v = 0; v < 64; v++) if (maskHas(mask, v)) out.push(v);
  return out;
}

describe('RoomTable.apply', () => {
  test('records which gateways have members, with totals and virtual-room masks', () => {
    const table = new RoomTable(1000);
    expect(table.apply('gw-a', '127.0.0.1:1', 1, count(7, { 0: 2, 5: 1 }))).toBe(true);
    expect(table.apply('gw-b', '127.0.0.1:2', 1, count(7, { 63: 4 }))).toBe(true);
    const room = table.room(7)!;
    expect(room.total).toBe(7);
    expect(room.split).toBe(false);
    expect(vroomsIn(room.gateways.get('gw-a')!.mask)).toEqual([0, 5]);
    expect(vroomsIn(room.gateways.get('gw-b')!.mask)).toEqual([63]);
    expect(room.gateways.get('gw-b')!.address).toBe('127.0.0.1:2');
    expect(table.size).toBe(1);
  });

  test('counts are absolute: a newer update replaces the gateway entry', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(7, { 0: 2 }));
    table.apply('gw-a', 'h:1', 2, count(7, { 1: 5 }));
    const room = table.room(7)!;
    expect(room.total).toBe(5);
    expect(vroomsIn(room.gateways.get('gw-a')!.mask)).toEqual([1]);
    expect(room.gateways.get('gw-a')!.seq).toBe(2);
  });

  test('an update not newer than the entry is stale: refused, table unchanged', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 5, count(7, { 0: 2 }));
    expect(table.apply('gw-a', 'h:1', 5, count(7, { 0: 9 }))).toBe(false);
    expect(table.apply('gw-a', 'h:1', 4, count(7, {}))).toBe(false);
    expect(table.room(7)!.total).toBe(2);
  });

  test('a count of zero removes the gateway, and the room with its last gateway', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(7, { 0: 1 }));
    table.apply('gw-b', 'h:2', 1, count(7, { 1: 1 }));
    table.apply('gw-a', 'h:1', 2, count(7, { 0: 0 }));
    expect([...table.room(7)!.gateways.keys()]).toEqual(['gw-b']);
    expect(table.room(7)!.total).toBe(1);
    table.apply('gw-b', 'h:2', 2, count(7, {}));
    expect(table.room(7)).toBeUndefined();
    expect(table.size).toBe(0);
  });

  test('a zero count for an unknown room creates nothing', () => {
    const table = new RoomTable(1000);
    expect(table.apply('gw-a', 'h:1', 1, count(9, { 3: 0 }))).toBe(true);
    expect(table.room(9)).toBeUndefined();
  });

  test('virtual rooms outside 0..63 are ignored', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(7, { 64: 10, 1000: 3, 2: 1 }));
    expect(table.room(7)!.total).toBe(1);
    expect(vroomsIn(table.room(7)!.gateways.get('gw-a')!.mask)).toEqual([2]);
  });

  test('a leave delivered before the join it follows is not undone by the late join', () => {
    // Two routers can deliver one gateway's updates for a room out of order
    // (failover between them); the per-entry sequence must still win.
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(7, { 0: 1 }));
    table.apply('gw-a', 'h:1', 3, count(7, {})); // the user left (seq 3)
    expect(table.apply('gw-a', 'h:1', 2, count(7, { 0: 1 }))).toBe(false); // seq 2 arrives late
    expect(table.room(7)).toBeUndefined();
  });
});

describe('RoomTable split and merge', () => {
  test('a room splits at the threshold and merges again only below half of it', () => {
    const table = new RoomTable(10);
    table.apply('gw-a', 'h:1', 1, count(7, { 0: 9 }));
    expect(table.room(7)!.split).toBe(false);
    table.apply('gw-b', 'h:2', 1, count(7, { 1: 1 }));
    expect(table.room(7)!.split).toBe(true); // 10 members
    table.apply('gw-a', 'h:1', 2, count(7, { 0: 4 }));
    expect(table.room(7)!.total).toBe(5);
    expect(table.room(7)!.split).toBe(true); // 5 is not below half of 10
    table.apply('gw-a', 'h:1', 3, count(7, { 0: 3 }));
    expect(table.room(7)!.split).toBe(false); // 4 < 5
    table.apply('gw-a', 'h:1', 4, count(7, { 0: 8 }));
    expect(table.room(7)!.split).toBe(false); // 9 < 10: no flapping back
  });

  test('removing a gateway can merge a split room', () => {
    const table = new RoomTable(10);
    table.apply('gw-a', 'h:1', 1, count(7, { 0: 8 }));
    table.apply('gw-b', 'h:2', 1, count(7, { 1: 4 }));
    expect(table.room(7)!.split).toBe(true);
    expect(table.removeGateway('gw-a')).toBe(1);
    expect(table.room(7)!.split).toBe(false);
  });

  test('a new threshold reclassifies every room', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(1, { 0: 50 }));
    table.apply('gw-a', 'h:1', 2, count(2, { 0: 5 }));
    table.setSplitThreshold(20);
    expect(table.room(1)!.split).toBe(true);
    expect(table.room(2)!.split).toBe(false);
    table.setSplitThreshold(1000);
    expect(table.room(1)!.split).toBe(false);
  });
});

describe('RoomTable.removeGateway', () => {
  test('forgets the gateway everywhere and says in how many rooms it was', () => {
    const table = new RoomTable(1000);
    table.apply('gw-a', 'h:1', 1, count(1, { 0: 1 }));
    table.apply('gw-a', 'h:1', 2, count(2, { 0: 1 }));
    table.apply('gw-b', 'h:2', 1, count(2, { 1: 2 }));
    expect(table.removeGateway('gw-a')).toBe(2);
    expect(table.room(1)).toBeUndefined();
    expect(table.room(2)!.total).toBe(2);
    expect(table.removeGateway('gw-a')).toBe(0);
    expect([...table.entries()].map(([room, e]) => [room, e.gatewayId])).toEqual([[2, 'gw-b']]);
  });
});

describe('RoomTable.targets', () => {
  const table = new RoomTable(1000);
  table.apply('gw-a', 'h:1', 1, count(7, { 0: 1, 33: 1 }));
  table.apply('gw-b', 'h:2', 1, count(7, { 1: 1 }));
  table.apply('gw-c', 'h:3', 1, count(7, { 40: 2, 63: 1 }));

  test('without a share: every gateway, each with its own mask', () => {
    const targets = table.targets(7, null);
    expect(targets.map((t) => [t.gatewayId, t.address, vroomsIn(t.mask)])).toEqual([
      ['gw-a', 'h:1', [0, 33]], ['gw-b', 'h:2', [1]], ['gw-c', 'h:3', [40, 63]],
    ]);
  });

  test('with a share: only gateways with members in it, masks cut to it', () => {
    const targets = table.targets(7, maskOf(0, 40, 41));
    expect(targets.map((t) => [t.gatewayId, vroomsIn(t.mask)])).toEqual([['gw-a', [0]], ['gw-c', [40]]]);
  });

  test('the shares of a split room together cover every member exactly once', () => {
    const shares = [maskOf(...Array.from({ length: 32 }, (_, i) => i * 2)), maskOf(...Array.from({ length: 32 }, (_, i) => i * 2 + 1))];
    const covered: string[] = [];
    for (const share of shares) for (const t of table.targets(7, share)) for (const v of vroomsIn(t.mask)) covered.push(`${t.gatewayId}/${v}`);
    expect(covered.sort()).toEqual(['gw-a/0', 'gw-a/33', 'gw-b/1', 'gw-c/40', 'gw-c/63']);
  });

  test('the all-vrooms share is the same as no share', () => {
    expect(table.targets(7, ALL_VROOMS).map((t) => vroomsIn(t.mask))).toEqual(table.targets(7, null).map((t) => vroomsIn(t.mask)));
  });

  test('an empty share or an unknown room has no targets', () => {
    expect(table.targets(7, Long.UZERO)).toEqual([]);
    expect(table.targets(8, null)).toEqual([]);
  });
});
