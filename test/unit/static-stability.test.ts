// Static stability, by an injected clock: a registry out of contact with the
// API server expires nobody; back in contact, it gives every Lease a whole
// duration; a gateway keeps its ordinal while no other holder is seen, up to
// the fence.
import { leaseExpired } from '../../workloads/registry/kubernetes-objects.js';
import { ApiContact } from '../../workloads/registry/contact.js';
import { LeaseObservations } from '../../workloads/registry/lease-observations.js';
import { FENCE_MS, LEASE_TTL_MS, renewalVerdict } from '../../workloads/runtime/ordinal.js';

test('contact is a call that succeeded within the window; a failure or a hang ends it, and the next success starts it anew', () => {
  const contact = new ApiContact(6000);
  expect(contact.since(0)).toBeUndefined();
  contact.succeeded(1000);
  contact.succeeded(4000);
  expect(contact.since(9000)).toBe(1000);
  expect(contact.since(10_001)).toBeUndefined(); // the last success is too old: a call hangs
  contact.succeeded(30_000);
  expect(contact.since(30_000)).toBe(30_000);
  contact.failed();
  expect(contact.since(30_001)).toBeUndefined();
  contact.succeeded(31_000);
  expect(contact.since(31_000)).toBe(31_000);
});

test('a Lease expires only for a reader in contact, a whole duration after the later of when it saw it change and the contact\'s start', () => {
  const duration = 10_000;
  expect(leaseExpired(duration, 0, 0, 10_000)).toBe(false);
  expect(leaseExpired(duration, 0, 0, 10_001)).toBe(true);
  // Out of contact: frozen, however long ago it changed.
  expect(leaseExpired(duration, 0, undefined, 600_000)).toBe(false);
  // Back in contact at 120 s after an outage: the member has until 130 s to renew.
  expect(leaseExpired(duration, 0, 120_000, 129_000)).toBe(false);
  expect(leaseExpired(duration, 0, 120_000, 130_001)).toBe(true);
  expect(leaseExpired(duration, 125_000, 120_000, 131_000)).toBe(false);
});

test('a Lease is judged by when this reader saw it change, by its own clock, never by the renewTime its holder wrote', () => {
  const observations = new LeaseObservations();
  // Written by a holder whose clock is an hour behind, or read right after an outage: renewTime is old.
  const lease = (resourceVersion: string) => ({
    metadata: { namespace: 'chat', name: 'chat-broker-0-0', resourceVersion },
    spec: { renewTime: new Date(0) },
  });
  expect(observations.observedAt(lease('7'), 500_000)).toBe(500_000); // first sight counts as a change
  expect(observations.observedAt(lease('7'), 509_000)).toBe(500_000); // standing still
  expect(observations.observedAt(lease('8'), 509_500)).toBe(509_500); // renewed
  observations.retain('chat', []);
  expect(observations.observedAt(lease('8'), 600_000)).toBe(600_000); // forgotten once deleted: seen anew
});

test('a gateway keeps its ordinal through failed renewals, stops when another holds it, and fences itself before it could be taken', () => {
  expect(FENCE_MS).toBeLessThan(LEASE_TTL_MS);
  expect(renewalVerdict('me', 'me', 0, 1000)).toBe('keep');
  expect(renewalVerdict(undefined, 'me', 0, FENCE_MS - 1)).toBe('keep'); // unreachable registry
  expect(renewalVerdict(undefined, 'me', 0, FENCE_MS)).toBe('fence');
  expect(renewalVerdict('other', 'me', 0, 1000)).toBe('taken');
  expect(renewalVerdict(null, 'me', 0, 1000)).toBe('taken'); // released by someone: not ours any more
});
