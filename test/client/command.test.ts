// The repository as a package: `npm pack` of it installed with `npm install -g`
// into a temporary prefix gives the `groupchat` command (Node 24 first on PATH)
// and `import { Publisher } from 'groupchat'` for a backend, which publishes
// into a real cluster's room; and the `./groupchat` launcher of a checkout runs
// every command, each with complete help.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CLIENT_PROTOCOL_VERSION, PEER_PROTOCOL_VERSION } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { npm, pack } from '../support/client-package.js';

const run = promisify(execFile);
const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
/** Node 24 (the one running the tests) first on PATH, as for a user who installed it. */
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };

let root: string;
let prefix: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'groupchat-pkg-'));
  prefix = join(root, 'global');
  const tarball = pack(resolve('.'), root);
  npm(['install', '--global', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--omit=dev', tarball], root);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Every command `groupchat --help` lists, and what each one's help must say. */
async function checkHelp(groupchat: string[]): Promise<void> {
  const { stdout: top } = await run(groupchat[0]!, [...groupchat.slice(1), '--help'], { env });
  const commands = [...top.matchAll(/^ {2}([a-z]+)(?: \[[a-z]+\])* {2,}\S/gm)].map((m) => m[1]!);
  expect(commands).toEqual(expect.arrayContaining(['up', 'token', 'version', 'gateway', 'broker', 'operator', 'bench']));
  for (const command of commands.filter((c) => c !== 'help')) {
    const { stdout } = await run(groupchat[0]!, [...groupchat.slice(1), command, '--help'], { env });
    expect(stdout).toContain(`Usage: groupchat ${command}`);
    // A description under the usage line, and one for every option (commander prints an option with none on its own).
    expect(stdout.split('\n')[2]!.trim().length).toBeGreaterThan(10);
    for (const line of stdout.split('\n').filter((l) => /^ {2}-/.test(l))) expect(line).toMatch(/^ {2}-\S.*\S {2,}\S/);
  }
}

describe('the groupchat command', () => {
  test('installed with npm install -g from the tarball: version, and every command\'s help', async () => {
    const bin = join(prefix, 'bin', 'groupchat');
    const { stdout } = await run(bin, ['version'], { env });
    expect(stdout).toBe(`groupchat ${VERSION}\nuser protocol ${CLIENT_PROTOCOL_VERSION} (docs/protocol.md)\npeer protocol ${PEER_PROTOCOL_VERSION}\n`);
    expect((await run(bin, ['--version'], { env })).stdout.trim()).toBe(`groupchat ${VERSION}`);
    await checkHelp([bin]);
  });

  test('./groupchat in the checkout runs the build with the project\'s Node 24', async () => {
    const launcher = resolve('groupchat');
    expect((await run(launcher, ['version'])).stdout).toContain(`groupchat ${VERSION}`);
    await checkHelp([launcher]);
    // Without the Node it needs, it says what to do instead of failing obscurely.
    const missing = run(launcher, ['version'], { env: { ...process.env, GROUPCHAT_NODE: join(root, 'no-node') } });
    await expect(missing).rejects.toMatchObject({ code: 127, stderr: expect.stringContaining('make build') });
  });
});

describe('import { Publisher } from \'groupchat\'', () => {
  let cluster: LocalClusterHandle;
  beforeAll(async () => {
    cluster = await startLocalCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  test('a backend using the installed package publishes into a room', async () => {
    const backend = join(root, 'backend');
    mkdirSync(backend);
    // The backend's dependencies are the globally installed package, as `npm link groupchat` would give it.
    symlinkSync(join(prefix, 'lib', 'node_modules'), join(backend, 'node_modules'));
    writeFileSync(join(backend, 'package.json'), JSON.stringify({ name: 'backend', private: true, type: 'module' }));
    writeFileSync(join(backend, 'publish.mjs'), `
      import { Publisher, workerIdFor } from 'groupchat';
      const publisher = new Publisher({ proxies: JSON.parse(process.argv[2]), workerId: workerIdFor('client', 3) });
      const { messageId } = await publisher.publish({ roomId: 61, payload: Buffer.from('deploy finished') });
      publisher.close();
      console.log(messageId.toString());
    `);
    writeFileSync(join(backend, 'check.ts'), `
      import { Publisher, PublishError, type PublishResult } from 'groupchat';
      export async function main(proxies: string[]): Promise<string> {
        const publisher = new Publisher({ proxies, workerId: 1 });
        try {
          const result: PublishResult = await publisher.publish({ roomId: 1, payload: new Uint8Array(1), critical: true });
          return result.messageId.toString();
        } catch (err) {
          return err instanceof PublishError ? err.status : 'other';
        }
      }
    `);
    writeFileSync(join(backend, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', skipLibCheck: true, types: [], typeRoots: [resolve('node_modules/@types')] },
      files: ['check.ts'],
    }));
    const member = await ChatClient.connect(cluster.ready.gateways[0]!);
    try {
      const got: string[] = [];
      member.on('message', (d) => got.push(`${d.messageId.toString()} ${Buffer.from(d.payload).toString()}`));
      await member.login(6101);
      await member.join(61);
      const { stdout } = await run(process.execPath, ['publish.mjs', JSON.stringify(cluster.ready.proxies)], { cwd: backend, env, timeout: 60_000 });
      await eventually(() => got.length > 0, 'the published message at the member');
      expect(got).toEqual([`${stdout.trim()} deploy finished`]);
      // Its types too: a TypeScript backend compiles against the installed package.
      await run(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', backend], { timeout: 90_000 });
    } finally {
      await member.close();
    }
  });
});
