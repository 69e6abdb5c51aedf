// Runs containers from the image's OCI archive with runc, the way a kubelet's
// runtime would: the image's layers unpacked into a root file system, the
// image's config (user, env, entrypoint, working directory) under the pod's
// settings, namespaces for pids, IPC, the hostname and mounts, and only the
// mounts given. No network namespace: containers share the host's (loopback)
// network, so tests reach them directly.
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
}

export interface UnpackedImage {
  /** The name and tag the archive carries (`groupchat:0.1.0`). */
  reference: string;
  /** The manifest's digest. */
  digest: string;
  rootfs: string;
  config: ImageConfig;
}

const digestHex = (digest: string) => digest.replace(/^sha256:/, '');

/**
 * Unpacks the image of an OCI archive under `dir` (once per manifest digest:
 * a second call finds it there). Every blob is checked against its digest.
 * The project's images are built in one go and carry no whiteouts.
 */
export function unpackImage(archive: string, dir: string): UnpackedImage {
  const layout = `${dir}/.layout-${process.pid}`;
  mkdirSync(layout, { recursive: true });
  try {
    execFileSync('tar', ['-xf', archive, '-C', layout]);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    if (index.manifests.length !== 1) throw new Error(`${archive}: expected one image, found ${index.manifests.length}`);
    const [entry] = index.manifests;
    const blob = (digest: string) => {
      const data = readFileSync(join(layout, 'blobs', 'sha256', digestHex(digest)));
      const actual = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      if (actual !== digest) throw new Error(`${archive}: blob ${digest} has digest ${actual}`);
      return data;
    };
    const manifest = JSON.parse(blob(entry!.digest).toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const config = JSON.parse(blob(manifest.config.digest).toString()) as { config: ImageConfig };
    const image: UnpackedImage = {
      reference: entry!.annotations?.['org.opencontainers.image.ref.name'] ?? '',
      digest: entry!.digest,
      rootfs: join(dir, digestHex(entry!.digest), 'rootfs'),
      config: config.config,
    };
    if (!existsSync(image.rootfs)) {
      const staging = `${image.rootfs}.${process.pid}`;
      mkdirSync(staging, { recursive: true });
      for (const layer of manifest.layers) {
        blob(layer.digest);
        // As root, tar keeps the recorded owners and modes: files are root's, as in a registry's image.
        execFileSync('tar', ['-xzf', join(layout, 'blobs', 'sha256', digestHex(layer.digest)), '-C', staging, '--numeric-owner']);
      }
      renameSync(staging, image.rootfs);
    }
    return image;
  } finally {
    rmSync(layout, { recursive: true, force: true });
  }
}

export interface Mount {
  destination: string;
  source: string;
  readOnly?: boolean;
}

export interface ContainerOptions {
  /** Unique among the containers of `stateRoot`. */
  id: string;
  /** runc's state directory (`runc --root`): one per user of this module. */
  stateRoot: string;
  /** Where the container's config.json (and, for a writable root, its root file system) go. */
  bundle: string;
  image: UnpackedImage;
  /** The process: the image's entrypoint and cmd unless replaced (Kubernetes' command and args). */
  command?: string[];
  args?: string[];
  /** Added to, and overriding, the image's environment. */
  env?: Record<string, string>;
  /** Default: the image's user. */
  uid?: number;
  gid?: number;
  readOnlyRoot: boolean;
  mounts: Mount[];
  /** Capabilities the process keeps (Docker's default set unless given). */
  capabilities?: string[];
  noNewPrivileges?: boolean;
  hostname: string;
  stdio: StdioOptions;
}

/** What Docker and containerd give a container unless told otherwise. */
export const DEFAULT_CAPABILITIES = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

function imageUser(image: UnpackedImage): { uid: number; gid: number } {
  const [user = '0', group] = (image.config.User ?? '').split(':');
  if (!/^\d+$/.test(user) || (group !== undefined && !/^\d+$/.test(group))) {
    throw new Error(`image ${image.reference}: user "${image.config.User}" is not numeric`);
  }
  return { uid: Number(user), gid: Number(group ?? user) };
}

/** The process's argv, as Kubernetes combines a container's command and args with the image's. */
export function containerArgv(image: UnpackedImage, command?: string[], args?: string[]): string[] {
  const argv = command?.length ? [...command, ...(args ?? [])] : [...(image.config.Entrypoint ?? []), ...(args ?? image.config.Cmd ?? [])];
  if (!argv.length) throw new Error(`image ${image.reference}: no entrypoint, command or args`);
  return argv;
}

/** Starts `runc run` for the container; the child is the container (its exit is the container's, signals are forwarded). */
export function startContainer(o: ContainerOptions): ChildProcess {
  const user = imageUser(o.image);
  const env = new Map<string, string>();
  for (const kv of o.image.config.Env ?? []) env.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1));
  for (const [k, v] of Object.entries(o.env ?? {})) env.set(k, v);
  mkdirSync(o.bundle, { recursive: true });
  let root = o.image.rootfs;
  if (!o.readOnlyRoot) {
    // A writable root is the container's own copy: what it writes stays with it.
    root = join(o.bundle, 'rootfs');
    if (!existsSync(root)) execFileSync('cp', ['-a', o.image.rootfs, root]);
  }
  const caps = o.capabilities ?? DEFAULT_CAPABILITIES;
  const spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: o.uid ?? user.uid, gid: o.gid ?? user.gid },
      args: containerArgv(o.image, o.command, o.args),
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: o.image.config.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: o.noNewPrivileges ?? false,
    },
    root: { path: root, readonly: o.readOnlyRoot },
    hostname: o.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ...o.mounts.map((m) => ({
        destination: m.destination, type: 'bind', source: m.source,
        options: ['rbind', 'rprivate', 'nosuid', 'nodev', ...(m.readOnly ? ['ro'] : [])],
      })),
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
  writeFileSync(join(o.bundle, 'config.json'), JSON.stringify(spec));
  return spawn('runc', ['--root', o.stateRoot, 'run', '--bundle', o.bundle, o.id], { stdio: o.stdio });
}

/** Kills a container's processes outright and removes it, whatever state it is in (synchronous, so it can run at exit). */
export function removeContainer(stateRoot: string, id: string): void {
  try {
    execFileSync('runc', ['--root', stateRoot, 'delete', '--force', id], { stdio: 'ignore' });
  } catch { /* never created, or already gone */ }
}
