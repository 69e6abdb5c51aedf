// The seed's routing rules: partition = key % P, replica = key % R, failing
// over to the next live replica in ring order.
import { describe, expect, test } from '@jest/globals';
import type { Member } from '../../workloads/registry/schema.js';
import { brokerPartitionKnown, membershipPartitions, partitionOf, pickReplica, replicasOf } from '../../workloads/routing/placement.js';

function member(role: Member['role'], partition: number, replica: number, ready = true): Member {
  return { id: `${role}-${partition}-${replica}`, role, partition, replica, address: `127.0.0.1:${10_000 + partition * 10 + replica}`, ready };
}

describe('partitionOf', () => {
  test('is the key modulo the partition count', () => {
    expect(partitionOf(0, 4)).toBe(0);
    expect(partitionOf(7, 4)).toBe(3);
    expect(partitionOf(8, 4)).toBe(0);
    expect(partitionOf(0xffffffff, 2)).toBe(1);
    for (let key = 0; key < 100; key++) expect(partitionOf(key, 1)).toBe(0);
  });

  test('doubling the partitions sends each key to p or p + P (what the doubling relies on)', () => {
    for (let key = 0; key < 1000; key++) {
      const before = partitionOf(key, 4);
      expect([before, before + 4]).toContain(partitionOf(key, 8));
    }
  });
});

describe('replicasOf', () => {
  test('keeps the ready members of that role and partition, sorted by replica', () => {
    const members = [
      member('broker', 0, 2), member('broker', 1, 0), member('broker', 0, 0), member('router', 0, 1),
      member('broker', 0, 1, false), member('gateway', 0, 3),
    ];
    expect(replicasOf(members, 'broker', 0).map((m) => m.id)).toEqual(['broker-0-0', 'broker-0-2']);
    expect(replicasOf(members, 'broker', 1).map((m) => m.id)).toEqual(['broker-1-0']);
    expect(replicasOf(members, 'broker', 5)).toEqual([]);
  });
});

describe('pickReplica', () => {
  const three = [member('broker', 0, 0), member('broker', 0, 1), member('broker', 0, 2)];

  test('the preferred replica is key % R when it is live', () => {
    for (let key = 0; key < 30; key++) expect(pickReplica(key, 3, three)!.replica).toBe(key % 3);
  });

  test('a dead preferred replica fails over to the next live one in ring order', () => {
    const withoutOne = three.filter((m) => m.replica !== 1);
    expect(pickReplica(1, 3, withoutOne)!.replica).toBe(2);
    expect(pickReplica(4, 3, withoutOne)!.replica).toBe(2);
    const withoutTwo = three.filter((m) => m.replica !== 2);
    expect(pickReplica(2, 3, withoutTwo)!.replica).toBe(0); // wraps around
    expect(pickReplica(5, 3, [three[1]!])!.replica).toBe(1);
  });

  test('every key of a live replica stays put when another replica dies (only the dead one\'s keys move)', () => {
    const withoutZero = three.filter((m) => m.replica !== 0);
    for (let key = 0; key < 300; key++) {
      const before = pickReplica(key, 3, three)!.replica;
      const after = pickReplica(key, 3, withoutZero)!.replica;
      if (before !== 0) expect(after).toBe(before);
      else expect(after).toBe(1);
    }
  });

  test('isUp lets a caller skip a replica whose link is down before the registry notices', () => {
    const downIds = new Set(['broker-0-0']);
    expect(pickReplica(3, 3, three, (m) => !downIds.has(m.id))!.replica).toBe(1);
    expect(pickReplica(3, 3, three, () => false)).toBeUndefined();
  });

  test('no live replica gives undefined', () => {
    expect(pickReplica(4, 3, [])).toBeUndefined();
  });

  test('replicas beyond R (a member of a larger old topology) are never picked', () => {
    const extra = [...three, member('broker', 0, 3)];
    for (let key = 0; key < 30; key++) expect(pickReplica(key, 3, extra)!.replica).toBeLessThan(3);
  });
});

describe('membershipPartitions (a doubling keeps both sides of the flip complete)', () => {
  const base = { splitThreshold: 1000, epoch: 3 } as const;
  const layout = (partitions: number) => ({ broker: { partitions, replicas: 2 }, router: { partitions: 1, replicas: 2 } });
  const stable = { ...base, phase: 'Stable' as const, roles: layout(2) };
  const expanding = { ...base, phase: 'Expanding' as const, roles: layout(2), next: { roles: layout(4) } };
  const switching = { ...base, epoch: 4, phase: 'Switching' as const, roles: layout(4) };
  const after = { ...base, epoch: 4, phase: 'Stable' as const, roles: layout(4) };

  test('is the routed partition alone when no doubling runs', () => {
    for (let room = 1; room < 100; room++) {
      expect(membershipPartitions(room, stable)).toEqual([room % 2]);
      expect(membershipPartitions(room, after)).toEqual([room % 4]);
    }
  });

  test('covers the old and the new partition while Expanding and while Switching', () => {
    for (let room = 1; room < 100; room++) {
      const both = [...new Set([room % 2, room % 4])].sort();
      expect([...membershipPartitions(room, expanding)].sort()).toEqual(both);
      expect([...membershipPartitions(room, switching)].sort()).toEqual(both);
    }
  });

  test('a new partition is known only once a layout has it', () => {
    expect(brokerPartitionKnown(3, stable)).toBe(false);
    expect(brokerPartitionKnown(1, stable)).toBe(true);
    expect(brokerPartitionKnown(3, expanding)).toBe(true);
    expect(brokerPartitionKnown(4, expanding)).toBe(false);
    expect(brokerPartitionKnown(3, after)).toBe(true);
  });
});
