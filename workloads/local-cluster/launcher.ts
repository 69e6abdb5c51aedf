// `groupchat up`: the whole system on one machine as child processes, with
// the embedded registry held here and reached by the children over IPC. Like
// a kubelet, it restarts a child that dies; unlike one, it stops everything
// when it is stopped, and a child whose launcher vanished stops itself.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedRegistry } from '../registry/embedded.js';
import { serveRegistryOverIpc } from '../registry/ipc.js';
import { defaultTopology, type Member, type Role, type Topology } from '../registry/schema.js';
import { ROLE_NODE_FLAGS } from '../runtime/node-flags.js';
import { serveChatPage, type WebServer } from '../web/server.js';

export interface LocalClusterOptions {
  partitions: number;
  replicas: number;
  proxies: number;
  gateways: number;
  routers: number;
  /** Partitions of pi and xiu (default 1), and replicas of each: leader + followers (default 2). */
  storePartitions?: number;
  storeReplicas?: number;
  /** Relay partitions (default 1). */
  relays?: number;
  splitThreshold: number;
  host: string;
  webPort: number;
  logDir: string;
  /** RocksDB data of brokers, pi and xiu, one folder per process; survives restarts (default <logDir>/data). */
  dataDir?: string;
  restartDelayMs: number;
  /** HS256 key file for login tokens; unset: gateways accept any login. */
  authKeyFile?: string;
  /** File with the secret every peer link must present; unset: links are not authenticated. */
  peerSecretFile?: string;
  /** Message rate limits, written into the topology. */
  limits?: Topology['limits'];
  /** Room history retention and fsync policy, written into the topology. */
  history?: Topology['history'];
  /** The CLI entry point the children run. */
  entry: string;
}

export interface ProcessSpec {
  name: string;
  role: Role;
  partition: number;
  replica: number;
  ordinal: number;
}

interface Running { spec: ProcessSpec; child: ChildProcess; restarts: number }

type Sizes = Required<Pick<LocalClusterOptions, 'partitions' | 'replicas' | 'proxies' | 'gateways' | 'routers' | 'storePartitions' | 'storeReplicas' | 'relays'>>;

export function planProcesses(o: Sizes): ProcessSpec[] {
  const specs: ProcessSpec[] = [];
  for (let r = 0; r < o.routers; r++) specs.push({ name: `router-0-${r}`, role: 'router', partition: 0, replica: r, ordinal: r });
  for (let p = 0; p < o.partitions; p++) {
    for (let r = 0; r < o.replicas; r++) {
      specs.push({ name: `broker-${p}-${r}`, role: 'broker', partition: p, replica: r, ordinal: p * o.replicas + r });
    }
  }
  for (let i = 0; i < o.proxies; i++) specs.push({ name: `proxy-${i}`, role: 'proxy', partition: 0, replica: i, ordinal: i });
  for (let i = 0; i < o.gateways; i++) specs.push({ name: `gateway-${i}`, role: 'gateway', partition: 0, replica: i, ordinal: i });
  for (const role of ['pi', 'xiu'] as const) {
    for (let p = 0; p < o.storePartitions; p++) {
      for (let r = 0; r < o.storeReplicas; r++) {
        specs.push({ name: `${role}-${p}-${r}`, role, partition: p, replica: r, ordinal: p * o.storeReplicas + r });
      }
    }
  }
  for (let p = 0; p < o.relays; p++) specs.push({ name: `relay-${p}-0`, role: 'relay', partition: p, replica: 0, ordinal: p });
  return specs;
}

export class LocalCluster {
  readonly registry: EmbeddedRegistry;
  private readonly running = new Map<string, Running>();
  private stopping = false;
  private web: WebServer | null = null;
  private readonly options: LocalClusterOptions & Sizes & { dataDir: string };

  constructor(options: LocalClusterOptions) {
    this.options = {
      storePartitions: 1, storeReplicas: 2, relays: 1, dataDir: join(options.logDir, 'data'),
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as LocalClusterOptions & Sizes & { dataDir: string };
    const topology = defaultTopology(options.partitions, options.replicas, options.routers);
    const store = { partitions: this.options.storePartitions, replicas: this.options.storeReplicas };
    this.registry = new EmbeddedRegistry({
      ...topology,
      roles: { ...topology.roles, pi: store, xiu: store, relay: { partitions: this.options.relays, replicas: 1 } },
      splitThreshold: options.splitThreshold,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.history ? { history: options.history } : {}),
    });
  }

  async start(): Promise<{ web: string; gateways: string[]; proxies: string[]; logDir: string; dataDir: string }> {
    mkdirSync(this.options.logDir, { recursive: true });
    mkdirSync(this.options.dataDir, { recursive: true });
    const specs = planProcesses(this.options);
    for (const spec of specs) this.spawn(spec, 0);
    await this.allReady(specs);
    this.web = await serveChatPage(this.options.host, this.options.webPort, () => this.status());
    const members = this.registry.members();
    return {
      web: this.web.url,
      gateways: members.filter((m) => m.role === 'gateway').sort(byReplica).map((m) => m.wsUrl!),
      proxies: members.filter((m) => m.role === 'proxy').sort(byReplica).map((m) => m.address),
      logDir: this.options.logDir,
      dataDir: this.options.dataDir,
    };
  }

