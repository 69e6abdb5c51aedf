// A gateway in a Deployment has no pod ordinal, yet its Snowflake worker id
// must be unique: it claims the first free ordinal as a registry lease and
// keeps renewing it. Losing it would risk duplicate message ids, so a process
// that cannot renew stops (its pod restarts and claims again).
import type { Logger } from '../observability/logger.js';
import type { Registry } from '../registry/registry.js';
import { MAX_ORDINAL } from '../ids/snowflake.js';

const LEASE_TTL_MS = 15_000;

export async function claimOrdinal(registry: Registry, role: string, memberId: string, log: Logger): Promise<number> {
  for (let ordinal = 0; ordinal <= MAX_ORDINAL; ordinal++) {
    const name = `${role}-ordinal-${ordinal}`;
    const lease = await registry.acquireLease(name, memberId, LEASE_TTL_MS);
    if (lease.holder !== memberId) continue;
    const renewal = setInterval(() => {
      registry.acquireLease(name, memberId, LEASE_TTL_MS).then((state) => {
        if (state.holder !== memberId) throw new Error(`held by ${state.holder}`);
      }).catch((err: Error) => {
        log.fatal({ ordinal, err: err.message }, 'lost the ordinal lease; stopping rather than risk duplicate ids');
        process.exit(1);
      });
    }, LEASE_TTL_MS / 3);
    renewal.unref();
    log.info({ ordinal }, 'claimed an ordinal');
    return ordinal;
  }
  throw new Error(`every ${role} ordinal from 0 to ${MAX_ORDINAL} is taken`);
}
