// Builds dist/: generates the protocol code from the .proto files (the single
// source of the wire types) when they changed, builds the client package
// (clients/js), compiles TypeScript, and copies the assets tsc does not handle
// (generated JS, the chat page and the client's browser bundle it loads).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const bin = (name) => join('node_modules', '.bin', name);
const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'inherit' });
const protocol = 'workloads/protocol';
const generated = join(protocol, 'generated');
const protos = ['client', 'peer'];

// protobufjs makes a oneof's name an accessor: every decode runs its setter,
// which deletes each other member of the oneof, and every read runs
// Object.keys(). A plain slot holds the same value (decode sets it once per
// member it meets) at no cost; encode never reads it. Where decode names a
// member, it first clears the member named before, as the setter did: bytes
// that carry two members of a oneof decode to the last one alone (protobuf's
// rule), never to one named and another still set. Except in the decoders
// named in keepBoth: a ClientFrame with two bodies is refused at the gateway
// (client-frame-rules.ts), which needs to see both.
function plainOneofs(file, keepBoth = []) {
  const accessor = /\$Object\.defineProperty\((\w+)\.prototype, "(\w+)", \{\s*get: \$util\.oneOfGetter\(\$oneOfFields = \[[^\]]*\]\),\s*set: \$util\.oneOfSetter\(\$oneOfFields\)\s*\}\);/g;
  const source = readFileSync(file, 'utf8');
  const oneofs = new Set([...source.matchAll(accessor)].map((m) => m[2]));
  let plain = source.replace(accessor, '$1.prototype.$2 = $undefined;');
  if (plain === source) throw new Error(`${file}: no oneof accessor found to replace; has protobufjs' output changed?`);
  for (const name of oneofs) {
    // Where the kept decoders are in the text as it is now (each replacement lengthens it).
    const kept = keepBoth.map((type) => {
      const start = plain.indexOf(`${type}.decode = function`);
      const end = plain.indexOf(`${type}.decodeDelimited = function`, start);
      if (start < 0 || end < 0) throw new Error(`${file}: no decoder of ${type} found; has protobufjs' output changed?`);
      return [start, end];
    });
    const inKept = (offset) => kept.some(([start, end]) => offset >= start && offset < end);
    const naming = new RegExp(`(\\w+)\\.${name} = "(\\w+)";`, 'g');
    const cleared = plain.replace(naming, (whole, m, member, offset) => (inKept(offset) ? whole
      : `if (${m}.${name} !== $undefined && ${m}.${name} !== "${member}") ${m}[${m}.${name}] = null; ${m}.${name} = "${member}";`));
    if (cleared === plain) throw new Error(`${file}: decode never names a member of oneof ${name}; has protobufjs' output changed?`);
    plain = cleared;
  }
  writeFileSync(file, plain);
}

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
    plainOneofs(js, name === 'client' ? ['ClientFrame'] : []);
  }
  // The browser page decodes with protobufjs' reflection build and this JSON.
  run(bin('pbjs'), ['-t', 'json', '-o', join(staging, 'client.json'), join(protocol, 'client.proto')]);
  rmSync(generated, { recursive: true, force: true });
  renameSync(staging, generated);
}

// The client package first: the repository compiles its source too (workloads/sdk/chat-client.ts
// re-exports it), which needs its generated protocol code, and the chat page serves its browser bundle.
run(process.execPath, ['clients/js/build.mjs']);

run(bin('tsc'), ['-p', 'tsconfig.json']);
// Declarations for the package's entry (what `import … from 'groupchat'` gives a backend) and what it reaches.
run(bin('tsc'), ['-p', 'tsconfig.entry.json']);

cpSync(generated, join('dist', generated), { recursive: true });
cpSync('clients/js/generated', 'dist/clients/js/generated', { recursive: true });
cpSync('workloads/web/public', 'dist/workloads/web/public', { recursive: true });
for (const file of ['browser.js', 'browser.js.map']) cpSync(join('clients/js/dist', file), join('dist/workloads/web/public/client', file));
