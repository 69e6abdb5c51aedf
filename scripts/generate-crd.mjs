// Writes the GroupChatCluster CRD, generated from its zod schema, where kubectl
// users (crds/) and the Helm chart (helm/groupchat/crds/) take it from.
// Run after the build: node scripts/generate-crd.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CRD_FILE, customResourceDefinitionYaml } from '../dist/operator/api/crd.js';

const yaml = customResourceDefinitionYaml();
for (const dir of ['crds', join('helm', 'groupchat', 'crds')]) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, CRD_FILE), yaml);
  console.log(`wrote ${join(dir, CRD_FILE)}`);
}
