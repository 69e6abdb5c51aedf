// The rule of leader election on a Lease, pure, as client-go (and so
// controller-runtime) has it: who may write itself into the record it read,
// and what it writes to take, renew and release it. leader-election.ts talks
// to the API server with it.
import { microTime } from '../../workloads/registry/kubernetes-objects.js';

export interface LeaderElectionTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** controller-runtime's defaults. */
export const DEFAULT_TIMING: LeaderElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };
/** client-go waits retryPeriod × (1 + up to this) between attempts to acquire. */
export const JITTER = 0.2;

/** The timing client-go accepts; throws with the reason otherwise. */
export function checkTiming(t: LeaderElectionTiming): void {
  if (t.leaseDurationMs <= t.renewDeadlineMs) throw new Error('the lease duration must be longer than the renew deadline');
  if (t.renewDeadlineMs <= t.retryPeriodMs * (1 + JITTER)) throw new Error('the renew deadline must be longer than 1.2 × the retry period');
}

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/**
 * Whether `identity` may write itself into the record it read: it holds it,
 * nobody does, or the holder has not renewed it for its duration since
 * `observedAtMs` (when this candidate last saw the record change).
 */
export function mayHold(record: LeaseRecord, identity: string, observedAtMs: number, nowMs: number): boolean {
  if (!record.holderIdentity || record.holderIdentity === identity) return true;
  return observedAtMs + (record.leaseDurationSeconds ?? 0) * 1000 <= nowMs;
}

/** The record `identity` writes to take or renew the Lease. */
export function heldRecord(record: LeaseRecord | undefined, identity: string, nowMs: number, leaseDurationMs: number): LeaseRecord {
  const now = microTime(new Date(nowMs));
  const taking = record?.holderIdentity !== identity;
  return {
    holderIdentity: identity,
    leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
    acquireTime: taking || !record?.acquireTime ? now : record.acquireTime,
    renewTime: now,
    leaseTransitions: record === undefined ? 0 : (record.leaseTransitions ?? 0) + (taking ? 1 : 0),
  };
}

/** What a leader that stops writes: nobody holds it, so a standby takes it at once. */
export function releasedRecord(record: LeaseRecord, nowMs: number): LeaseRecord {
  const now = microTime(new Date(nowMs));
  return { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, ...(record.leaseTransitions !== undefined ? { leaseTransitions: record.leaseTransitions } : {}) };
}

