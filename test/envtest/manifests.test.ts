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
  ['a bad quantity', { ...valid, pi: { partitions: 1, replicas: 1, storage: { size: 'lots' } } }, /spec\.pi\.storage\.size in body should match/],
])('the API server rejects a cluster with %s', async (_, spec, message) => {
  const cr = { apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name: 'bad', namespace: NS }, spec };
  await expect(cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(cr) })).rejects.toThrow(message);
});

test('the API server rejects a cluster name too long to derive object names from', async () => {
  const cr = { apiVersion: 'groupchat.dev/v1alpha1', kind: 'GroupChatCluster', metadata: { name: 'x'.repeat(41), namespace: NS }, spec: valid };
  await expect(cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(cr) }))
    .rejects.toThrow(/the name of a GroupChatCluster can have at most 40 characters/);
});
