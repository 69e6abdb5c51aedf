// The systems under test, started by the bench itself on loopback: groupchat
// as `groupchat up` would run it (LocalCluster, every role a process), and the
// peers, each on two server processes (as groupchat has two gateways) sharing
// a redis-server on a free port: Socket.IO with @socket.io/redis-adapter, and
// Centrifugo with its Redis engine.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../local-cluster/launcher.js';
import type { CentrifugoAccess, SystemName } from './common.js';

export interface SystemProcess { role: string; name: string; pid: number }

export interface SystemHandle {
  name: SystemName;
  /** Where users connect: gateways, or Socket.IO servers. */
  userUrls: string[];
  /** Where publishers send: proxies, or Socket.IO servers. */
  publishTargets: string[];
  processes(): SystemProcess[];
  /** The processes users connect to (gateways, Socket.IO servers, Centrifugo nodes), by name, in userUrls' order. */
  userServers: string[];
  /** Centrifugo: what its clients sign tokens with and publish with. */
  access?: CentrifugoAccess;
  /** groupchat: proposal-to-commit latency of the room logs over the run, from the brokers' histograms. */
  commitLatencyMs?(): Promise<{ p50: number; p99: number; max: number; count: number }>;
  stop(): Promise<void>;
}

export interface SystemOptions {
  splitThreshold: number;
  gateways: number;
  /** groupchat's broker partitions (3 replicas each), as `groupchat up --partitions`. */
  partitions: number;
}

export const REDIS_SERVER = process.env.GROUPCHAT_REDIS_SERVER ?? '/usr/bin/redis-server';
/** Built by `make centrifugo` from its Go module (the version is the Makefile's CENTRIFUGO_VERSION). */
export const CENTRIFUGO = process.env.GROUPCHAT_CENTRIFUGO ?? join(homedir(), '.cache/groupchat/centrifugo-v6.9.1/centrifugo');

/** Resident set size of a process in bytes, or 0 if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Proportional set size of a process in bytes, or 0 if it is gone: its
 * private pages plus its share of pages mapped by several processes. Every
 * Node.js process maps the same binary and libraries, which RSS counts whole
 * in each; summed over a system's processes, PSS is what the machine spends.
 */
export function pssBytes(pid: number): number {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const match = /^Pss:\s+(\d+) kB/m.exec(rollup);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) a process has used, in seconds, or 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** The open-files limit of this process (soft, hard), from /proc. */
export function openFilesLimit(): { soft: number; hard: number } {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line!.split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
    return { soft: soft!, hard: hard! };
  } catch {
    return { soft: 1024, hard: 1024 };
  }
}

