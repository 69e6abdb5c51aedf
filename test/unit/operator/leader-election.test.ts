// Leader election's rule, by an injected clock: who may write itself into the
// Lease, and what it writes to take, renew and release it.
import { checkTiming, DEFAULT_TIMING, heldRecord, mayHold, releasedRecord } from '../../../operator/reconcile/leader-lease.js';

const T0 = Date.UTC(2026, 0, 1);

test('a candidate takes a Lease that is free, released, its own, or unrenewed for its duration by the candidate\'s clock', () => {
  const held = { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: '2020-01-01T00:00:00.000000Z' };
  expect(mayHold({}, 'b', T0, T0)).toBe(true);
  expect(mayHold(releasedRecord(held, T0), 'b', T0, T0)).toBe(true);
  expect(mayHold(held, 'a', T0, T0)).toBe(true);
  // A renewTime in the distant past says nothing: the holder's clock may be wrong. Only what b observed counts.
  expect(mayHold(held, 'b', T0, T0 + 14_999)).toBe(false);
  expect(mayHold(held, 'b', T0, T0 + 15_000)).toBe(true);
});

test('taking counts a transition and sets acquireTime; renewing moves only renewTime; releasing leaves no holder', () => {
  const created = heldRecord(undefined, 'a', T0, 15_000);
  expect(created).toEqual({
    holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: '2026-01-01T00:00:00.000000Z', renewTime: '2026-01-01T00:00:00.000000Z', leaseTransitions: 0,
  });
  const renewed = heldRecord(created, 'a', T0 + 2000, 15_000);
  expect(renewed).toMatchObject({ acquireTime: created.acquireTime, renewTime: '2026-01-01T00:00:02.000000Z', leaseTransitions: 0 });
  const taken = heldRecord(renewed, 'b', T0 + 20_000, 15_000);
  expect(taken).toMatchObject({ holderIdentity: 'b', acquireTime: '2026-01-01T00:00:20.000000Z', leaseTransitions: 1 });
  const released = releasedRecord(taken, T0 + 21_000);
  expect(released.holderIdentity).toBeUndefined();
  expect(released).toMatchObject({ leaseDurationSeconds: 1, leaseTransitions: 1 });
});

test('timing is checked as client-go checks it', () => {
  expect(() => checkTiming(DEFAULT_TIMING)).not.toThrow();
  expect(() => checkTiming({ ...DEFAULT_TIMING, renewDeadlineMs: 15_000 })).toThrow('the lease duration must be longer than the renew deadline');
  expect(() => checkTiming({ ...DEFAULT_TIMING, retryPeriodMs: 9_000 })).toThrow('the renew deadline must be longer than 1.2 × the retry period');
});
