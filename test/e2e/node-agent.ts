// A test node agent: the part of a kubelet the e2e test needs. It registers
// a Node (Ready, with capacity) and keeps its heartbeat Lease, watches the
// Pods the scheduler binds to it, and runs each container of each from the
// image its spec names, unpacked from the image's OCI archive
// (test/support/container.ts, runc): in its own root file system and mount,
// pid, IPC and UTS namespaces, with the image's user, env and entrypoint under
// the container's securityContext (runAsUser, runAsGroup, runAsNonRoot,
// readOnlyRootFilesystem, capabilities, allowPrivilegeEscalation), command and
// args. Each pod gets an address of its own on 127.0.0.0/8, its environment
// with the downward-API fields filled in, its service account's token bound
// to the pod where a kubelet projects it (so RBAC is the real one), and its
// volumes mounted where the spec says. It runs the readiness and liveness
// probes, reports Pod status as a kubelet does (phase, IPs, conditions,
// container statuses with containerID, imageID and restartCount; written
// again when the API's says otherwise, as a kubelet's status manager does),
// restarts containers that exit, and on deletion stops them within the grace period and
// removes the Pod. An image it does not have leaves the container waiting in
// ErrImagePull.
//
// What is not a kubelet's: there is no network namespace (pods share the
// host's loopback), so a pod listening on the wildcard address ("0.0.0.0" in
// its env or args) is given its pod IP instead; resource limits are not
// enforced.
import type { ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import {
  CoreV1Api, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type KubeConfig, type V1Container, type V1Pod, type V1Probe,
} from '@kubernetes/client-node';
import { WatchCache } from '../../workloads/kube/watch-cache.js';
import { microTime } from '../../workloads/registry/kubernetes-objects.js';
import { DEFAULT_CAPABILITIES, removeContainer, startContainer, unpackImage, type Mount, type UnpackedImage } from '../support/container.js';

/** Where a kubelet projects the service account's token, CA and namespace. */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface NodeAgentOptions {
  /** The node's own credentials (the admin here). */
  kubeConfig: KubeConfig;
  /** API server URL and CA, for the kubeconfigs pods get. */
  server: string;
  caFile: string;
  name: string;
  /** Pods' directories and logs go here. */
  workDir: string;
  /** OCI archives of the images the node has (as if pulled): pods may name them by name:tag or digest. */
  images: string[];
}

interface Termination { exitCode: number; signal?: string; reason: string; startedAt: string; finishedAt: string }

interface ContainerRun {
  spec: V1Container;
  child?: ChildProcess;
  /** runc's id of the running incarnation. */
  id?: string;
  startedAt?: string;
  restarts: number;
  ready: boolean;
  waiting?: string;
  waitingMessage?: string;
  last?: Termination;
  probes: Set<NodeJS.Timeout>;
  restartTimer?: NodeJS.Timeout;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  ip: string;
  dir: string;
  pod: V1Pod;
  startTime: string;
  containers: ContainerRun[];
  terminating: boolean;
  gone: boolean;
  transitions: Map<string, { status: string; at: string }>;
  statusBusy: boolean;
  statusDirty: boolean;
  /** What each container runs, resolved once per pod (a restart reuses it). */
  prepared?: Map<string, Prepared>;
}

interface Prepared {
  image: UnpackedImage;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  mounts: Mount[];
  uid?: number;
  gid?: number;
  readOnlyRoot: boolean;
  capabilities: string[];
  noNewPrivileges: boolean;
}

const HEARTBEAT_MS = 10_000;
/** As a kubelet's status manager: how often a pod's status in the API is compared with what runs here. */
const STATUS_RESYNC_MS = 10_000;
const NODE_LEASE_SECONDS = 40;

export class NodeAgent {
  private readonly core: CoreV1Api;
  private readonly objects: KubernetesObjectApi;
  private readonly pods: WatchCache<V1Pod>;
  private readonly runs = new Map<string, PodRun>();
  private readonly octet = randomInt(16, 250);
  private nextAddress = 1;
  private readonly freeAddresses: string[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private statusResync: NodeJS.Timeout | undefined;
  private syncScheduled = false;
  private stopped = false;
  private readonly images: UnpackedImage[];
  private readonly stateRoot: string;
  private readonly killAll = () => {
    for (const run of this.runs.values()) for (const c of run.containers) if (c.id) removeContainer(this.stateRoot, c.id);
  };

  private constructor(private readonly o: NodeAgentOptions) {
    this.stateRoot = join(o.workDir, 'runc');
    this.images = o.images.map((archive) => unpackImage(archive, join(o.workDir, 'images')));
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
    const fieldSelector = `spec.nodeName=${o.name}`;
    this.pods = new WatchCache<V1Pod>(o.kubeConfig, {
      path: '/api/v1/pods',
      fieldSelector,
      list: () => this.core.listPodForAllNamespaces({ fieldSelector }),
      onChange: () => this.scheduleSync(),
    });
    mkdirSync(join(o.workDir, 'logs'), { recursive: true });
  }

  static async start(o: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(o);
    process.once('exit', agent.killAll);
    await agent.register();
    await agent.pods.start();
    agent.heartbeat = setInterval(() => void agent.beat().catch(() => undefined), HEARTBEAT_MS);
    agent.statusResync = setInterval(() => agent.resyncStatus(), STATUS_RESYNC_MS);
    agent.scheduleSync();
    return agent;
  }

  /** The log file of a pod's container (every incarnation appends to it). */
  logOf(namespace: string, pod: string, container: string): string {
    return join(this.o.workDir, 'logs', `${namespace}_${pod}_${container}.log`);
  }

  /** The pods running here now. */
  running(): { namespace: string; name: string; uid: string; ip: string; restarts: number }[] {
    return [...this.runs.values()].map((r) => ({
      namespace: r.namespace, name: r.name, uid: r.uid, ip: r.ip, restarts: r.containers.reduce((n, c) => n + c.restarts, 0),
    }));
  }

  /** Stops every process (as a node that goes away would) and the watch; the Node object stays. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearInterval(this.statusResync);
    await this.pods.stop();
    await Promise.all([...this.runs.values()].map((run) => this.killPod(run, 5)));
    process.off('exit', this.killAll);
  }

  // ---- the node ----

  private nodeStatus() {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: reason, lastHeartbeatTime: now, lastTransitionTime: this.registeredAt });
    const resources = { cpu: '16', memory: '64Gi', pods: '250', 'ephemeral-storage': '100Gi' };
    return {
      capacity: resources,
      allocatable: resources,
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
        condition('Ready', 'True', 'KubeletReady'),
      ],
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: this.o.name }],
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
      nodeInfo: {
        machineID: '', systemUUID: '', bootID: '', kernelVersion: '', osImage: 'groupchat test node agent',
        containerRuntimeVersion: 'local-process://1', kubeletVersion: 'v1.34.4', kubeProxyVersion: '',
        operatingSystem: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      },
    };
  }

  private registeredAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

  private async register(): Promise<void> {
    const name = this.o.name;
    const labels = {
      'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch, 'groupchat.dev/test-node': 'true',
    };
    await this.core.createNode({ body: { metadata: { name, labels }, status: this.nodeStatus() } as never })
      .catch((err: { code?: number }) => { if (err.code !== 409) throw err; });
    await this.beat();
  }

  /** Node status and the node Lease: what the node lifecycle controller watches. */
  private async beat(): Promise<void> {
    const name = this.o.name;
    await this.core.patchNodeStatus({ name, body: { status: this.nodeStatus() } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    const node = await this.core.readNode({ name });
    await this.objects.patch({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: {
        name, namespace: 'kube-node-lease',
        ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata!.uid! }],
      },
      spec: { holderIdentity: name, leaseDurationSeconds: NODE_LEASE_SECONDS, renewTime: microTime(new Date()) as unknown as Date },
    }, undefined, undefined, 'groupchat-node-agent', true, PatchStrategy.ServerSideApply);
  }

  // ---- pods ----

  private scheduleSync(): void {
    if (this.syncScheduled || this.stopped) return;
    this.syncScheduled = true;
    setImmediate(() => { this.syncScheduled = false; this.sync(); });
  }

  /** Level-triggered: make the processes match the pods bound here. */
  private sync(): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const pod of this.pods.list()) {
      const uid = pod.metadata!.uid!;
      if (pod.spec?.nodeName !== this.o.name) continue;
      seen.add(uid);
      const run = this.runs.get(uid);
      if (run) {
        run.pod = pod;
        if (pod.metadata!.deletionTimestamp && !run.terminating) void this.terminate(run);
        continue;
      }
      if (pod.metadata!.deletionTimestamp) {
        // Never started here (or this agent restarted): nothing to stop.
        void this.finalize(pod);
        continue;
      }
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      this.startPod(pod);
    }
    for (const run of this.runs.values()) {
      if (!seen.has(run.uid) && !run.gone) {
        // Deleted outright (grace period 0): nobody waits for us.
        run.gone = true;
        void this.killPod(run, 0).then(() => this.release(run));
      }
    }
  }

  private allocateAddress(): string {
    const reused = this.freeAddresses.shift();
    if (reused) return reused;
    const n = this.nextAddress++;
    return `127.${this.octet}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  }

  private startPod(pod: V1Pod): void {
    const uid = pod.metadata!.uid!;
    const run: PodRun = {
      uid, namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, ip: this.allocateAddress(),
      dir: join(this.o.workDir, 'pods', uid), pod, startTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      containers: (pod.spec!.containers ?? []).map((spec) => ({ spec, restarts: 0, ready: false, waiting: 'ContainerCreating', probes: new Set() })),
      terminating: false, gone: false, transitions: new Map(), statusBusy: false, statusDirty: false,
    };
    this.runs.set(uid, run);
    mkdirSync(run.dir, { recursive: true });
    void this.pushStatus(run);
    void this.prepareAndRun(run);
  }

  private async prepareAndRun(run: PodRun): Promise<void> {
    // What a kubelet waits for before starting containers: volumes, the token.
    for (let attempt = 0; !run.terminating && !run.gone && !this.stopped; attempt++) {
      try {
        run.prepared = await this.prepare(run);
        break;
      } catch (err) {
        if (attempt % 10 === 0) this.note(run, `not started yet: ${(err as Error).message}`);
        if (err instanceof ImageError && run.containers.some((c) => c.waiting !== err.reason)) {
          for (const c of run.containers) { c.waiting = err.reason; c.waitingMessage = err.message; }
          void this.pushStatus(run);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (!run.prepared) return;
    for (const container of run.containers) this.startContainer(run, container);
  }

  private note(run: PodRun, message: string): void {
    const file = join(this.o.workDir, 'logs', `${run.namespace}_${run.name}.agent.log`);
    writeFileSync(file, `${new Date().toISOString()} ${message}\n`, { flag: 'a' });
  }

  /** The image a container names, by name:tag or by digest, among the node's. */
  private image(reference: string): UnpackedImage | undefined {
    const digest = /@(sha256:[0-9a-f]{64})$/.exec(reference)?.[1];
    if (digest) return this.images.find((i) => i.digest === digest);
    const tagged = /:[^/]+$/.test(reference) ? reference : `${reference}:latest`;
    return this.images.find((i) => i.reference === tagged);
  }

  private async prepare(run: PodRun): Promise<Map<string, Prepared>> {
    const { pod } = run;
    const spec = pod.spec!;
    const volumeDirs = new Map<string, string>();
    for (const volume of spec.volumes ?? []) {
      const dir = volume.persistentVolumeClaim
        ? join(this.o.workDir, 'claims', run.namespace, volume.persistentVolumeClaim.claimName)
        : join(run.dir, 'volumes', volume.name);
      mkdirSync(dir, { recursive: true });
      // Writable by the pod's user, as a kubelet's emptyDir and a provisioner's local volume are.
      if (volume.emptyDir || volume.persistentVolumeClaim) chmodSync(dir, 0o777);
      if (volume.secret) {
        const secret = await this.core.readNamespacedSecret({ namespace: run.namespace, name: volume.secret.secretName! });
        for (const [key, value] of Object.entries(secret.data ?? {})) writeFileSync(join(dir, key), Buffer.from(value, 'base64'));
      }
      if (volume.configMap) {
        const configMap = await this.core.readNamespacedConfigMap({ namespace: run.namespace, name: volume.configMap.name! });
        for (const [key, value] of Object.entries(configMap.data ?? {})) writeFileSync(join(dir, key), value);
      }
      volumeDirs.set(volume.name, dir);
    }

    // Every container sees the pod's name and address in /etc/hosts, as a kubelet writes it.
    const hosts = join(run.dir, 'hosts');
    writeFileSync(hosts, `127.0.0.1\tlocalhost\n${run.ip}\t${run.name}\n`);
    const podMounts: Mount[] = [{ destination: '/etc/hosts', source: hosts, readOnly: true }];
    const base: Record<string, string> = { HOSTNAME: run.name };
    if (spec.automountServiceAccountToken !== false) {
      // The service account's token, bound to this pod, where in-cluster clients look for it.
      const account = spec.serviceAccountName ?? 'default';
      const request = await this.core.createNamespacedServiceAccountToken({
        namespace: run.namespace, name: account,
        body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: run.name, uid: run.uid } } },
      });
      const dir = join(run.dir, 'serviceaccount');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'token'), request.status!.token!);
      writeFileSync(join(dir, 'ca.crt'), readFileSync(this.o.caFile));
      writeFileSync(join(dir, 'namespace'), run.namespace);
      podMounts.push({ destination: SERVICE_ACCOUNT_DIR, source: dir, readOnly: true });
      const server = new URL(this.o.server);
      base.KUBERNETES_SERVICE_HOST = server.hostname;
      base.KUBERNETES_SERVICE_PORT = server.port;
    }

    const prepared = new Map<string, Prepared>();
    for (const container of spec.containers) {
      const localise = (value: string): string => (value === '0.0.0.0' || value === '::' ? run.ip : value);
      const env: Record<string, string> = { ...base };
      for (const e of container.env ?? []) {
        let value: string | undefined;
        if (e.value !== undefined) value = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env[name] ?? all);
        else if (e.valueFrom?.fieldRef) value = this.fieldValue(run, e.valueFrom.fieldRef.fieldPath);
        else if (e.valueFrom?.secretKeyRef) {
          const { name, key, optional } = e.valueFrom.secretKeyRef;
          const data = (await this.core.readNamespacedSecret({ namespace: run.namespace, name: name! }).catch((err) => { if (optional) return undefined; throw err; }))?.data;
          value = data?.[key] !== undefined ? Buffer.from(data[key], 'base64').toString() : undefined;
        } else if (e.valueFrom?.configMapKeyRef) {
          const { name, key, optional } = e.valueFrom.configMapKeyRef;
          value = (await this.core.readNamespacedConfigMap({ namespace: run.namespace, name: name! }).catch((err) => { if (optional) return undefined; throw err; }))?.data?.[key];
        }
        if (value !== undefined) env[e.name] = localise(value);
      }
      const image = this.image(container.image ?? '');
      if (!image) throw new ImageError(`image ${container.image} is not on this node (it has ${this.images.map((i) => `${i.reference}@${i.digest}`).join(', ')})`);
      const context = { ...spec.securityContext, ...container.securityContext };
      const caps = container.securityContext?.capabilities;
      const dropped = new Set((caps?.drop ?? []).map((c) => `CAP_${c}`));
      const capabilities = [...DEFAULT_CAPABILITIES, ...(caps?.add ?? []).map((c) => `CAP_${c}`)]
        .filter((c, i, all) => !(dropped.has('CAP_ALL') || dropped.has(c)) && all.indexOf(c) === i);
      const uid = context.runAsUser ?? Number((image.config.User ?? '0').split(':')[0]);
      if (context.runAsNonRoot && uid === 0) throw new ImageError(`container ${container.name} has runAsNonRoot and would run as root`, 'CreateContainerConfigError');
      prepared.set(container.name, {
        image, env,
        command: container.command?.map(localise),
        args: container.args?.map(localise),
        mounts: [...podMounts, ...(container.volumeMounts ?? []).map((m) => ({
          destination: m.mountPath, source: join(volumeDirs.get(m.name)!, m.subPath ?? ''), readOnly: m.readOnly ?? false,
        }))],
        uid: context.runAsUser,
        gid: context.runAsGroup,
        readOnlyRoot: context.readOnlyRootFilesystem ?? false,
        capabilities,
        noNewPrivileges: context.allowPrivilegeEscalation === false,
      });
    }
    return prepared;
  }

  private fieldValue(run: PodRun, path: string): string {
    const meta = run.pod.metadata!;
    const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
    if (keyed) return (keyed[1] === 'labels' ? meta.labels : meta.annotations)?.[keyed[2]!] ?? '';
    switch (path) {
      case 'metadata.name': return run.name;
      case 'metadata.namespace': return run.namespace;
      case 'metadata.uid': return run.uid;
      case 'spec.nodeName': return this.o.name;
      case 'spec.serviceAccountName': return run.pod.spec?.serviceAccountName ?? 'default';
      case 'status.podIP': case 'status.podIPs': return run.ip;
      case 'status.hostIP': case 'status.hostIPs': return '127.0.0.1';
      default: throw new Error(`unsupported fieldRef ${path}`);
    }
  }

  private startContainer(run: PodRun, c: ContainerRun): void {
    if (run.terminating || run.gone || this.stopped) return;
    const p = run.prepared!.get(c.spec.name)!;
    const log = openSync(this.logOf(run.namespace, run.name, c.spec.name), 'a');
    const id = `${run.uid}-${c.spec.name}-${c.restarts}`;
    const child = startContainer({
      id, stateRoot: this.stateRoot, bundle: join(run.dir, 'containers', id), hostname: run.name, stdio: ['ignore', log, log], ...p,
    });
    closeSync(log);
    c.child = child;
    c.id = id;
    c.startedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    c.waiting = undefined;
    c.waitingMessage = undefined;
    c.ready = !c.spec.readinessProbe; // without a probe a started container is ready
    const startedAt = c.startedAt;
    child.once('exit', (code, signal) => {
      for (const timer of c.probes) clearTimeout(timer);
      c.probes.clear();
      c.child = undefined;
      c.ready = false;
      c.last = {
        exitCode: code ?? 128 + (signal ? 9 : 0), reason: code === 0 ? 'Completed' : 'Error',
        startedAt, finishedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), ...(signal ? { signal } : {}),
      };
      if (run.terminating || run.gone || this.stopped) return;
      // restartPolicy Always (all our workloads): back off, then run it again.
      c.restarts++;
      c.waiting = 'CrashLoopBackOff';
      void this.pushStatus(run);
      c.restartTimer = setTimeout(() => this.startContainer(run, c), Math.min(10_000, 500 * 2 ** Math.min(c.restarts, 5)));
    });
    this.probe(run, c, c.spec.readinessProbe, (ok) => {
      if (ok !== c.ready) { c.ready = ok; void this.pushStatus(run); }
    });
    this.probe(run, c, c.spec.livenessProbe, (ok) => {
      if (!ok && c.child === child) {
        this.note(run, `${c.spec.name}: liveness probe failed; restarting`);
        void this.stopContainer(c, run.pod.spec?.terminationGracePeriodSeconds ?? 30);
      }
    });
    void this.pushStatus(run);
  }

  /** Runs a probe on its period; `verdict` gets true after successThreshold passes, false after failureThreshold failures. */
  private probe(run: PodRun, c: ContainerRun, probe: V1Probe | undefined, verdict: (ok: boolean) => void): void {
    if (!probe?.httpGet) return;
    const get = probe.httpGet;
    const port = typeof get.port === 'number' ? get.port
      : Number.isInteger(Number(get.port)) ? Number(get.port)
        : c.spec.ports?.find((p) => p.name === get.port)?.containerPort;
    if (!port) return;
    const period = (probe.periodSeconds ?? 10) * 1000;
    const [failureThreshold, successThreshold] = [probe.failureThreshold ?? 3, probe.successThreshold ?? 1];
    let failures = 0;
    let successes = 0;
    const child = c.child;
    const schedule = (ms: number) => {
      const timer = setTimeout(() => { c.probes.delete(timer); tick(); }, ms);
      c.probes.add(timer);
    };
    const tick = () => {
      if (c.child !== child || !child) return;
      const req = http.get({ host: get.host ?? run.ip, port, path: get.path ?? '/', timeout: (probe.timeoutSeconds ?? 1) * 1000 }, (res) => {
        res.resume();
        outcome(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 400);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => outcome(false));
    };
    const outcome = (ok: boolean) => {
      if (ok) { successes++; failures = 0; if (successes >= successThreshold) verdict(true); }
      else { failures++; successes = 0; if (failures >= failureThreshold) verdict(false); }
      if (c.child === child) schedule(period);
    };
    schedule((probe.initialDelaySeconds ?? 0) * 1000 + 200);
  }

  private stopContainer(c: ContainerRun, graceSeconds: number): Promise<void> {
    clearTimeout(c.restartTimer);
    const child = c.child;
    if (!child) return Promise.resolve();
    return new Promise((done) => {
      // runc passes SIGTERM on to the container's first process; killing runc itself would orphan the container.
      const kill = () => removeContainer(this.stateRoot, c.id!);
      const timer = setTimeout(kill, graceSeconds * 1000);
      child.once('exit', () => { clearTimeout(timer); done(); });
      if (graceSeconds === 0) kill();
      else child.kill('SIGTERM');
    });
  }

  private async killPod(run: PodRun, graceSeconds: number): Promise<void> {
    await Promise.all(run.containers.map((c) => this.stopContainer(c, graceSeconds)));
  }

  /** A pod being deleted: stop its containers within the grace period, then remove it. */
  private async terminate(run: PodRun): Promise<void> {
    run.terminating = true;
    const grace = run.pod.metadata?.deletionGracePeriodSeconds ?? run.pod.spec?.terminationGracePeriodSeconds ?? 30;
    await this.killPod(run, grace);
    for (const c of run.containers) { c.ready = false; }
    await this.pushStatus(run).catch(() => undefined);
    await this.finalize(run.pod);
    this.release(run);
  }

  private async finalize(pod: V1Pod): Promise<void> {
    await this.core.deleteNamespacedPod({
      namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, gracePeriodSeconds: 0,
      body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata!.uid! } },
    }).catch(() => undefined); // already gone
  }

  private release(run: PodRun): void {
    if (this.runs.get(run.uid) !== run) return;
    this.runs.delete(run.uid);
    this.freeAddresses.push(run.ip);
    rmSync(run.dir, { recursive: true, force: true });
  }

  // ---- status ----

  private condition(run: PodRun, type: string, ok: boolean) {
    const status = ok ? 'True' : 'False';
    const before = run.transitions.get(type);
    const at = before && before.status === status ? before.at : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    run.transitions.set(type, { status, at });
    return { type, status, lastProbeTime: null, lastTransitionTime: at };
  }

  private podStatus(run: PodRun) {
    const started = run.containers.some((c) => c.startedAt);
    const allReady = run.containers.every((c) => c.ready) && !run.terminating;
    return {
      phase: started ? 'Running' : 'Pending',
      hostIP: '127.0.0.1', hostIPs: [{ ip: '127.0.0.1' }],
      podIP: run.ip, podIPs: [{ ip: run.ip }],
      startTime: run.startTime,
      conditions: [
        this.condition(run, 'PodReadyToStartContainers', true),
        this.condition(run, 'Initialized', true),
        this.condition(run, 'ContainersReady', allReady),
        this.condition(run, 'Ready', allReady),
      ],
      containerStatuses: run.containers.map((c) => ({
        name: c.spec.name,
        image: c.spec.image ?? '',
        imageID: imageIdOf(run.prepared?.get(c.spec.name)?.image),
        ...(c.child && c.id ? { containerID: `runc://${c.id}` } : {}),
        ready: c.ready,
        started: c.child !== undefined,
        restartCount: c.restarts,
        state: c.child
          ? { running: { startedAt: c.startedAt } }
          : c.waiting ? { waiting: { reason: c.waiting, ...(c.waitingMessage ? { message: c.waitingMessage } : {}) } } : { terminated: c.last ?? { exitCode: 0, reason: 'Completed' } },
        ...(c.last ? { lastState: { terminated: c.last } } : {}),
      })),
    };
  }

  /**
   * Writes again the status of every pod whose status in the API says
   * otherwise than what runs here, as a kubelet's status manager reconciles:
   * a write lost while the API server was unreachable, or the node lifecycle
   * controller marking the pods not ready after it, is mended within a period.
   */
  private resyncStatus(): void {
    for (const run of this.runs.values()) {
      const pod = this.pods.get(run.name, run.namespace);
      if (pod?.metadata?.uid !== run.uid || run.gone) continue;
      if (statusDigest(pod.status) !== statusDigest(this.podStatus(run))) void this.pushStatus(run);
    }
  }

  /** One status write in flight per pod; a change meanwhile is written after it. */
  private async pushStatus(run: PodRun): Promise<void> {
    if (run.statusBusy) { run.statusDirty = true; return; }
    run.statusBusy = true;
    try {
      do {
        run.statusDirty = false;
        if (run.gone) return;
        // The uid makes the write a precondition: never the status of a successor with the same name.
        await this.core.patchNamespacedPodStatus({ namespace: run.namespace, name: run.name, body: { metadata: { uid: run.uid }, status: this.podStatus(run) } },
          setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)).catch(() => undefined);
      } while (run.statusDirty);
    } finally {
      run.statusBusy = false;
    }
  }
}

/** What a status says about readiness and restarts, to compare the API's with the agent's. */
function statusDigest(status: { conditions?: { type: string; status: string }[]; containerStatuses?: { name: string; ready: boolean; restartCount: number }[] } | undefined): string {
  return JSON.stringify([
    status?.conditions?.find((c) => c.type === 'Ready')?.status,
    (status?.containerStatuses ?? []).map((c) => [c.name, c.ready, c.restartCount]),
  ]);
}

/** Why a pod's containers cannot start yet, as the reason a kubelet reports while it retries. */
class ImageError extends Error {
  constructor(message: string, readonly reason = 'ErrImagePull') {
    super(message);
  }
}

/** A container's image as a kubelet reports it: the repository at the manifest's digest ('' before it has one). */
function imageIdOf(image: UnpackedImage | undefined): string {
  return image ? `${image.reference.replace(/:[^/:]*$/, '')}@${image.digest}` : '';
}
