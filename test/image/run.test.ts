// `make image-test`: the image, from its archive, run as a pod runs it: in
// runc, as the image's numeric user, with a read-only root file system, no
// capabilities, and nothing writable but the volumes a pod mounts (/tmp and
// the data directory). `groupchat up` inside must answer `ready` with every
// role (pi and xiu open RocksDB), carry a room message and store a direct one.
// GROUPCHAT_IMAGE_DIR runs another build (for example one made with
// `scripts/image/build.mjs --without libatomic1 --out <dir>`, which must fail).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { removeContainer, startContainer, unpackImage, type ContainerOptions, type UnpackedImage } from '../support/container.js';
import { builtImage } from '../support/image.js';
import type { ProcessStatus, Ready } from '../support/cluster.js';

const ROLES = ['broker', 'gateway', 'pi', 'proxy', 'relay', 'router', 'xiu'];
const USER = 10001;

let work: string;
let stateRoot: string;
let image: UnpackedImage;
const started: string[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'groupchat-image-test-'));
  stateRoot = join(work, 'runc');
  image = unpackImage(builtImage(process.env.GROUPCHAT_IMAGE_DIR).archives.oci.file, join(work, 'images'));
}, 120_000);

afterAll(() => {
  for (const id of started) removeContainer(stateRoot, id);
  rmSync(work, { recursive: true, force: true });
});

/** A pod's volume: an empty directory anyone may write, as a kubelet makes an emptyDir. */
function volume(name: string): string {
  const dir = join(work, 'volumes', name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return dir;
}

/** A container as the chart's pods run: read-only root, every capability dropped, no privilege escalation. */
function run(name: string, o: Partial<ContainerOptions>): ChildProcess {
  const id = `image-test-${process.pid}-${name}`;
  started.push(id);
  return startContainer({
    id, stateRoot, bundle: join(work, 'bundles', name), image, hostname: name,
    readOnlyRoot: true, capabilities: [], noNewPrivileges: true, mounts: [], stdio: ['ignore', 'pipe', 'pipe'], ...o,
  });
}

function output(child: ChildProcess): { stdout: () => string; stderr: () => string; exit: Promise<number> } {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  return { stdout: () => stdout, stderr: () => stderr, exit: new Promise((r) => child.once('exit', (code) => r(code ?? -1))) };
}

/** The last lines of every log a process wrote under `dir`: what explains a failure. */
function logTails(dir: string): string {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.log')) files.push(full);
    }
  };
  if (existsSync(dir)) walk(dir);
  return files.map((f) => `--- ${f.slice(dir.length + 1)}\n${readFileSync(f, 'utf8').split('\n').slice(-6).join('\n')}`).join('\n');
}

function within<T>(ms: number, what: string, promise: Promise<T>, explain: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}\n${explain()}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test('groupchat up in the image: ready with every role, a room message delivered, a direct message stored', async () => {
  const tmp = volume('tmp');
  const data = volume('data');
  const child = run('up', {
    args: ['up', '--web-port', '0', '--data-dir', '/var/lib/groupchat'],
    mounts: [{ destination: '/tmp', source: tmp }, { destination: '/var/lib/groupchat', source: data }],
  });
  const out = output(child);
  const explain = () => `container stderr:\n${out.stderr().slice(-2000)}\nprocess logs:\n${logTails(tmp)}`;
  try {
    const ready = await within(120_000, 'the ready line of groupchat up', new Promise<Ready>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith('ready ')) resolve(JSON.parse(line.slice('ready '.length)) as Ready);
      });
      void out.exit.then((code) => reject(new Error(`groupchat up exited with ${code}\n${explain()}`)));
    }), explain);

    const processes = ((await (await fetch(new URL('/cluster.json', ready.web))).json()) as { processes: ProcessStatus[] }).processes;
    expect([...new Set(processes.map((p) => p.role))].sort()).toEqual(ROLES);
    expect(processes.filter((p) => !p.member?.ready || p.restarts > 0).map((p) => p.name)).toEqual([]);

    const alice = await ChatClient.connect(ready.gateways[0]!);
    const bob = await ChatClient.connect(ready.gateways.at(-1)!);
    try {
      await alice.login(1001, 'alice');
      await bob.login(1002, 'bob');
      await alice.join(7);
      await bob.join(7);
      const received = new Promise<string>((resolve) => bob.on('message', (d) => resolve(Buffer.from(d.payload).toString())));
      await alice.send(7, Buffer.from('hello from the image'));
      expect(await within(10_000, 'bob to receive the room message', received)).toBe('hello from the image');
      // Acknowledged only once pi and xiu have it in RocksDB.
      await within(10_000, 'the direct message to be stored', alice.direct(1002, Buffer.from('psst')), explain);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
    // RocksDB wrote into the data volume, as the image's user.
    const owners = new Set(readdirSync(data, { recursive: true }).map((f) => statSync(join(data, String(f))).uid));
    expect([...owners]).toEqual([USER]);
  } finally {
    child.kill('SIGTERM');
    await within(30_000, 'groupchat up to stop', out.exit, explain);
  }
}, 240_000);

test('nothing outside the volumes is writable', async () => {
  const out = output(run('write', { command: ['/usr/local/bin/node', '-e', "require('fs').writeFileSync('/app/scratch', 'x')"] }));
  expect(await within(30_000, 'the writer to exit', out.exit)).not.toBe(0);
  expect(out.stderr()).toMatch(/EROFS: read-only file system/);
});

test('groupchat bench in the image says it needs the development dependencies', async () => {
  const out = output(run('bench', { args: ['bench', '--scenario', 'fanout', '--duration', '1'], mounts: [{ destination: '/tmp', source: volume('bench-tmp') }] }));
  expect(await within(30_000, 'bench to exit', out.exit)).toBe(2);
  expect(out.stderr()).toMatch(/groupchat bench needs the development dependencies \(.*Cannot find package '[^']+'.*\): run it from a checkout/);
});
