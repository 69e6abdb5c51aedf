// Issue 4, acceptance 4: the API server accepts every example and everything
// the chart renders, the chart lints strictly, and the CRD's schema rejects
// invalid clusters with a message that says what is wrong.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { runTool } from './tools.js';

const NS = 'manifests';
let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
  for (const ns of [NS, 'groupchat-system', 'chat']) await cp.kubectl(['create', 'namespace', ns]);
});

afterAll(async () => {
  await cp?.stop();
});

const examples = readdirSync('examples').filter((f) => f.endsWith('.yaml'));

test.each(examples)('the API server accepts examples/%s', async (file) => {
  const out = await cp.kubectl(['apply', '--dry-run=server', '-n', NS, '-f', join('examples', file)]);
  expect(out).toMatch(/groupchatcluster\.groupchat\.dev\/\S+ created \(server dry run\)/);
});

test.each([
  ['default values', []],
  ['one watched namespace', ['--set', 'watchNamespace=chat']],
])('the API server accepts everything helm template renders (%s)', async (_, args) => {
  const rendered = await runTool('helm', ['template', 'gc', 'helm/groupchat', '--namespace', 'groupchat-system', '--include-crds', ...args]);
  // Every rendered object names its namespace.
  const out = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rendered });
  for (const kind of ['customresourcedefinition', 'serviceaccount', 'deployment.apps']) expect(out).toContain(kind);
  expect(out).toMatch(/(cluster)?rolebinding\.rbac\.authorization\.k8s\.io\/gc-groupchat created \(server dry run\)/);
});

test('the chart runs two operators with a disruption budget, and renders a ServiceMonitor only when asked', async () => {
  const rendered = await runTool('helm', ['template', 'gc', 'helm/groupchat', '--namespace', 'groupchat-system']);
  expect(rendered).toMatch(/kind: Deployment[\s\S]*replicas: 2/);
  expect(rendered).toContain('kind: PodDisruptionBudget');
  expect(rendered).not.toContain('kind: ServiceMonitor');
  const monitored = await runTool('helm', ['template', 'gc', 'helm/groupchat', '--namespace', 'groupchat-system', '--set', 'serviceMonitor.enabled=true']);
  expect(monitored).toMatch(/kind: ServiceMonitor[\s\S]*path: \/metrics/);
});

test('helm lint --strict passes, and values.schema.json rejects unknown keys', async () => {
  expect(await runTool('helm', ['lint', '--strict', 'helm/groupchat'])).toContain('0 chart(s) failed');
  await expect(runTool('helm', ['template', 'gc', 'helm/groupchat', '--set', 'replicaCount=2']))
    .rejects.toThrow(/additional properties 'replicaCount' not allowed/);
  await expect(runTool('helm', ['template', 'gc', 'helm/groupchat', '--set', 'image.tagg=x']))
    .rejects.toThrow(/additional properties 'tagg' not allowed/);
});

const valid = {
  image: 'groupchat:0.1.0',
  proxy: { replicas: 1 }, gateway: { replicas: 1 },
  broker: { partitions: 2, replicas: 2 }, router: { partitions: 1, replicas: 1 },
};

