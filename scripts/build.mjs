// Builds dist/: generates the protocol code from the .proto files (the single
// source of the wire types) when they changed, compiles TypeScript, and copies
// the assets tsc does not handle (generated JS, the chat page).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const bin = (name) => join('node_modules', '.bin', name);
const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'inherit' });
const protocol = 'workloads/protocol';
const generated = join(protocol, 'generated');
const protos = ['client', 'peer'];

const newest = Math.max(...protos.map((p) => statSync(join(protocol, `${p}.proto`)).mtimeMs), statSync('scripts/build.mjs').mtimeMs);
const stamp = join(generated, 'peer.d.ts');
if (!existsSync(stamp) || statSync(stamp).mtimeMs < newest) {
  // Generate beside, then swap in whole, so a concurrent build never sees a half-written folder.
  const staging = mkdtempSync(join(protocol, '.generated-'));
  for (const name of protos) {
    const js = join(staging, `${name}.js`);
    run(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '-r', name, '--no-verify', '--no-convert',
      '--no-beautify', '-o', js, join(protocol, `${name}.proto`)]);
    run(bin('pbts'), ['--no-comments', '-o', join(staging, `${name}.d.ts`), js]);
  }
  // The browser page decodes with protobufjs' reflection build and this JSON.
  run(bin('pbjs'), ['-t', 'json', '-o', join(staging, 'client.json'), join(protocol, 'client.proto')]);
  rmSync(generated, { recursive: true, force: true });
  renameSync(staging, generated);
}

run(bin('tsc'), ['-p', 'tsconfig.json']);

cpSync(generated, join('dist', generated), { recursive: true });
cpSync('workloads/web/public', 'dist/workloads/web/public', { recursive: true });
