// The image `make image` built (scripts/image/build.mjs): its summary, with the
// archives' paths, for the suites that check it and run it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const IMAGE_DIR = resolve('dist/image');

export interface ImageSummary {
  image: string;
  digest: string;
  id: string;
  created: string;
  revision: string;
  compressedBytes: number;
  uncompressedBytes: number;
  layers: { name: string; digest: string; size: number; diffId: string; uncompressed: number }[];
  archives: { oci: { file: string; bytes: number; sha256: string }; docker: { file: string; bytes: number; sha256: string } };
}

/** The summary in `dir`, its archive paths made absolute. */
export function builtImage(dir = IMAGE_DIR): ImageSummary {
  const summaries = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  if (summaries.length !== 1) throw new Error(`expected one image summary in ${dir}, found ${summaries.length}: run \`make image\``);
  const summary = JSON.parse(readFileSync(join(dir, summaries[0]!), 'utf8')) as ImageSummary;
  for (const kind of ['oci', 'docker'] as const) {
    summary.archives[kind].file = join(dir, summaries[0]!.replace(/\.json$/, `.${kind}.tar`));
  }
  return summary;
}
