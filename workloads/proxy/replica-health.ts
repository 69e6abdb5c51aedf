// How each broker replica has been answering this proxy: a moving average of
// ack latency and a count of recent failures, with a circuit breaker. A room
// stays on its preferred replica (one replica orders it) while that replica is
// healthy; an open circuit moves its rooms to the next replica in ring order
// until a half-open probe succeeds. So weights decide failover, never spray.

export interface HealthOptions {
  /** Consecutive failures that open the circuit. */
  failuresToOpen: number;
  /** Latency at or above which an ack counts as a failure. */
  slowMs: number;
  /** How long an open circuit stays open before one probe is let through. */
  openMs: number;
  /** Weight of the newest sample in the latency average. */
  alpha: number;
}

export const DEFAULT_HEALTH: HealthOptions = { failuresToOpen: 5, slowMs: 2000, openMs: 2000, alpha: 0.1 };

type State = 'closed' | 'open' | 'half-open';

interface Replica { latencyMs: number; failures: number; state: State; openedAt: number; successes: number; total: number }

export class ReplicaHealth {
  private readonly replicas = new Map<string, Replica>();

  constructor(private readonly options: HealthOptions = DEFAULT_HEALTH, private readonly now: () => number = Date.now) {}

  /** Whether traffic may go to this replica now (a half-open circuit admits one probe). */
  allows(id: string): boolean {
    const r = this.replicas.get(id);
    if (!r || r.state === 'closed') return true;
    if (r.state === 'open' && this.now() - r.openedAt >= this.options.openMs) {
      r.state = 'half-open';
      return true;
    }
    return false;
  }

  success(id: string, latencyMs: number): void {
    const r = this.replica(id);
    r.total++;
    if (latencyMs >= this.options.slowMs) return this.failure(id);
    r.successes++;
    r.latencyMs = r.latencyMs === 0 ? latencyMs : r.latencyMs + this.options.alpha * (latencyMs - r.latencyMs);
    r.failures = 0;
    r.state = 'closed';
  }

  failure(id: string): void {
    const r = this.replica(id);
    r.failures++;
    if (r.state === 'half-open' || r.failures >= this.options.failuresToOpen) {
      if (r.state !== 'open') r.openedAt = this.now();
      r.state = 'open';
    }
  }

  forget(id: string): void {
    this.replicas.delete(id);
  }

  snapshot(): Array<{ id: string; state: State; latencyMs: number; successRate: number }> {
    return [...this.replicas].map(([id, r]) => ({ id, state: r.state, latencyMs: r.latencyMs, successRate: r.total ? r.successes / r.total : 1 }));
  }

  private replica(id: string): Replica {
    let r = this.replicas.get(id);
    if (!r) this.replicas.set(id, (r = { latencyMs: 0, failures: 0, state: 'closed', openedAt: 0, successes: 0, total: 0 }));
    return r;
  }
}
