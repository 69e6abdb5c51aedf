// A real Kubernetes control plane for tests: etcd and kube-apiserver on
// loopback ports with a throw-away data dir, static-token users (an admin and
// whichever identities a test wants to act as), one kubeconfig per user, and
// the project's CRDs installed. No controller-manager runs: tests play the
// controllers' and the pods' part by writing the status and Leases they would.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { runTool } from './tools.js';

const run = promisify(execFile);

export interface User {
  name: string;
  groups?: string[];
}

export interface ControlPlane {
  server: string;
  dir: string;
  /** Path of a kubeconfig that acts as `user` (default: the admin). */
  kubeconfig(user?: string): string;
  kubeConfig(user?: string): KubeConfig;
  /** Runs kubectl as the admin (or `user`); resolves with stdout, rejects with stderr. */
  kubectl(args: string[], options?: { user?: string; input?: string }): Promise<string>;
  /**
   * Stops (SIGSTOP) or continues (SIGCONT) etcd or the API server, as an
   * upgrade or a stall does: connections stay open and nothing answers.
   */
  freeze(component: Component, frozen: boolean): void;
  stop(): Promise<void>;
}

export type Component = 'etcd' | 'kube-apiserver';

const ADMIN = 'admin';

/** The binaries: KUBEBUILDER_ASSETS, or the cache `make envtest` fills. */
async function assets(): Promise<string> {
  const { stdout } = await run('bash', [resolve('scripts/envtest/assets.sh'), '--check']);
  return stdout.trim();
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, child: ChildProcess, log: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}; see ${log}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not come up in ${timeoutMs / 1000}s; see ${log}`);
}

function startProcess(binary: string, args: string[], log: string): ChildProcess {
  const out = createWriteStream(log);
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startControlPlane(users: User[] = []): Promise<ControlPlane> {
  const bin = await assets();
  const dir = mkdtempSync(join(tmpdir(), 'groupchat-envtest-'));
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  // A test run that dies must not leave a control plane behind.
  const killAll = () => { for (const c of children) c.kill('SIGKILL'); };
  process.once('exit', killAll);

  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcdLog = join(dir, 'etcd.log');
  const etcd = startProcess(join(bin, 'etcd'), [
    '--name', 'envtest', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `envtest=http://127.0.0.1:${peerPort}`,
    // A test's data is thrown away: durability only costs time.
    '--unsafe-no-fsync', '--log-level', 'warn',
  ], etcdLog);
  children.push(etcd);
  try {
    await waitFor('etcd', async () => (await fetch(`${etcdUrl}/health`)).ok, etcd, etcdLog);

    // Service account tokens are signed with this key (the API server requires one).
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const tokens = new Map<string, string>();
    const lines = [{ name: ADMIN, groups: ['system:masters'] }, ...users].map((u) => {
      const token = randomBytes(16).toString('hex');
      tokens.set(u.name, token);
      return `${token},${u.name},${u.name},"${(u.groups ?? []).join(',')}"`;
    });
    writeFileSync(join(dir, 'tokens.csv'), `${lines.join('\n')}\n`);

    const server = `https://127.0.0.1:${apiPort}`;
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const apiLog = join(dir, 'kube-apiserver.log');
    const apiserver = startProcess(join(bin, 'kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${apiPort}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
      // Without a serving cert given, the API server makes a self-signed one here.
      `--cert-dir=${certDir}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // No pods run, so nothing needs the token controller this plugin waits for.
      '--disable-admission-plugins=ServiceAccount',
    ], apiLog);
    children.push(apiserver);

    const kubeconfigs = new Map<string, string>();
    const kubeconfig = (user = ADMIN) => {
      const existing = kubeconfigs.get(user);
      if (existing) return existing;
      const token = tokens.get(user);
      if (!token) throw new Error(`no user ${user} in this control plane`);
      const path = join(dir, `kubeconfig-${user.replace(/[^a-z0-9-]/gi, '_')}`);
      const ca = readFileSync(join(certDir, 'apiserver.crt')).toString('base64');
      writeFileSync(path, JSON.stringify({
        apiVersion: 'v1', kind: 'Config', 'current-context': 'envtest',
        clusters: [{ name: 'envtest', cluster: { server, 'certificate-authority-data': ca } }],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: 'envtest', context: { cluster: 'envtest', user, namespace: 'default' } }],
      }, null, 2));
      kubeconfigs.set(user, path);
      return path;
    };
    const kubeConfig = (user?: string) => {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfig(user));
      return kc;
    };
    const kubectl = (args: string[], options: { user?: string; input?: string } = {}) =>
      runTool('kubectl', ['--kubeconfig', kubeconfig(options.user), ...args], options.input);
    await waitFor('kube-apiserver', async () => {
      await kubectl(['get', '--raw', '/readyz']);
      // The bootstrap controller creates the default namespace shortly after /readyz.
      await kubectl(['get', 'namespace', 'default']);
      return true;
    }, apiserver, apiLog);

    await kubectl(['apply', '--server-side', '-f', resolve('crds')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);

    const components: Record<Component, ChildProcess> = { etcd, 'kube-apiserver': apiserver };
    return {
      server, dir, kubeconfig, kubeConfig, kubectl,
      freeze(component, frozen) {
        if (!components[component].kill(frozen ? 'SIGSTOP' : 'SIGCONT')) throw new Error(`${component} is not running`);
      },
      async stop() {
        // A stopped process ignores SIGTERM until it is continued.
        for (const child of children) child.kill('SIGCONT');
        for (const child of [...children].reverse()) await stopProcess(child);
        process.off('exit', killAll);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    killAll();
    throw err;
  }
}