export async function startGroupchat(o: SystemOptions): Promise<SystemHandle> {
  // Logs and store data of one run: kept when the cluster fails to start (the error names the folder), removed after.
  const logDir = mkdtempSync(join(tmpdir(), 'groupchat-bench-'));
  const cluster = new LocalCluster({
    partitions: o.partitions, replicas: 3, proxies: 2, gateways: o.gateways, routers: 2, splitThreshold: o.splitThreshold,
    host: '127.0.0.1', webPort: 0, logDir, restartDelayMs: 1000,
    entry: fileURLToPath(new URL('../cli/main.js', import.meta.url)),
  });
  let ready: Awaited<ReturnType<LocalCluster['start']>>;
  try {
    ready = await cluster.start();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return {
    name: 'groupchat',
    userUrls: ready.gateways,
    publishTargets: ready.proxies,
    processes: () => cluster.status().processes.flatMap((p) => (p.pid ? [{ role: p.role, name: p.name, pid: p.pid }] : [])),
    userServers: ready.gateways.map((_, i) => `gateway-${i}`),
    commitLatencyMs: async () => {
      const brokers = cluster.registry.members().filter((m) => m.role === 'broker' && m.httpAddress);
      const texts = await Promise.all(brokers.map(async (m) => (await fetch(`http://${m.httpAddress}/metrics`)).text()));
      return histogramPercentiles(texts, 'groupchat_log_commit_seconds');
    },
    stop: async () => {
      await cluster.stop();
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

/**
 * p50, p99 and the largest bucket bound of a Prometheus histogram summed over
 * several processes, in ms: each percentile is the upper bound of the bucket
 * it falls in (what the buckets can tell).
 */
export function histogramPercentiles(texts: string[], name: string): { p50: number; p99: number; max: number; count: number } {
  const buckets = new Map<number, number>();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`).exec(line);
      if (!match) continue;
      const le = match[1] === '+Inf' ? Infinity : Number(match[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(match[2]));
    }
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const count = sorted.length ? sorted[sorted.length - 1]![1] : 0;
  const at = (q: number) => (sorted.find(([, n]) => n >= q * count)?.[0] ?? 0) * 1000;
  return { p50: at(0.5), p99: at(0.99), max: at(1), count };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/** Children of one peer system: killed together if the bench dies, stopped together at the end. */
class PeerChildren {
  private readonly children: ChildProcess[] = [];
  private readonly killAll = () => { for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL'); };
  constructor() { process.once('exit', this.killAll); }
  add<T extends ChildProcess>(child: T): T { this.children.push(child); return child; }
  kill(): void { this.killAll(); process.off('exit', this.killAll); }
  async stop(): Promise<void> {
    await Promise.all(this.children.map(stopChild));
    process.off('exit', this.killAll);
  }
}

/** A redis-server on a free loopback port, without persistence: the peers' broker. */
async function startRedis(children: PeerChildren, peer: string): Promise<{ port: number; process: SystemProcess }> {
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing: run \`make redis\` (Debian's redis-server) for --compare ${peer}`);
  const port = await freePort();
  const redis = children.add(spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitForPort(port, 10_000);
  return { port, process: { role: 'redis', name: 'redis-server', pid: redis.pid! } };
}

export async function startSocketIo(o: SystemOptions): Promise<SystemHandle> {
  const children = new PeerChildren();
  try {
    const redis = await startRedis(children, 'socketio');
    const servers: Array<{ child: ChildProcess; port: number }> = [];
    for (let i = 0; i < o.gateways; i++) {
      const child = children.add(fork(fileURLToPath(new URL('./socketio-server.js', import.meta.url)), ['0', `redis://127.0.0.1:${redis.port}`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (m: { listening: number }) => resolve(m.listening));
        child.once('exit', (code) => reject(new Error(`Socket.IO server exited with ${code}`)));
      });
      servers.push({ child, port });
    }
    const urls = servers.map((s) => `ws://127.0.0.1:${s.port}`);
    return {
      name: 'socketio',
      userUrls: urls,
      publishTargets: urls,
      processes: () => [redis.process, ...servers.map((s, i) => ({ role: 'socketio', name: `socketio-${i}`, pid: s.child.pid! }))],
      userServers: servers.map((_, i) => `socketio-${i}`),
      stop: () => children.stop(),
    };
  } catch (err) {
    children.kill();
    throw err;
  }
}

/**
 * One Centrifugo node's configuration: its Redis engine, connection tokens
 * (HMAC JWT, so each connection is a known user and the personal channels
 * `u#<id>` admit only their user), the server API behind a key, clients
 * allowed to subscribe to room channels, and history, presence and recovery
 * off (messages are fanned out, not stored: what Socket.IO does too). Its
 * anonymous usage reports are off: the bench sends nothing off the machine.
 */
export function centrifugoConfig(name: string, port: number, redisPort: number, access: CentrifugoAccess): Record<string, unknown> {
  return {
    node: { name },
    usage_stats: { disabled: true },
    log: { level: 'warn' },
    http_server: { address: '127.0.0.1', port },
    client: { token: { hmac_secret_key: access.tokenSecret } },
    http_api: { key: access.apiKey },
    engine: { type: 'redis', redis: { address: [`redis://127.0.0.1:${redisPort}`] } },
    channel: {
      without_namespace: {
        allow_subscribe_for_client: true,
        allow_user_limited_channels: true,
        presence: false,
        history_size: 0,
        history_ttl: '0s',
        force_recovery: false,
      },
    },
  };
}

export async function startCentrifugo(o: SystemOptions): Promise<SystemHandle> {
  if (!existsSync(CENTRIFUGO)) throw new Error(`${CENTRIFUGO} is missing: run \`make centrifugo\` (built from its Go module) for --compare centrifugo`);
  const children = new PeerChildren();
  const configDir = mkdtempSync(join(tmpdir(), 'groupchat-bench-centrifugo-'));
  try {
    const redis = await startRedis(children, 'centrifugo');
    const access: CentrifugoAccess = { tokenSecret: randomBytes(32).toString('hex'), apiKey: randomBytes(16).toString('hex') };
    const nodes: Array<{ child: ChildProcess; port: number }> = [];
    for (let i = 0; i < o.gateways; i++) {
      const port = await freePort();
      const config = join(configDir, `node-${i}.json`);
      writeFileSync(config, JSON.stringify(centrifugoConfig(`centrifugo-${i}`, port, redis.port, access), null, 2));
      const child = children.add(spawn(CENTRIFUGO, ['--config', config], { stdio: ['ignore', 'ignore', 'inherit'] }));
      await Promise.race([
        waitForPort(port, 20_000),
        new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`centrifugo node ${i} exited with ${code} (config ${config})`)))),
      ]);
      nodes.push({ child, port });
    }
    return {
      name: 'centrifugo',
      userUrls: nodes.map((n) => `ws://127.0.0.1:${n.port}/connection/websocket`),
      publishTargets: nodes.map((n) => `http://127.0.0.1:${n.port}/api`),
      processes: () => [redis.process, ...nodes.map((n, i) => ({ role: 'centrifugo', name: `centrifugo-${i}`, pid: n.child.pid! }))],
      userServers: nodes.map((_, i) => `centrifugo-${i}`),
      access,
      stop: async () => {
        await children.stop();
        rmSync(configDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    children.kill();
    throw err;
  }
}

async function waitForPort(port: number, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${boundMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const STARTERS: Record<SystemName, (o: SystemOptions) => Promise<SystemHandle>> = {
  groupchat: startGroupchat, socketio: startSocketIo, centrifugo: startCentrifugo,
};

export function startSystem(name: SystemName, o: SystemOptions): Promise<SystemHandle> {
  return STARTERS[name](o);
}