test.each([
  ['negative replicas', { ...valid, gateway: { replicas: -1 } }, /spec\.gateway\.replicas: Invalid value: -1: spec\.gateway\.replicas in body should be greater than or equal to 0/],
  ['no broker replicas', { ...valid, broker: { partitions: 2, replicas: 0 } }, /spec\.broker\.replicas in body should be greater than or equal to 1/],
  ['partitions not a power of two', { ...valid, broker: { partitions: 3, replicas: 2 } }, /spec\.broker\.partitions: Invalid value: "integer": partitions must be a power of two from 1 to 1024/],
  ['an unknown field', { ...valid, brokers: { partitions: 2 } }, /unknown field "spec\.brokers"/],
  ['an unknown nested field', { ...valid, router: { partitions: 1, replicas: 1, partition: 1 } }, /unknown field "spec\.router\.partition"/],
  ['a missing image', { ...valid, image: undefined }, /spec\.image: Required value/],
  ['a bad quantity', { ...valid, pi: { partitions: 1, replicas: 1, storage: { size: 'lots' } } }, /spec\.pi\.storage\.size: Invalid value: "": must be a non-negative quantity such as 500m, 2 or 1Gi/],
  ['a negative quantity', { ...valid, proxy: { replicas: 1, resources: { requests: { cpu: '-1' } } } }, /spec\.proxy\.resources\.requests\[cpu\]: Invalid value: "": must be a non-negative quantity/],
  ['a negative integer quantity', { ...valid, proxy: { replicas: 1, resources: { limits: { memory: -1 } } } }, /spec\.proxy\.resources\.limits\[memory\]: Invalid value: "": must be a non-negative quantity/],
  ['requests above limits', { ...valid, broker: { partitions: 2, replicas: 2, resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '1500m', memory: '1Gi' } } } }, /spec\.broker\.resources: Invalid value: "object": the cpu request must not be above the cpu limit/],
  ['an unknown resource name', { ...valid, router: { partitions: 1, replicas: 1, resources: { requests: { cpuu: '1' } } } }, /spec\.router\.resources\.requests: Invalid value: "object": resource names are cpu, memory, ephemeral-storage/],
  ['a blank image', { ...valid, image: '   ' }, /spec\.image: Invalid value: "string": image must be an image reference such as registry\.example\/groupchat:1\.0, without blanks/],
  ['more gateways than ordinals', { ...valid, gateway: { replicas: 129 } }, /spec\.gateway\.replicas: Invalid value: "integer": gateway replicas must be at most 127/],
])('the API server rejects a cluster with %s', async (_, spec, message) => {
  const cr = { apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name: 'bad', namespace: NS }, spec };
  await expect(cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(cr) })).rejects.toThrow(message);
});

test.each([
  ['too long to derive object names from', 'x'.repeat(41), /the name of a GroupChatCluster can have at most 40 characters/],
  ['starting with a digit', '9lives', /the name of a GroupChatCluster must start with a lower-case letter/],
  ['with a dot', 'chat.v2', /the name of a GroupChatCluster must start with a lower-case letter and hold only lower-case letters, digits and '-'/],
])('the API server rejects a cluster name %s', async (_, name, message) => {
  const cr = { apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name, namespace: NS }, spec: valid };
  await expect(cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(cr) })).rejects.toThrow(message);
});

describe('changes the API server refuses, judged against the stored spec', () => {
  const stored = { ...valid, broker: { partitions: 4, replicas: 2 }, pi: { partitions: 2, replicas: 2, storage: { size: '1Gi' } }, xiu: { partitions: 2, replicas: 2, storage: { size: '1Gi' } } };
  const apply = (name: string, spec: object) => cp.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'],
    { input: JSON.stringify({ apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name, namespace: NS }, spec }) });

  test.each([
    ['halving partitions', 'halve', { ...stored, broker: { partitions: 2, replicas: 2 } }, /broker partitions can only stay as they are or double, one doubling at a time/],
    ['more than one doubling', 'quadruple', { ...stored, router: { partitions: 4, replicas: 1 } }, /router partitions can only stay as they are or double, one doubling at a time/],
    ['pi partitions changed', 'pi-double', { ...stored, pi: { ...stored.pi, partitions: 4 } }, /pi partitions cannot change: its data is placed by partition and is not moved/],
    ['xiu removed without the opt-in', 'xiu-gone', { ...stored, xiu: undefined }, /removing xiu leaves its stored messages behind: set spec.allowStoreRemoval to true to remove it anyway/],
  ])('%s', async (_, name, change, message) => {
    await apply(name, stored);
    await expect(apply(name, change)).rejects.toThrow(message);
  });

  test('a doubling, and removing pi with the opt-in, are accepted', async () => {
    await apply('allowed', stored);
    await apply('allowed', { ...stored, broker: { partitions: 8, replicas: 2 }, router: { partitions: 2, replicas: 1 } });
    await apply('allowed', { ...stored, broker: { partitions: 8, replicas: 2 }, router: { partitions: 2, replicas: 1 }, pi: undefined, allowStoreRemoval: true });
  });
});
