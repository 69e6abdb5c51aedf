// The CRD is generated from the zod schema; the checked-in copies must be what
// the generator writes today (run `node scripts/generate-crd.mjs` after a build).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ClusterSpecSchema } from '../../../operator/api/v1alpha1.js';
import { CRD_FILE, customResourceDefinition, customResourceDefinitionYaml } from '../../../operator/api/crd.js';

test.each(['crds', join('helm', 'groupchat', 'crds')])('%s holds the CRD generated from the zod schema', (dir) => {
  const checkedIn = readFileSync(join(dir, CRD_FILE), 'utf8');
  expect(checkedIn).toBe(customResourceDefinitionYaml());
});

test('the zod schema accepts every example, with the defaults the API server applies', () => {
  for (const file of readdirSync('examples').filter((f) => f.endsWith('.yaml'))) {
    const spec = ClusterSpecSchema.parse(parse(readFileSync(join('examples', file), 'utf8')).spec);
    expect(spec.splitThreshold).toBeGreaterThan(0);
  }
});

test('the zod schema rejects what the CRD rejects', () => {
  const valid = { image: 'i', proxy: { replicas: 1 }, gateway: { replicas: 1 }, broker: { partitions: 2, replicas: 1 }, router: { partitions: 1, replicas: 1 } };
  expect(ClusterSpecSchema.safeParse(valid).success).toBe(true);
  const withResources = (resources: object) => ({ ...valid, proxy: { replicas: 1, resources } });
  expect(ClusterSpecSchema.safeParse(withResources({ requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 1, memory: '1024Mi' } })).success).toBe(true);
  for (const bad of [
    { ...valid, broker: { partitions: 6, replicas: 1 } },
    { ...valid, proxy: { replicas: -1 } },
    { ...valid, extra: true },
    { ...valid, pi: { partitions: 1, replicas: 1, storage: { size: '10 gigs' } } },
    { ...valid, image: '   ' },
    { ...valid, gateway: { replicas: 128 } },
    withResources({ requests: { cpu: '-1' } }),
    withResources({ requests: { cpu: -1 } }),
    withResources({ requests: { cpuu: '1' } }),
    withResources({ requests: { memory: '2Gi' }, limits: { memory: '1Gi' } }),
    withResources({ requests: { cpu: '1500m' }, limits: { cpu: 1 } }),
  ]) expect(ClusterSpecSchema.safeParse(bad).success).toBe(false);
});

test('every field has a description, for kubectl explain', () => {
  const missing: string[] = [];
  const walk = (node: any, path: string) => {
    for (const [key, child] of Object.entries<any>(node.properties ?? {})) {
      if (!child.description) missing.push(`${path}.${key}`);
      walk(child, `${path}.${key}`);
    }
    if (node.items) walk(node.items, `${path}[]`);
    if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${path}.*`);
  };
  const schema = customResourceDefinition().spec.versions[0]!.schema.openAPIV3Schema;
  walk(schema.properties.spec, 'spec');
  walk(schema.properties.status, 'status');
  expect(missing).toEqual([]);
});
