// What the envtest suites share: waiting for a condition, running the real
// `groupchat` CLI as a child process, and playing the parts of the controllers
// and pods that do not run here (workload status, member Leases).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { AppsV1Api, PatchStrategy, setHeaderOptions, type V1Deployment, type V1StatefulSet } from '@kubernetes/client-node';
import { TopologySchema, type Topology } from '../../workloads/registry/schema.js';
import { startControlPlane, type ControlPlane, type User } from './control-plane.js';
import { runTool } from './tools.js';

export const CLI = resolve('dist/workloads/cli/main.js');

/** Retries `check` (an assertion or a lookup) until it stops throwing. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export interface CliProcess {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: no chance to clean up, as when a node dies. */
  kill(): Promise<void>;
}

/** Starts `groupchat <args>` and resolves once it logs a line that `ready` accepts. */
export async function startCli(args: string[], env: Record<string, string>,
  ready: (line: Record<string, unknown>) => boolean): Promise<CliProcess> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env, GROUPCHAT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  await new Promise<void>((resolveReady, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        logs.push(parsed);
        if (ready(parsed)) resolveReady();
      } catch { /* not a log line */ }
    });
    child.once('exit', (code) => reject(new Error(`groupchat ${args[0]} exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { child, logs, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}

export const OPERATOR_NS = 'groupchat-system';
/** The chart's operator service account, and a cluster's workload service account. */
export const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NS}:gc-groupchat`;
export const workloadUser = (namespace: string, cluster: string) => `system:serviceaccount:${namespace}:${cluster}-workload`;
const serviceAccountGroups = (namespace: string) => ['system:serviceaccounts', `system:serviceaccounts:${namespace}`];

/**
 * A control plane with the operator's namespace and `namespace`, the operator
 * holding exactly the chart's RBAC (allowed to manage clusters in
 * `namespace`), and cluster's workload user; the operator itself is left to
 * the test. `start` may start a whole control plane instead (test/e2e).
 */
export async function startOperatorControlPlane<T extends ControlPlane = ControlPlane>(namespace: string, cluster: string,
  start: (users: User[]) => Promise<T> = startControlPlane as (users: User[]) => Promise<T>): Promise<T> {
  const cp = await start([
    { name: OPERATOR_USER, groups: serviceAccountGroups(OPERATOR_NS) },
    { name: workloadUser(namespace, cluster), groups: serviceAccountGroups(namespace) },
  ]);
  for (const ns of [OPERATOR_NS, namespace]) await cp.kubectl(['create', 'namespace', ns]);
  const chart = await runTool('helm', ['template', 'gc', 'helm/groupchat', '--namespace', OPERATOR_NS, '--set', `clusterNamespaces={${namespace}}`]);
  await cp.kubectl(['apply', '-f', '-'], { input: chart });
  return cp;
}

/** The topology the operator wrote into a cluster's ConfigMap. */
export async function topologyOf(cp: ControlPlane, namespace: string, cluster: string): Promise<Topology> {
  const cm = await getJson(cp, ['configmap', `${cluster}-topology`, '-n', namespace]);
  return TopologySchema.parse(JSON.parse(cm.data['topology.json']));
}

export interface OperatorOptions {
  /** Watch only this namespace. */
  namespace?: string;
  /** Where the leader Lease is: the watched namespace, else OPERATOR_NS. */
  leaderElectionNamespace?: string;
  args?: string[];
}

/** Starts the operator; resolves once it serves its health and metrics endpoint (it may not lead yet). */
export function startOperator(kubeconfig: string, o: OperatorOptions = {}): Promise<CliProcess> {
  return startCli(['operator', '--http-port', '0', ...(o.namespace ? ['--namespace', o.namespace] : []),
    '--leader-election-namespace', o.leaderElectionNamespace ?? o.namespace ?? OPERATOR_NS, ...(o.args ?? [])],
  { KUBECONFIG: kubeconfig }, (line) => line.msg === 'ready');
}

/** Resolves with the first log line `match` accepts, waiting for it until the deadline. */
export function logged(cli: CliProcess, what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs = 60_000) {
  return eventually(() => {
    const line = cli.logs.find(match);
    if (!line) throw new Error(`no log line ${what} within ${timeoutMs / 1000}s (exit code ${cli.child.exitCode})`);
    return line;
  }, timeoutMs);
}

/** Parses Prometheus text: one number per series, keyed `name{labels as written}`. */
export function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*(?:\{.*\})?)\s+(\S+)$/.exec(line);
    if (match) series.set(match[1]!, Number(match[2]));
  }
  return series;
}

