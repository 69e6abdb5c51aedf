// RecentIds against a model (a Map in insertion order that forgets its oldest
// key): random sets and gets over a small key space, so probe runs collide,
// wrap around the table and are shifted back on eviction.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { RecentIds } from '../../workloads/collections/recent-ids.js';

type Key = [number, number, number, number];
const keyArb = fc.tuple(fc.nat(2), fc.nat(3), fc.nat(3), fc.nat(40)).map(([r, a, b, c]): Key => [r, a, b * 0x10000000 + 7, c]);
const opArb = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: fc.nat(1000) }),
  fc.record({ op: fc.constant('get' as const), key: keyArb }),
);

describe('RecentIds', () => {
  test('behaves like an insertion-ordered map that evicts its oldest key', () => {
    // initial below capacity: the table grows (and rehashes what it holds, oldest first) as keys arrive.
    fc.assert(fc.property(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 24 }), fc.array(opArb, { maxLength: 400 }), (capacity, initial, ops) => {
      const table = new RecentIds<number>(capacity, initial);
      const model = new Map<string, number>();
      for (const step of ops) {
        const id = step.key.join('/');
        if (step.op === 'set') {
          if (!model.has(id) && model.size === capacity) model.delete(model.keys().next().value!);
          model.set(id, step.value);
          table.set(...step.key, step.value);
        } else {
          expect(table.get(...step.key)).toBe(model.get(id));
        }
        expect(table.size).toBe(model.size);
      }
      for (const [id, value] of model) {
        const [r, a, b, c] = id.split('/').map(Number) as Key;
        expect(table.get(r, a, b, c)).toBe(value);
      }
    }), { numRuns: 2000 });
  });

  test('starts small and doubles as keys arrive, never beyond its capacity', () => {
    const table = new RecentIds<number>(200_000);
    expect(table.allocated).toBe(1024);
    for (let i = 0; i < 5000; i++) table.set(1, 2, 0, i, i);
    expect(table.allocated).toBe(8192);
    for (let i = 5000; i < 300_000; i++) table.set(1, 2, 0, i, i);
    expect({ allocated: table.allocated, size: table.size, oldest: table.get(1, 2, 0, 99_999), newest: table.get(1, 2, 0, 299_999) })
      .toEqual({ allocated: 200_000, size: 200_000, oldest: undefined, newest: 299_999 });
    expect(table.get(1, 2, 0, 100_000)).toBe(100_000);
  });

  test('holds 32-bit words exactly, including the top bit', () => {
    const table = new RecentIds<string>(4);
    table.set(0xfffffff0, 0xffffffff, 0x80000000, 0xfffffffe, 'top');
    table.set(-16, -1, -2147483648, -2, 'same words, signed');
    expect(table.size).toBe(1);
    expect(table.get(0xfffffff0, 0xffffffff, 0x80000000, 0xfffffffe)).toBe('same words, signed');
    expect(table.get(0xfffffff0, 0xffffffff, 0x80000000, 0xffffffff)).toBeUndefined();
    expect(table.get(0xfffffff1, 0xffffffff, 0x80000000, 0xfffffffe)).toBeUndefined(); // another room
  });

  test('refuses a capacity that is not a positive integer', () => {
    expect(() => new RecentIds(0)).toThrow(/positive integer/);
    expect(() => new RecentIds(1.5)).toThrow(/positive integer/);
  });
});
