// The in-memory registry: one process holds the documents. Members expire
// unless renewed within their TTL, as ephemeral nodes would.
import { EventEmitter } from 'node:events';
import type { LeaseState, Registration, Registry, RegistryEvents } from './registry.js';
import { MemberSchema, TopologySchema, type Member, type Topology } from './schema.js';

export const DEFAULT_MEMBER_TTL_MS = 3000;

interface Entry { member: Member; expiresAt: number }

export class EmbeddedRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private current: Topology;
  private readonly entries = new Map<string, Entry>();
  private readonly leases = new Map<string, { holder: string | null; term: number; expiresAt: number }>();
  private readonly sweeper: NodeJS.Timeout;

  /** now: the clock TTLs are measured by (tests pass their own, and call expire() themselves). */
  constructor(topology: Topology, private readonly ttlMs = DEFAULT_MEMBER_TTL_MS, private readonly now: () => number = Date.now) {
    super();
    this.setMaxListeners(0); // one listener per local child is expected
    this.current = TopologySchema.parse(topology);
    this.sweeper = setInterval(() => this.expire(), Math.max(50, ttlMs / 4));
    this.sweeper.unref();
  }

  topology(): Topology {
    return this.current;
  }

  setTopology(topology: Topology): void {
    this.current = TopologySchema.parse(topology);
    this.emit('topology', this.current);
  }

  members(): Member[] {
    return [...this.entries.values()].map((e) => e.member);
  }

  /** Adds or replaces a member and starts its TTL. */
  put(member: Member): void {
    const parsed = MemberSchema.parse(member);
    this.entries.set(parsed.id, { member: parsed, expiresAt: this.now() + this.ttlMs });
    this.changed();
  }

  renew(id: string): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    entry.expiresAt = this.now() + this.ttlMs;
    return true;
  }

  remove(id: string): void {
    if (this.entries.delete(id)) this.changed();
  }

  async register(member: Member): Promise<Registration> {
    this.put(member);
    const renewal = setInterval(() => this.renew(member.id), this.ttlMs / 3);
    renewal.unref();
    let current = this.entries.get(member.id)!.member;
    return {
      update: async (patch) => {
        current = { ...current, ...patch };
        this.put(current);
      },
      close: async () => {
        clearInterval(renewal);
        this.remove(member.id);
      },
    };
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState> {
    return this.lease(name, holder, ttlMs);
  }

  /** Synchronous form, for the IPC server. */
  lease(name: string, holder: string, ttlMs: number): LeaseState {
    const now = this.now();
    const lease = this.leases.get(name) ?? { holder: null, term: 0, expiresAt: 0 };
    if (lease.holder === holder || lease.holder === null || lease.expiresAt < now) {
      if (lease.holder !== holder) lease.term++;
      lease.holder = holder;
      lease.expiresAt = now + ttlMs;
      this.leases.set(name, lease);
    }
    return { holder: lease.holder, term: lease.term };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Drops every member whose TTL ran out (a timer calls this every quarter TTL). */
  expire(): void {
    const now = this.now();
    let removed = false;
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt < now) {
        this.entries.delete(id);
        removed = true;
      }
    }
    if (removed) this.changed();
  }

  private changed(): void {
    this.emit('members', this.members());
  }
}
