// A gateway in a Deployment has no pod ordinal, yet its Snowflake worker id
// must be unique: it claims the first free ordinal as a registry lease and
// keeps renewing it.
//
// The rule that keeps message ids unique, also under a network partition:
// another gateway can take an ordinal only once its lease has gone unrenewed
// for LEASE_TTL_MS (10 minutes), so a gateway that cannot reach the registry
// keeps its ordinal, and keeps serving its users, for FENCE_MS (9 minutes)
// after its last successful renewal, a minute short of the earliest moment
// another could take it (the minute covers clock skew between nodes); past
// that it stops rather than risk a duplicate id. A renewal that finds another
// holder means the ordinal is no longer this gateway's: it stops at once. The
// price of the long lease: the ordinal of a gateway that died without
// releasing it stays taken for 10 minutes (a pod that restarts in place takes
// its own back, as the holder is the pod's name).
import type { Logger } from '../observability/logger.js';
import type { Registry } from '../registry/registry.js';
import { MAX_ORDINAL } from '../ids/snowflake.js';

export const LEASE_TTL_MS = 600_000;
export const FENCE_MS = 540_000;
const RENEW_MS = 5_000;

export type RenewalVerdict = 'keep' | 'taken' | 'fence';

/**
 * What a gateway does after a renewal attempt: `holder` is who the registry
 * says holds the ordinal (undefined when it could not be asked).
 */
export function renewalVerdict(holder: string | null | undefined, self: string, lastRenewedMs: number, nowMs: number): RenewalVerdict {
  if (holder !== undefined && holder !== self) return 'taken';
  if (holder === self) return 'keep';
  return nowMs - lastRenewedMs >= FENCE_MS ? 'fence' : 'keep';
}

export async function claimOrdinal(registry: Registry, role: string, holder: string, log: Logger): Promise<number> {
  for (let ordinal = 0; ordinal <= MAX_ORDINAL; ordinal++) {
    const name = `${role}-ordinal-${ordinal}`;
    const lease = await registry.acquireLease(name, holder, LEASE_TTL_MS);
    if (lease.holder !== holder) continue;
    let lastRenewedMs = Date.now();
    let renewing = false;
    const act = (seen: string | null | undefined) => {
      const verdict = renewalVerdict(seen, holder, lastRenewedMs, Date.now());
      if (verdict === 'keep') return;
      log.fatal({ ordinal, holder: seen, sinceRenewedMs: Date.now() - lastRenewedMs }, verdict === 'taken'
        ? 'another gateway holds the ordinal; stopping rather than risk duplicate ids'
        : 'could not renew the ordinal lease for too long; stopping before another gateway may take it');
      process.exit(1);
    };
    const renewal = setInterval(() => {
      // Judged by the clock on every tick: a renewal that hangs must not keep the ordinal past the fence.
      act(undefined);
      if (renewing) return;
      renewing = true;
      const attemptMs = Date.now();
      registry.acquireLease(name, holder, LEASE_TTL_MS).then((state) => {
        if (state.holder === holder) lastRenewedMs = attemptMs;
        act(state.holder);
      }, (err: Error) => log.warn({ ordinal, err: err.message }, 'could not renew the ordinal lease; keeping the ordinal'))
        .finally(() => { renewing = false; });
    }, RENEW_MS);
    renewal.unref();
    log.info({ ordinal }, 'claimed an ordinal');
    return ordinal;
  }
  throw new Error(`every ${role} ordinal from 0 to ${MAX_ORDINAL} is taken`);
}
