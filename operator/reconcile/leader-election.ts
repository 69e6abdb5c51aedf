// Leader election on a coordination.k8s.io Lease, with client-go's (and so
// controller-runtime's) semantics: a candidate takes the Lease when it is
// free, released, or not renewed for leaseDuration as measured by the
// candidate's own clock from when it last saw the record change (never by
// the holder's clock); the leader renews it every retryPeriod and gives up
// leading when it could not renew for renewDeadline; a leader that stops
// releases it, so a standby takes over after one retryPeriod instead of a
// whole leaseDuration. Races are settled by the API server's optimistic
// concurrency (resourceVersion).
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../workloads/observability/logger.js';
import { microTime } from '../../workloads/registry/kubernetes-objects.js';
import { checkTiming, heldRecord, JITTER, mayHold, releasedRecord, type LeaderElectionTiming, type LeaseRecord } from './leader-lease.js';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  timing: LeaderElectionTiming;
  log: Logger;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed: { record: string; atMs: number } | undefined;
  private lease: V1Lease | undefined;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: LeaderElectorOptions) {
    checkTiming(o.timing);
    this.api = o.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until this candidate leads (resolves true) or stop() is called
   * (false); then `lost` is called once if renewing fails for renewDeadline.
   */
  async campaign(lost: () => void): Promise<boolean> {
    while (!this.stopped && !(await this.tryAcquireOrRenew())) {
      await this.sleep(this.o.timing.retryPeriodMs * (1 + Math.random() * JITTER));
    }
    if (this.stopped) return false;
    this.leading = true;
    this.renewLoop(lost);
    return true;
  }

  /** Stops campaigning or renewing, and releases the Lease if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    if (!this.leading || !this.lease) return;
    this.leading = false;
    const record = releasedRecord(this.lease.spec as LeaseRecord, Date.now());
    await this.api.replaceNamespacedLease({
      name: this.o.name, namespace: this.o.namespace, body: { ...this.lease, spec: record as V1Lease['spec'] },
    }).catch((err) => this.o.log.warn({ err: (err as Error).message }, 'could not release the leader Lease; it expires instead'));
  }

  private renewLoop(lost: () => void): void {
    let lastRenewedMs = Date.now();
    let inFlight = false;
    const tick = () => {
      if (this.stopped) return;
      // Judged by the clock, not by an answer: a request that hangs must not keep a leader leading.
      if (Date.now() - lastRenewedMs > this.o.timing.renewDeadlineMs) {
        this.leading = false;
        this.stopped = true;
        lost();
        return;
      }
      if (!inFlight) {
        inFlight = true;
        void this.tryAcquireOrRenew().then((renewed) => { if (renewed) lastRenewedMs = Date.now(); })
          .finally(() => { inFlight = false; });
      }
      this.timer = setTimeout(tick, this.o.timing.retryPeriodMs);
    };
    this.timer = setTimeout(tick, this.o.timing.retryPeriodMs);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, timing } = this.o;
    const now = Date.now();
    try {
      const current = await this.api.readNamespacedLease({ name, namespace }).catch((err) => {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      });
      if (!current) {
        this.lease = await this.api.createNamespacedLease({
          namespace, body: { metadata: { name, namespace }, spec: heldRecord(undefined, identity, now, timing.leaseDurationMs) as V1Lease['spec'] },
        });
        return true;
      }
      const record = leaseRecord(current);
      const serialized = JSON.stringify(record);
      if (this.observed?.record !== serialized) this.observed = { record: serialized, atMs: now };
      if (!mayHold(record, identity, this.observed.atMs, now)) return false;
      this.lease = await this.api.replaceNamespacedLease({
        name, namespace, body: { ...current, spec: heldRecord(record, identity, now, timing.leaseDurationMs) as V1Lease['spec'] },
      });
      return true;
    } catch (err) {
      // A conflict is another candidate's write winning; anything else is retried the same way.
      this.o.log.debug({ err: (err as Error).message }, 'leader election attempt failed');
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}

/** The record as read: Lease times arrive as Dates from the client; compared and rewritten as MicroTime strings. */
function leaseRecord(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  const time = (t: Date | string | undefined) => (t === undefined ? undefined : microTime(new Date(t)));
  const record: LeaseRecord = {};
  if (spec.holderIdentity) record.holderIdentity = spec.holderIdentity;
  if (spec.leaseDurationSeconds !== undefined) record.leaseDurationSeconds = spec.leaseDurationSeconds;
  const acquire = time(spec.acquireTime as unknown as Date | string | undefined);
  const renew = time(spec.renewTime as unknown as Date | string | undefined);
  if (acquire) record.acquireTime = acquire;
  if (renew) record.renewTime = renew;
  if (spec.leaseTransitions !== undefined) record.leaseTransitions = spec.leaseTransitions;
  return record;
}
