// The CRD is generated from the zod schema; the checked-in copies must be what
// the generator writes today (run `node scripts/generate-crd.mjs` after a build).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ClusterSpecSchema } from '../../../operator/api/v1alpha1.js';
import { CRD_FILE, customResourceDefinitionYaml } from '../../../operator/api/crd.js';

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
  for (const bad of [
    { ...valid, broker: { partitions: 6, replicas: 1 } },
    { ...valid, proxy: { replicas: -1 } },
    { ...valid, extra: true },
    { ...valid, pi: { partitions: 1, replicas: 1, storage: { size: '10 gigs' } } },
  ]) expect(ClusterSpecSchema.safeParse(bad).success).toBe(false);
});
