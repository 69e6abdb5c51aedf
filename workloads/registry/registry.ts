// The one interface every role uses to find the others: a topology document
// written by the operator and self-registered members with a TTL.
import type { EventEmitter } from 'node:events';
import type { Member, Topology } from './schema.js';

export interface RegistryEvents {
  topology: [Topology];
  members: [Member[]];
}

export interface Registration {
  /** Replaces fields of the registered member (e.g. ready: true). */
  update(patch: Partial<Omit<Member, 'id' | 'role'>>): Promise<void>;
  /** Removes the member now rather than at TTL expiry. */
  close(): Promise<void>;
}

/** Who holds a named lease; term grows by one each time the holder changes. */
export interface LeaseState {
  holder: string | null;
  term: number;
}

export interface Registry extends EventEmitter<RegistryEvents> {
  topology(): Topology;
  members(): Member[];
  register(member: Member): Promise<Registration>;
  /**
   * Takes the lease if it is free or expired, or renews it if holder has it
   * (a Kubernetes Lease in a cluster): a gateway's ordinal.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState>;
  close(): Promise<void>;
}
