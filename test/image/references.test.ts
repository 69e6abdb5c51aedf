// The chart and the examples name the image `make image` builds, so that an
// install after loading it pulls nothing; a digest in the values pins it.
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { runTool } from '../envtest/tools.js';
import { builtImage } from '../support/image.js';

const image = builtImage();

async function operatorImage(values: string[] = []): Promise<string> {
  const rendered = parseAllDocuments(await runTool('helm', ['template', 'gc', resolve('helm/groupchat'), ...values]))
    .map((d) => d.toJSON() as { kind?: string; spec?: { template: { spec: { containers: { image: string }[] } } } });
  return rendered.find((o) => o?.kind === 'Deployment')!.spec!.template.spec.containers[0]!.image;
}

test('the chart runs the operator from the image make image builds; image.digest pins it', async () => {
  expect(await operatorImage()).toBe(image.image);
  expect(await operatorImage(['--set', `image.digest=${image.digest}`])).toBe(`${image.image}@${image.digest}`);
  await expect(operatorImage(['--set', 'image.digest=latest'])).rejects.toThrow(/digest/);
});

test('every example cluster runs the image make image builds', () => {
  for (const example of ['examples/small.yaml', 'examples/large.yaml']) {
    expect(parse(readFileSync(resolve(example), 'utf8')).spec.image).toBe(image.image);
  }
});
