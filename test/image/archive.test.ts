// The archives `make image` writes (dist/image): what a registry's tools see
// in them, what is inside and what is not, and that building the same commit
// again gives the same bytes.
import { expect, test } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { builtImage } from '../support/image.js';

const image = builtImage();
const { oci, docker } = image.archives;
const skopeo = (args: string[]) => execFileSync('skopeo', args, { encoding: 'utf8' });
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The paths in one of the image's layers, read from the OCI archive. */
function layerPaths(name: string): string[] {
  const layer = image.layers.find((l) => l.name === name)!;
  const gz = execFileSync('tar', ['-xOf', oci.file, `blobs/sha256/${layer.digest.slice('sha256:'.length)}`], { maxBuffer: 1 << 30 });
  return execFileSync('tar', ['-tz'], { input: gz, maxBuffer: 1 << 28, encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('skopeo reads both archives as one image: numeric non-root user, the entrypoint with the role processes\' Node.js flags, linux/amd64', () => {
  for (const source of [`oci-archive:${oci.file}:${image.image}`, `docker-archive:${docker.file}`]) {
    const config = JSON.parse(skopeo(['inspect', '--config', source]));
    expect({ os: config.os, architecture: config.architecture, user: config.config.User, entrypoint: config.config.Entrypoint }).toEqual({
      os: 'linux', architecture: 'amd64', user: '10001:10001', entrypoint: ['/usr/local/bin/node', '--max-semi-space-size=4', '/app/dist/workloads/cli/main.js'],
    });
    expect(config.rootfs.diff_ids).toEqual(image.layers.map((l) => l.diffId));
  }
  // Found by the name and tag it carries; its digest is what a registry will report.
  expect(JSON.parse(skopeo(['inspect', `oci-archive:${oci.file}:${image.image}`])).Digest).toBe(image.digest);
});

test('skopeo copies either archive, checking every blob on the way', () => {
  const dir = mkdtempSync(join(tmpdir(), 'groupchat-image-copy-'));
  try {
    skopeo(['copy', '-q', `oci-archive:${oci.file}:${image.image}`, `oci:${dir}/from-oci:${image.image}`]);
    skopeo(['copy', '-q', `docker-archive:${docker.file}`, `oci:${dir}/from-docker:${image.image}`]);
    // The OCI archive is copied as it is: the digest survives a push.
    const index = JSON.parse(readFileSync(join(dir, 'from-oci', 'index.json'), 'utf8'));
    expect(index.manifests.map((m: { digest: string }) => m.digest)).toEqual([image.digest]);
    const fromDocker = JSON.parse(skopeo(['inspect', '--config', `oci:${dir}/from-docker:${image.image}`]));
    expect(fromDocker.rootfs.diff_ids).toEqual(image.layers.map((l) => l.diffId));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ctr images import (what kind load image-archive runs) names it as a pod spec naming it resolves', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'groupchat-containerd-'));
  const socket = join(dir, 'containerd.sock');
  writeFileSync(join(dir, 'config.toml'), `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\n[grpc]\n  address = "${socket}"\n`);
  const containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  containerd.stderr.on('data', (d) => { log += d; });
  try {
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      if (Date.now() > deadline || containerd.exitCode !== null) throw new Error(`containerd did not start within 30s:\n${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ctr = (args: string[]) => execFileSync('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], { encoding: 'utf8' });
    ctr(['images', 'import', '--all-platforms', docker.file]);
    // A pod's `groupchat:0.1.0` means the default registry's library/groupchat:0.1.0.
    const names = ctr(['images', 'list', '--quiet']).split('\n').filter(Boolean);
    expect(names.filter((n) => n.endsWith(`/library/${image.image}`))).toHaveLength(1);
  } finally {
    containerd.kill('SIGTERM');
    await new Promise((r) => (containerd.exitCode !== null ? r(null) : containerd.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('production dependencies only, prebuilds for linux-x64 only, no tests; under 80 MB compressed', () => {
  const paths = layerPaths('app');
  const lock = JSON.parse(readFileSync(resolve('package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages).filter(([, p]) => p.dev).map(([path]) => `app/${path}/`);
  expect(devOnly).toEqual(expect.arrayContaining(['app/node_modules/socket.io/', 'app/node_modules/redis/', 'app/node_modules/cli-progress/']));
  expect(paths.filter((p) => devOnly.some((d) => p.startsWith(d)))).toEqual([]);
  expect(paths).toContain('app/node_modules/rocksdb-native/prebuilds/linux-x64/rocksdb-native.node');
  expect([...new Set(paths.map((p) => /\/prebuilds\/([^/]+)\//.exec(p)?.[1]).filter(Boolean))]).toEqual(['linux-x64']);
  expect(paths.filter((p) => p.startsWith('app/dist/test'))).toEqual([]);
  expect(image.compressedBytes).toBeLessThan(80e6);
});

test('a second build of the same commit gives byte-identical archives', () => {
  expect([sha256(oci.file), sha256(docker.file)]).toEqual([oci.sha256, docker.sha256]);
  const out = mkdtempSync(join(tmpdir(), 'groupchat-image-again-'));
  try {
    // From scratch: a new staging tree, so every file has a new time, inode and order on disk.
    execFileSync(process.execPath, [resolve('scripts/image/build.mjs'), '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
    const again = builtImage(out);
    expect({ digest: again.digest, oci: sha256(again.archives.oci.file), docker: sha256(again.archives.docker.file) })
      .toEqual({ digest: image.digest, oci: oci.sha256, docker: docker.sha256 });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