  /** What runs now: every process with its pid and, once registered, its member. */
  status() {
    const members = this.registry.members();
    return {
      topology: this.registry.topology(),
      processes: [...this.running.values()].map(({ spec, child, restarts }) => ({
        ...spec, pid: child.pid, restarts,
        member: members.find((m) => m.role === spec.role && m.partition === spec.partition && m.replica === spec.replica) ?? null,
      })),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.web?.close();
    const exits = [...this.running.values()].map(({ child }) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }));
    await Promise.all(exits);
    await this.registry.close();
  }

  private spawn(spec: ProcessSpec, restarts: number): void {
    const log = openSync(join(this.options.logDir, `${spec.name}.log`), 'a');
    const child = fork(this.options.entry, [
      spec.role, '--partition', String(spec.partition), '--replica', String(spec.replica),
      '--ordinal', String(spec.ordinal), '--host', this.options.host,
      ...(spec.role === 'pi' || spec.role === 'xiu' || spec.role === 'broker' ? ['--data-dir', join(this.options.dataDir, spec.name)] : []),
      ...(spec.role === 'gateway' && this.options.authKeyFile ? ['--auth-key-file', this.options.authKeyFile] : []),
    ], {
      execArgv: [...process.execArgv, ...ROLE_NODE_FLAGS],
      stdio: ['ignore', log, log, 'ipc'],
      env: { ...process.env, GROUPCHAT_REGISTRY: 'ipc', ...(this.options.peerSecretFile ? { GROUPCHAT_PEER_SECRET_FILE: this.options.peerSecretFile } : {}) },
    });
    closeSync(log);
    serveRegistryOverIpc(this.registry, child);
    this.running.set(spec.name, { spec, child, restarts });
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      process.stderr.write(`${spec.name} (pid ${child.pid}) exited (${signal ?? code}); restarting in ${this.options.restartDelayMs} ms\n`);
      setTimeout(() => { if (!this.stopping) this.spawn(spec, restarts + 1); }, this.options.restartDelayMs);
    });
  }

  /**
   * Doubles the broker partitions the way the operator does (operator/scaling/doubling.ts):
   * Expanding (the new partitions start and record whom they inherit rooms
   * from), then Switching (epoch + 1: everyone routes by the doubled layout;
   * the new partitions adopt their rooms), then Stable once every member serves
   * the new epoch and every partition has a leader. Resolves with the new topology.
   */
  async doubleBrokers(boundMs = 120_000): Promise<Topology> {
    const before = this.registry.topology();
    if (before.phase !== 'Stable') throw new Error(`cannot double while the topology is ${before.phase}`);
    const { partitions, replicas } = before.roles.broker;
    const roles = { ...before.roles, broker: { partitions: 2 * partitions, replicas } };
    this.registry.setTopology({ ...before, phase: 'Expanding', next: { roles } });
    const added: ProcessSpec[] = [];
    for (let p = partitions; p < 2 * partitions; p++) {
      for (let r = 0; r < replicas; r++) added.push({ name: `broker-${p}-${r}`, role: 'broker', partition: p, replica: r, ordinal: p * replicas + r });
    }
    for (const spec of added) this.spawn(spec, 0);
    await this.allReady(added, false, boundMs);
    const { next: _next, ...rest } = before;
    const switched: Topology = { ...rest, epoch: before.epoch + 1, phase: 'Switching', roles };
    this.registry.setTopology(switched);
    await this.until((members) => members.every((m) => m.epoch === undefined || m.epoch === switched.epoch), `every member to serve epoch ${switched.epoch}`, boundMs);
    this.registry.setTopology({ ...switched, phase: 'Stable' });
    await this.allReady([...this.running.values()].map((r) => r.spec), true, boundMs);
    return this.registry.topology();
  }

  /** Every process registered ready and, with leaders, every broker partition has a leader that can commit. */
  private allReady(specs: ProcessSpec[], leaders = true, boundMs = 120_000): Promise<void> {
    const brokerPartitions = [...new Set(leaders ? specs.filter((s) => s.role === 'broker').map((s) => s.partition) : [])];
    const registered = (members: Member[], s: ProcessSpec) => members.some((m) => m.role === s.role && m.partition === s.partition && m.replica === s.replica && m.ready);
    const led = (members: Member[], p: number) => members.some((m) => m.role === 'broker' && m.partition === p && m.leader);
    return this.until(
      (members) => specs.every((s) => registered(members, s)) && brokerPartitions.every((p) => led(members, p)),
      (members) => {
        const missing = specs.filter((s) => !registered(members, s)).map((s) => s.name);
        const leaderless = brokerPartitions.filter((p) => !led(members, p));
        return `${missing.join(', ') || 'every process'} registered ready${leaderless.length ? `, and a leader in broker partitions ${leaderless.join(', ')}` : ''}`;
      },
      boundMs,
    );
  }

  /** Resolves once holds(members) is true (checked now and on every change); rejects after boundMs naming what is missing. */
  private until(holds: (members: Member[]) => boolean, what: string | ((members: Member[]) => string), boundMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (members: Member[]) => {
        if (!holds(members)) return;
        clearTimeout(timer);
        this.registry.off('members', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.registry.off('members', check);
        const members = this.registry.members();
        reject(new Error(`gave up after ${boundMs / 1000} s waiting for ${typeof what === 'string' ? what : what(members)} (logs in ${this.options.logDir})`));
      }, boundMs);
      this.registry.on('members', check);
      check(this.registry.members());
    });
  }
}

function byReplica(a: Member, b: Member): number {
  return a.replica - b.replica;
}
