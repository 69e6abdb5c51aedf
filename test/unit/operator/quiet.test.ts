// What keeps an idle operator from writing: applies skipped while nothing
// changed, member Lease renewals that queue nothing, status written only when
// it differs.
import type { KubernetesObject, V1Lease } from '@kubernetes/client-node';
import { AppliedObjects } from '../../../operator/reconcile/applied.js';
import { memberLeaseChanges } from '../../../operator/reconcile/triggers.js';
import { sameStatus } from '../../../operator/status/status.js';

const desired = (replicas: number): KubernetesObject & { spec: object } =>
  ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', namespace: 'ns' }, spec: { replicas } });
const live = (uid: string, generation: number, resourceVersion: string): KubernetesObject =>
  ({ metadata: { name: 's', namespace: 'ns', uid, generation, resourceVersion } });

test('an object is skipped only while its desired form and its live version are those of the last apply', () => {
  const applied = new AppliedObjects();
  expect(applied.upToDate(desired(2), live('u1', 1, '10'))).toBe(false); // never applied by this process
  applied.record(desired(2), live('u1', 1, '10'));
  expect(applied.upToDate(desired(2), live('u1', 1, '10'))).toBe(true);
  // A controller's status write moves resourceVersion, not generation: still up to date.
  expect(applied.upToDate(desired(2), live('u1', 1, '11'))).toBe(true);
  expect(applied.upToDate(desired(3), live('u1', 1, '10'))).toBe(false); // the spec changed
  expect(applied.upToDate(desired(2), live('u1', 2, '12'))).toBe(false); // someone edited it
  expect(applied.upToDate(desired(2), live('u2', 1, '13'))).toBe(false); // deleted and re-created
  expect(applied.upToDate(desired(2), undefined)).toBe(false); // deleted
  applied.forget(desired(2));
  expect(applied.upToDate(desired(2), live('u1', 1, '10'))).toBe(false);
});

test('objects without a generation (ConfigMaps, RBAC) are stale after any edit', () => {
  const applied = new AppliedObjects();
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'ns' }, data: { a: '1' } };
  applied.record(cm, { metadata: { uid: 'u', resourceVersion: '5' } });
  expect(applied.upToDate(cm, { metadata: { uid: 'u', resourceVersion: '5' } })).toBe(true);
  expect(applied.upToDate(cm, { metadata: { uid: 'u', resourceVersion: '6' } })).toBe(false);
});

const lease = (member: string, renewTime: string): V1Lease => ({
  metadata: { name: 'pod-0', namespace: 'ns', annotations: { 'groupchat.dev/member': member } },
  spec: { renewTime: renewTime as unknown as Date },
});

test('a member Lease matters when it appears, carries another member, or goes; a renewal does not', () => {
  const changes = memberLeaseChanges();
  expect(changes.matters(lease('{"ready":false}', 't1'), true)).toBe(true);
  expect(changes.matters(lease('{"ready":false}', 't2'), true)).toBe(false);
  expect(changes.matters(lease('{"ready":false}', 't3'), true)).toBe(false);
  expect(changes.matters(lease('{"ready":true}', 't4'), true)).toBe(true);
  expect(changes.matters(lease('{"ready":true}', 't4'), false)).toBe(true);
  expect(changes.matters(lease('{"ready":true}', 't4'), false)).toBe(false);
});

test('a status is written only when it differs from the stored one', () => {
  const status = { observedGeneration: 2, epoch: 3, ready: '1/2', roles: { broker: { desired: 2, ready: 1 } } };
  expect(sameStatus(status, undefined)).toBe(false);
  expect(sameStatus(status, JSON.parse(JSON.stringify(status)))).toBe(true);
  // Key order and fields left undefined do not count; values do.
  expect(sameStatus({ ...status, phase: undefined }, { roles: status.roles, ready: '1/2', epoch: 3, observedGeneration: 2 })).toBe(true);
  expect(sameStatus({ ...status, ready: '2/2' }, status)).toBe(false);
});
