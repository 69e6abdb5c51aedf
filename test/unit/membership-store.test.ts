// MembershipStore: the router's view of room membership.
import { describe, expect, test } from '@jest/globals';
import { Long, toNumber, type MembershipUpdate, type RoomCount } from '../../workloads/protocol/index.js';
import { MembershipStore } from '../../workloads/router/membership-store.js';

function rc(roomId: number, perVroom: Record<number, number>): RoomCount {
  return { roomId, vrooms: Object.entries(perVroom).map(([vroom, n]) => ({ vroom: Number(vroom), count: n })) };
}

function update(gatewayId: string, seq: number, rooms: RoomCount[], full = false, address = `${gatewayId}.local:7000`): MembershipUpdate {
  return { gatewayId, gatewayAddress: address, gatewaySeq: Long.fromNumber(seq, true), rooms, full };
}

/** The snapshot as plain data: gateway → seq → room ids. */
function flat(updates: MembershipUpdate[]): Array<[string, string, number, number[]]> {
  return updates
    .map((u): [string, string, number, number[]] => [u.gatewayId, u.gatewayAddress, toNumber(u.gatewaySeq), u.rooms.map((r) => r.roomId).sort((a, b) => a - b)])
    .sort((a, b) => a[0].localeCompare(b[0]) || a[2] - b[2]);
}

describe('MembershipStore.record', () => {
  test('returns the counts to forward, and remembers them', () => {
    const store = new MembershipStore();
    const rooms = [rc(1, { 0: 1 }), rc(2, { 3: 2 })];
    expect(store.record(update('gw-a', 1, rooms))).toEqual(rooms);
    expect(flat(store.snapshot(() => true))).toEqual([['gw-a', 'gw-a.local:7000', 1, [1, 2]]]);
  });

  test('a gateway sequence not above the newest seen is stale: discarded and counted', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 5, [rc(1, { 0: 1 })]));
    expect(store.record(update('gw-a', 5, [rc(1, { 0: 7 })]))).toBeNull();
    expect(store.record(update('gw-a', 3, [rc(2, { 0: 1 })]))).toBeNull();
    expect(store.staleDiscarded).toBe(2);
    expect(flat(store.snapshot(() => true))).toEqual([['gw-a', 'gw-a.local:7000', 5, [1]]]);
    // Other gateways have their own sequences.
    expect(store.record(update('gw-b', 1, [rc(2, { 0: 1 })]))).not.toBeNull();
  });

  test('64-bit sequences compare as numbers', () => {
    const store = new MembershipStore();
    store.record({ ...update('gw-a', 0, [rc(1, { 0: 1 })]), gatewaySeq: Long.fromBits(0, 1, true) }); // 2^32
    expect(store.record(update('gw-a', 0xffffffff, [rc(1, { 0: 2 })]))).toBeNull();
  });

  test('a room whose counts are all zero is forwarded (so brokers drop it) but no longer held', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 1, [rc(1, { 0: 1 }), rc(2, { 0: 1 })]));
    const zero = rc(1, { 0: 0 });
    expect(store.record(update('gw-a', 2, [zero]))).toEqual([zero]);
    expect(flat(store.snapshot(() => true))).toEqual([['gw-a', 'gw-a.local:7000', 1, [2]]]);
  });

  test('a full update replaces everything held for that gateway', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 1, [rc(1, { 0: 1 }), rc(2, { 0: 1 })]));
    store.record(update('gw-b', 1, [rc(1, { 5: 1 })]));
    store.record(update('gw-a', 2, [rc(3, { 0: 4 })], true, 'gw-a.moved:7001'));
    expect(flat(store.snapshot(() => true))).toEqual([
      ['gw-a', 'gw-a.moved:7001', 2, [3]],
      ['gw-b', 'gw-b.local:7000', 1, [1]],
    ]);
  });

  test('an empty full update clears the gateway', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 1, [rc(1, { 0: 1 })]));
    store.record(update('gw-a', 2, [], true));
    expect(store.snapshot(() => true)).toEqual([]);
  });
});

describe('MembershipStore.snapshot', () => {
  test('holds only matching rooms, grouped by the sequence that wrote each', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 1, [rc(1, { 0: 1 }), rc(2, { 0: 1 }), rc(4, { 0: 1 })]));
    store.record(update('gw-a', 2, [rc(2, { 0: 3 }), rc(6, { 1: 1 })]));
    const even = store.snapshot((room) => room % 2 === 0);
    expect(flat(even)).toEqual([
      ['gw-a', 'gw-a.local:7000', 1, [4]],
      ['gw-a', 'gw-a.local:7000', 2, [2, 6]],
    ]);
    expect(even.every((u) => u.full === false)).toBe(true);
    // The counts in the snapshot are the newest ones.
    const room2 = even.flatMap((u) => u.rooms).find((r) => r.roomId === 2)!;
    expect(room2.vrooms).toEqual([{ vroom: 0, count: 3 }]);
  });

  test('replaying a snapshot into another store reproduces it', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 1, [rc(1, { 0: 1 }), rc(2, { 0: 1 })]));
    store.record(update('gw-a', 2, [rc(2, { 7: 2 })]));
    store.record(update('gw-b', 9, [rc(1, { 9: 1 })]));
    const copy = new MembershipStore();
    // Older sequence first, as a router sends them.
    const snap = store.snapshot(() => true).sort((a, b) => toNumber(a.gatewaySeq) - toNumber(b.gatewaySeq));
    for (const u of snap) expect(copy.record(u)).not.toBeNull();
    expect(flat(copy.snapshot(() => true))).toEqual(flat(store.snapshot(() => true)));
  });

  test('removeGateway forgets it, so a restarted gateway starting again at sequence 1 is accepted', () => {
    const store = new MembershipStore();
    store.record(update('gw-a', 50, [rc(1, { 0: 1 })]));
    expect(store.removeGateway('gw-a')).toBe(true);
    expect(store.removeGateway('gw-a')).toBe(false);
    expect(store.snapshot(() => true)).toEqual([]);
    expect(store.record(update('gw-a', 1, [rc(1, { 0: 1 })]))).not.toBeNull();
  });
});
