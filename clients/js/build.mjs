// Builds @groupchat/client into dist/:
//   generated/   protobuf code from workloads/protocol/client.proto (the one
//                schema; regenerated when it changes, never checked in)
//   node.js      ESM for Node; ws and protobufjs stay dependencies
//   browser.js   ESM for browsers, minified, protobufjs and long inside
//   types/       declarations
// and prints the browser bundle's minified and gzipped size, failing above
// the budget. Uses the repository's devDependencies (esbuild, protobufjs-cli,
// typescript): `make build` runs it.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const proto = join(here, '..', '..', 'workloads', 'protocol', 'client.proto');
const generated = join(here, 'generated');
const dist = join(here, 'dist');
const BUDGET_GZIP_BYTES = 40 * 1024;

const cli = (name) => join(dirname(require.resolve('protobufjs-cli/package.json')), 'bin', name);
const run = (args) => execFileSync(process.execPath, args, { stdio: 'inherit', cwd: here });

const stamp = join(generated, 'client.d.ts');
const newest = Math.max(statSync(proto).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (!existsSync(stamp) || statSync(stamp).mtimeMs < newest) {
  // Generated beside, then swapped in whole, so a concurrent build never reads half a folder.
  const staging = mkdtempSync(join(here, '.generated-'));
  // No verify/convert/delimited code: the client encodes plain objects and decodes whole frames.
  run([cli('pbjs'), '-t', 'static-module', '-w', 'es6', '-r', 'groupchat-client', '--no-verify', '--no-convert',
    '--no-delimited', '--no-beautify', '-o', join(staging, 'client.js'), proto]);
  run([cli('pbts'), '--no-comments', '-o', join(staging, 'client.d.ts'), join(staging, 'client.js')]);
  rmSync(generated, { recursive: true, force: true });
  renameSync(staging, generated);
}

rmSync(dist, { recursive: true, force: true });
run([require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json']);
mkdirSync(join(dist, 'types', 'generated'), { recursive: true });
cpSync(join(generated, 'client.d.ts'), join(dist, 'types', 'generated', 'client.d.ts'));

const version = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).version;
const banner = { js: `// @groupchat/client ${version}, Apache-2.0` };
await build({
  entryPoints: [join(here, 'src', 'node.ts')], outfile: join(dist, 'node.js'),
  bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', banner, logLevel: 'warning',
});
await build({
  entryPoints: [join(here, 'src', 'browser.ts')], outfile: join(dist, 'browser.js'),
  bundle: true, format: 'esm', platform: 'browser', target: 'es2020', minify: true, sourcemap: true, banner, logLevel: 'warning',
  // The browser build must not reach for Node: any node: import is an error here rather than a broken page.
  external: [],
});

const bundle = readFileSync(join(dist, 'browser.js'));
const gzipped = gzipSync(bundle, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const size = { minified: bundle.length, gzipped };
writeFileSync(join(dist, 'size.json'), `${JSON.stringify(size)}\n`);
console.log(`@groupchat/client browser bundle: ${kb(bundle.length)} minified, ${kb(gzipped)} minified+gzipped (budget ${kb(BUDGET_GZIP_BYTES)})`);
if (gzipped > BUDGET_GZIP_BYTES) {
  console.error(`@groupchat/client: the browser bundle is over its budget of ${kb(BUDGET_GZIP_BYTES)} gzipped`);
  process.exit(1);
}
