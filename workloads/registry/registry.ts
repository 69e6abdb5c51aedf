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

export interface Registry extends EventEmitter<RegistryEvents> {
  topology(): Topology;
  members(): Member[];
  register(member: Member): Promise<Registration>;
  close(): Promise<void>;
}
