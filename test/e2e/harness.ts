// What the e2e suites share: a whole control plane with a node agent and a
// volume provisioner (logs kept in an artifacts directory when a test fails),
// the jest lifecycle around it, waiting on a condition with a deadline,
// reading and doubling a GroupChatCluster, and finding a Service's ready
// backends as clients do.
import { afterAll, beforeAll } from '@jest/globals';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getJson } from '../envtest/support.js';
import { runTool } from '../envtest/tools.js';
import { builtImage } from '../support/image.js';
import type { ChatTraffic } from './chat-traffic.js';
import { startFullControlPlane, type FullControlPlane } from './control-plane.js';
import { NodeAgent } from './node-agent.js';
import { VolumeProvisioner } from './volume-provisioner.js';

export interface E2eEnvironment {
  cp: FullControlPlane;
  agent: NodeAgent;
  workDir: string;
  /** Stops everything; unless the test passed, first copies every pod's and the control plane's log to `artifacts`. */
  stop(passed: boolean, artifacts: string): Promise<void>;
}

export async function startEnvironment(): Promise<E2eEnvironment> {
  const workDir = mkdtempSync(join(tmpdir(), 'groupchat-e2e-'));
  const cp = await startFullControlPlane();
  const agent = await NodeAgent.start({
    kubeConfig: cp.kubeConfig(), server: cp.server, caFile: join(cp.dir, 'certs', 'apiserver.crt'),
    name: 'e2e-node-1', workDir, images: [builtImage().archives.oci.file],
  });
  const provisioner = new VolumeProvisioner(cp.kubeConfig());
  await provisioner.start();
  return {
    cp, agent, workDir,
    async stop(passed, artifacts) {
      rmSync(artifacts, { recursive: true, force: true });
      if (!passed) {
        // Keep what explains a failure: every pod's log and the control plane's.
        mkdirSync(artifacts, { recursive: true });
        cpSync(join(workDir, 'logs'), join(artifacts, 'pods'), { recursive: true });
        for (const file of readdirSync(cp.dir).filter((f) => f.endsWith('.log'))) cpSync(join(cp.dir, file), join(artifacts, file));
        process.stderr.write(`e2e: logs kept in ${artifacts}\n`);
      }
      await provisioner.stop();
      await agent.stop();
      await cp.stop();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** The namespaces and the cluster every e2e suite uses (a control plane of its own each). */
export const NAMESPACE = 'chat';
export const CLUSTER = 'chat';
export const OPERATOR_NAMESPACE = 'groupchat-system';

export interface E2eSuite {
  /** The environment, once beforeAll has started it. */
  readonly env: E2eEnvironment;
  /** The suite's traffic, if any: closed after the tests, before the environment stops. */
  traffic: ChatTraffic | undefined;
  /** Says the test passed: its logs need not be kept. */
  passed(): void;
  /** The suite's GroupChatCluster as it is now. */
  cluster(): Promise<ClusterObject>;
  /** Merges `spec` into the cluster's spec (a doubling) and waits for the doubling to start; resolves with the epoch before it. */
  startDoubling(spec: Record<string, unknown>): Promise<number>;
  /** Waits for the doubling to complete: Stable at an epoch after `epochBefore`, and Ready; `onRead` sees every read. */
  untilDoubled(what: string, epochBefore: number, timeoutMs: number, onRead?: (c: ClusterObject) => void): Promise<ClusterObject>;
}

/**
 * The jest lifecycle of an e2e suite: the environment started before its
 * tests and stopped after them, every process's log kept in `artifacts`
 * unless the test said it passed.
 */
export function e2eSuite(artifacts: string): E2eSuite {
  let env: E2eEnvironment | undefined;
  let passed = false;
  const suite: E2eSuite = {
    get env() {
      if (!env) throw new Error('the e2e environment did not start');
      return env;
    },
    traffic: undefined,
    passed: () => { passed = true; },
    cluster: () => readCluster(suite.env.cp, NAMESPACE, CLUSTER),
    async startDoubling(spec) {
      const epochBefore = (await suite.cluster()).status!.epoch!;
      await suite.env.cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NAMESPACE, '--type=merge', '-p', JSON.stringify({ spec })]);
      await until('the doubling to start', async () => (await suite.cluster()).status?.phase === 'Expanding', 30_000, 100);
      return epochBefore;
    },
    untilDoubled: (what, epochBefore, timeoutMs, onRead) => until(what, async () => {
      const c = await suite.cluster();
      onRead?.(c);
      return c.status?.phase === 'Stable' && (c.status?.epoch ?? 0) > epochBefore && isReady(c) && c;
    }, timeoutMs, 100),
  };
  beforeAll(async () => {
    env = await startEnvironment();
  }, 180_000);
  afterAll(async () => {
    await suite.traffic?.close();
    await env?.stop(passed, artifacts);
  }, 120_000);
  return suite;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy; fails with `what` (and the last error) after timeoutMs. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export interface ClusterObject {
  metadata: { generation: number; name: string };
  status?: {
    observedGeneration?: number; epoch?: number; phase?: string;
    conditions?: { type: string; status: string; message?: string }[];
    roles?: Record<string, { partitions?: number; desired: number; ready: number }>;
  };
}

export const readCluster = (cp: FullControlPlane, namespace: string, name: string) =>
  getJson<ClusterObject>(cp, ['groupchatcluster', name, '-n', namespace]);

export const isReady = (c: ClusterObject) => c.status?.observedGeneration === c.metadata.generation
  && c.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');

/**
 * Ready addresses of a Service's pods, found the way the endpoints controller
 * finds them (the Service's selector, the pods' Ready condition, the named
 * target port). The EndpointSlices themselves cannot be used here: the API
 * refuses loopback addresses in them, and every test pod has one.
 */
export async function backends(cp: FullControlPlane, namespace: string, service: string, portName: string): Promise<string[]> {
  const svc = await getJson<{ spec: { selector: Record<string, string>; ports: { name?: string; targetPort?: string | number }[] } }>(
    cp, ['service', service, '-n', namespace]);
  const target = svc.spec.ports.find((p) => p.name === portName)?.targetPort;
  const selector = Object.entries(svc.spec.selector).map(([k, v]) => `${k}=${v}`).join(',');
  const pods = await getJson<{ items: {
    metadata: { deletionTimestamp?: string };
    spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] };
    status: { podIP?: string; conditions?: { type: string; status: string }[] };
  }[] }>(cp, ['pods', '-n', namespace, '-l', selector]);
  return pods.items
    .filter((p) => !p.metadata.deletionTimestamp && p.status.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((p) => {
      const port = typeof target === 'number' ? target
        : p.spec.containers.flatMap((c) => c.ports ?? []).find((cp) => cp.name === target)?.containerPort;
      return `${p.status.podIP}:${port}`;
    });
}

/**
 * The chart, as a platform team installs it: the clusters' namespace first,
 * then the chart allowed to manage clusters there; --wait: the operator pod is Ready.
 */
export async function helmInstall(cp: FullControlPlane, release: string, namespace: string, clusterNamespace: string): Promise<void> {
  await cp.kubectl(['create', 'namespace', clusterNamespace]);
  await runTool('helm', ['install', release, resolve('helm/groupchat'), '--kubeconfig', cp.kubeconfig(),
    '--namespace', namespace, '--create-namespace', '--set', `clusterNamespaces={${clusterNamespace}}`, '--wait', '--timeout', '180s']);
}

/** Where users and backends connect: both gateways' WebSocket URLs and both proxies' peer addresses, once ready. */
export async function entryPoints(cp: FullControlPlane, namespace: string, cluster: string): Promise<{ gateways: string[]; proxies: string[] }> {
  const gateways = (await until('gateway endpoints', async () => {
    const e = await backends(cp, namespace, `${cluster}-gateway`, 'ws'); return e.length === 2 && e;
  }, 60_000)).map((address) => `ws://${address}/`);
  const proxies = await until('proxy endpoints', async () => {
    const e = await backends(cp, namespace, `${cluster}-proxy`, 'peer'); return e.length === 2 && e;
  }, 60_000);
  return { gateways, proxies };
}
