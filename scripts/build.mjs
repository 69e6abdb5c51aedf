// Builds dist/: generates the protocol code from the .proto files (the single
// source of the wire types), compiles TypeScript, and copies the assets tsc
// does not handle (generated JS, the chat page).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const bin = (name) => join('node_modules', '.bin', name);
const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'inherit' });
const generated = 'workloads/protocol/generated';

rmSync(generated, { recursive: true, force: true });
mkdirSync(generated, { recursive: true });
for (const name of ['client', 'peer']) {
  const js = join(generated, `${name}.js`);
  run(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '-r', name, '--no-verify', '--no-convert',
    '--no-beautify', '-o', js, `workloads/protocol/${name}.proto`]);
  run(bin('pbts'), ['--no-comments', '-o', join(generated, `${name}.d.ts`), js]);
}
// The browser page decodes with protobufjs' reflection build and this JSON.
run(bin('pbjs'), ['-t', 'json', '-o', join(generated, 'client.json'), 'workloads/protocol/client.proto']);

run(bin('tsc'), ['-p', 'tsconfig.json']);

cpSync(generated, join('dist', generated), { recursive: true });
cpSync('workloads/web/public', 'dist/workloads/web/public', { recursive: true });
