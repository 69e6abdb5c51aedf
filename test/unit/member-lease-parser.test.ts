// The kubernetes registry's parse of member Leases: a renewal (a new Lease
// object, the same member) gives back the same record, so every pod does not
// re-validate every Lease on every renewal; what the record is made of changing,
// or a Lease turning malformed, is parsed again.
import { expect, test } from '@jest/globals';
import type { V1Lease } from '@kubernetes/client-node';
import { MEMBER_ANNOTATION, MemberLeaseParser, memberLease } from '../../workloads/registry/kubernetes-objects.js';
import type { Member } from '../../workloads/registry/schema.js';

const member = (id: string, ready = false): Member => ({ id, role: 'broker', partition: 0, replica: 0, address: '10.0.0.1:7000', ready });
const lease = (m: Member, renewedAt: Date, durationSeconds = 10): V1Lease =>
  memberLease({ name: m.id, namespace: 'chat', cluster: 'chat', member: m, durationSeconds, renewedAt });

test('a renewed Lease gives the same record; a changed member or duration, a new one; a malformed one, none', () => {
  const parser = new MemberLeaseParser();
  const [a0, b0] = parser.parseAll([lease(member('a'), new Date(1000)), lease(member('b'), new Date(1000))]);
  expect(a0?.member).toEqual(member('a'));
  // Renewed: new Lease objects, later renewTime, same member.
  const [a1, b1] = parser.parseAll([lease(member('a'), new Date(4000)), lease(member('b'), new Date(4000))]);
  expect(a1).toBe(a0);
  expect(b1).toBe(b0);
  // b becomes ready, a changes its duration: both parsed again.
  const [a2, b2] = parser.parseAll([lease(member('a'), new Date(7000), 20), lease(member('b', true), new Date(7000))]);
  expect(a2).not.toBe(a0);
  expect(a2?.durationMs).toBe(20_000);
  expect(b2?.member.ready).toBe(true);
  // A Lease whose annotation is no member is not one, and stays none when renewed.
  const broken = lease(member('b'), new Date(8000));
  broken.metadata!.annotations![MEMBER_ANNOTATION] = '{"id":""}';
  expect(parser.parseAll([broken])).toEqual([undefined]);
  expect(parser.parseAll([{ ...broken, spec: { ...broken.spec, renewTime: new Date(9000) } }])).toEqual([undefined]);
  // Mended, it is parsed afresh, not taken from an older entry.
  expect(parser.parseAll([lease(member('b'), new Date(10_000))])[0]).not.toBe(b2);
});