/** The sum of every series of `name` whose labels include all of `labels`. */
export function metricSum(series: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of series) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/** The operator's own metrics (it logs its endpoint in its `ready` line). */
export async function operatorMetrics(operator: CliProcess): Promise<Map<string, number>> {
  const ready = operator.logs.find((l) => l.msg === 'ready');
  return parseMetrics(await (await fetch(`http://${ready!.http}/metrics`)).text());
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

/** The API server's count of write requests so far, by "VERB resource[/subresource]" (apiserver_request_total). */
export async function apiserverWrites(cp: ControlPlane): Promise<Map<string, number>> {
  const writes = new Map<string, number>();
  for (const [key, value] of parseMetrics(await cp.kubectl(['get', '--raw', '/metrics']))) {
    if (!key.startsWith('apiserver_request_total{')) continue;
    const label = (name: string) => new RegExp(`[{,]${name}="([^"]*)"`).exec(key)?.[1] ?? '';
    if (!WRITE_VERBS.has(label('verb')) || label('dry_run') !== '') continue;
    const what = `${label('verb')} ${label('resource')}${label('subresource') ? `/${label('subresource')}` : ''}`;
    writes.set(what, (writes.get(what) ?? 0) + value);
  }
  return writes;
}

/** `after` − `before`, without the entries that did not change. */
export function countsSince(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [key, value] of after) if (value - (before.get(key) ?? 0) > 0) delta[key] = value - (before.get(key) ?? 0);
  return delta;
}

export async function getJson<T = any>(cp: ControlPlane, args: string[]): Promise<T> {
  return JSON.parse(await cp.kubectl(['get', '-o', 'json', ...args])) as T;
}

/** Runs `task` on every item, at most `limit` at a time (a test playing many pods at once without flooding the API server). */
export async function inParallel<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** Plays the StatefulSet and Deployment controllers: every pod of the selected workloads is ready (those already reported so are left alone). */
export async function markWorkloadsReady(cp: ControlPlane, namespace: string, selector: string): Promise<void> {
  const apps = cp.kubeConfig().makeApiClient(AppsV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const statusOf = (item: V1StatefulSet | V1Deployment, statefulSet: boolean) => {
    const n = item.spec?.replicas ?? 1;
    return {
      status: {
        observedGeneration: item.metadata!.generation, replicas: n, readyReplicas: n, availableReplicas: n, updatedReplicas: n,
        ...(statefulSet ? { currentReplicas: n } : {}),
      },
    };
  };
  const [sets, deployments] = await Promise.all([
    apps.listNamespacedStatefulSet({ namespace, labelSelector: selector }),
    apps.listNamespacedDeployment({ namespace, labelSelector: selector }),
  ]);
  const notReported = <T extends V1StatefulSet | V1Deployment>(items: T[]) => items.filter((item) =>
    item.status?.observedGeneration !== item.metadata!.generation || item.status?.readyReplicas !== (item.spec?.replicas ?? 1));
  await inParallel(notReported(sets.items), 8, (s) => apps.patchNamespacedStatefulSetStatus({ namespace, name: s.metadata!.name!, body: statusOf(s, true) }, merge));
  await inParallel(notReported(deployments.items), 8, (d) => apps.patchNamespacedDeploymentStatus({ namespace, name: d.metadata!.name!, body: statusOf(d, false) }, merge));
}

export interface EventSummary { reason: string; note: string; type: string }

/** The events recorded about one object, oldest first. */
export async function eventsFor(cp: ControlPlane, namespace: string, name: string): Promise<EventSummary[]> {
  const list = await getJson<{ items: { reason: string; note?: string; message?: string; type: string; regarding?: { name: string } }[] }>(
    cp, ['events.v1.events.k8s.io', '-n', namespace]);
  return list.items.filter((e) => e.regarding?.name === name)
    .map((e) => ({ reason: e.reason, note: e.note ?? e.message ?? '', type: e.type }));
}

/**
 * Marks the cluster's events now; the function returned counts the events of a
 * reason recorded since, so a test counts what it caused, whatever ran before it.
 */
export async function eventsSince(cp: ControlPlane, namespace: string, name: string): Promise<(reason: string) => Promise<number>> {
  const count = (events: EventSummary[], reason: string) => events.filter((e) => e.reason === reason).length;
  const before = await eventsFor(cp, namespace, name);
  return async (reason) => count(await eventsFor(cp, namespace, name), reason) - count(before, reason);
}
