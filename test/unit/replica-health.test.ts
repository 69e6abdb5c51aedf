import { describe, expect, test } from '@jest/globals';
import { ReplicaHealth } from '../../workloads/proxy/replica-health.js';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('ReplicaHealth', () => {
  const options = { failuresToOpen: 3, slowMs: 100, openMs: 1000, alpha: 0.5 };

  test('a healthy replica stays closed', () => {
    const c = clock();
    const h = new ReplicaHealth(options, c.now);
    for (let i = 0; i < 10; i++) h.success('a', 5);
    expect(h.allows('a')).toBe(true);
    expect(h.snapshot()[0]).toMatchObject({ state: 'closed', successRate: 1 });
  });

  test('consecutive failures open the circuit; a success in between resets the count', () => {
    const h = new ReplicaHealth(options, clock().now);
    h.failure('a'); h.failure('a'); h.success('a', 5); h.failure('a'); h.failure('a');
    expect(h.allows('a')).toBe(true);
    h.failure('a');
    expect(h.allows('a')).toBe(false);
  });

  test('slow acks count as failures', () => {
    const h = new ReplicaHealth(options, clock().now);
    for (let i = 0; i < 3; i++) h.success('a', 150);
    expect(h.allows('a')).toBe(false);
  });

  test('after the open period one probe goes through; its outcome closes or reopens', () => {
    const c = clock();
    const h = new ReplicaHealth(options, c.now);
    for (let i = 0; i < 3; i++) h.failure('a');
    expect(h.allows('a')).toBe(false);
    c.advance(1000);
    expect(h.allows('a')).toBe(true); // half-open
    expect(h.allows('a')).toBe(false); // only one probe
    h.failure('a');
    expect(h.allows('a')).toBe(false);
    c.advance(1000);
    expect(h.allows('a')).toBe(true);
    h.success('a', 5);
    expect(h.allows('a')).toBe(true);
    expect(h.allows('a')).toBe(true);
  });

  test('replicas are independent', () => {
    const h = new ReplicaHealth(options, clock().now);
    for (let i = 0; i < 3; i++) h.failure('a');
    expect(h.allows('a')).toBe(false);
    expect(h.allows('b')).toBe(true);
  });
});
