// Judging a Lease as client-go's leader election does: by whether this reader
// sees it change, timed by this reader's own clock from the moment it first
// saw the current version, never by the renewTime the holder wrote. The
// holder's clock may be skewed, and right after an outage of the API server
// every renewTime is old at once, although every holder renews as soon as it
// can; a Lease is expired only once this reader has seen it stand still for a
// whole duration.
import type { V1Lease } from '@kubernetes/client-node';

export class LeaseObservations {
  private readonly seen = new Map<string, { version: string; atMs: number }>();

  /** When this reader first saw the Lease as it is now (a renewal is a new version: resourceVersion, else renewTime). */
  observedAt(lease: V1Lease, nowMs: number): number {
    const key = `${lease.metadata?.namespace}/${lease.metadata?.name}`;
    const version = lease.metadata?.resourceVersion ?? String(lease.spec?.renewTime);
    const before = this.seen.get(key);
    if (before?.version === version) return before.atMs;
    this.seen.set(key, { version, atMs: nowMs });
    return nowMs;
  }

  /** Forgets the Leases of `namespace` not in `present` (deleted ones), so the map holds only what is watched. */
  retain(namespace: string, present: readonly V1Lease[]): void {
    const keys = new Set(present.map((l) => `${l.metadata?.namespace}/${l.metadata?.name}`));
    for (const key of this.seen.keys()) if (key.startsWith(`${namespace}/`) && !keys.has(key)) this.seen.delete(key);
  }
}
