// Token buckets keyed by user or room: `rate` tokens a second up to `burst`.
// Idle buckets are dropped by an LRU so memory stays bounded.
import { LRUCache } from 'lru-cache';

export interface BucketLimit {
  rate: number;
  burst: number;
}

export class TokenBuckets<K extends {}> {
  private readonly buckets = new LRUCache<K, { tokens: number; at: number }>({ max: 100_000 });

  constructor(private limit: BucketLimit | null, private readonly now: () => number = Date.now) {}

  setLimit(limit: BucketLimit | null): void {
    this.limit = limit;
  }

  /** Takes one token for key; false means over the limit. */
  take(key: K): boolean {
    if (!this.limit) return true;
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.limit.burst, at: now };
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.rate);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    return allowed;
  }
}

/** The limit for users or rooms from the topology's limits, or null when unlimited. */
export function limitFrom(rate: number | undefined, burst: number | undefined): BucketLimit | null {
  if (!rate) return null;
  return { rate, burst: burst ?? Math.max(1, Math.ceil(rate)) };
}
