// `groupchat operator`: the controller plus the health and metrics endpoints
// the kubelet probes, stopped in order on SIGTERM. With leader election (the
// default) every replica serves its endpoints and campaigns for the leader
// Lease; only the leader runs the controller.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { serveHealth } from '../workloads/observability/http.js';
import { createLogger } from '../workloads/observability/logger.js';
import { DEFAULT_RESYNC_MS, startController, type Controller } from './reconcile/controller.js';
import { LeaderElector } from './reconcile/leader-election.js';
import { checkTiming, DEFAULT_TIMING } from './reconcile/leader-lease.js';
import { isLeader } from './reconcile/metrics.js';

const Seconds = z.coerce.number().positive().max(3600);
const Bool = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

export const OperatorConfigSchema = z.object({
  /** One namespace to watch; every namespace when omitted. */
  namespace: z.string().min(1).optional(),
  host: z.string().default('127.0.0.1'),
  httpPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** How often every cluster is reconciled again without a change (reads only, when nothing drifted). */
  resyncSeconds: z.coerce.number().int().min(1).max(86_400).default(DEFAULT_RESYNC_MS / 1000),
  leaderElection: Bool.default(true),
  /** Namespace of the leader Lease: the operator's own (in a pod, its service account's). */
  leaderElectionNamespace: z.string().min(1).optional(),
  leaderElectionId: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected a Kubernetes object name').default('groupchat-operator'),
  leaseDurationSeconds: Seconds.default(DEFAULT_TIMING.leaseDurationMs / 1000),
  renewDeadlineSeconds: Seconds.default(DEFAULT_TIMING.renewDeadlineMs / 1000),
  retryPeriodSeconds: Seconds.default(DEFAULT_TIMING.retryPeriodMs / 1000),
}).strict();
export type OperatorConfig = z.infer<typeof OperatorConfigSchema>;

const ENV_KEYS = {
  namespace: 'GROUPCHAT_WATCH_NAMESPACE', host: 'GROUPCHAT_HOST', httpPort: 'GROUPCHAT_HTTP_PORT', resyncSeconds: 'GROUPCHAT_RESYNC_SECONDS',
  leaderElection: 'GROUPCHAT_LEADER_ELECTION', leaderElectionNamespace: 'GROUPCHAT_LEADER_ELECTION_NAMESPACE',
  leaderElectionId: 'GROUPCHAT_LEADER_ELECTION_ID', leaseDurationSeconds: 'GROUPCHAT_LEASE_DURATION_SECONDS',
  renewDeadlineSeconds: 'GROUPCHAT_RENEW_DEADLINE_SECONDS', retryPeriodSeconds: 'GROUPCHAT_RETRY_PERIOD_SECONDS',
} as const;

/** A pod's own namespace, as its service account token's mount says. */
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export function loadOperatorConfig(flags: Record<string, unknown>): OperatorConfig {
  const merged: Record<string, unknown> = {};
  for (const [key, env] of Object.entries(ENV_KEYS)) {
    const value = flags[key] ?? process.env[env];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  if (merged.leaderElectionNamespace === undefined && existsSync(SERVICE_ACCOUNT_NAMESPACE)) {
    merged.leaderElectionNamespace = readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
  }
  const parsed = OperatorConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(`invalid operator configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const config = parsed.data;
  if (config.leaderElection) {
    if (!config.leaderElectionNamespace) {
      throw new Error('invalid operator configuration: leader election needs the namespace of its Lease: '
        + `set --leader-election-namespace or ${ENV_KEYS.leaderElectionNamespace}, or turn it off with --no-leader-election`);
    }
    try {
      checkTiming(timingOf(config));
    } catch (err) {
      throw new Error(`invalid operator configuration: ${(err as Error).message}`);
    }
  }
  return config;
}

const timingOf = (c: OperatorConfig) => ({
  leaseDurationMs: c.leaseDurationSeconds * 1000, renewDeadlineMs: c.renewDeadlineSeconds * 1000, retryPeriodMs: c.retryPeriodSeconds * 1000,
});

export async function runOperator(config: OperatorConfig): Promise<void> {
  const log = createLogger('operator');
  // In a pod: its service account; elsewhere: KUBECONFIG or ~/.kube/config.
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const instance = process.env.GROUPCHAT_POD_NAME ?? hostname();
  // As client-go does: unique per process, so a restarted operator is a new candidate, not the old leader.
  const identity = `${instance}_${randomUUID()}`;
  // Ready means able to take over: a standby is as ready as the leader.
  const health = await serveHealth(config.host, config.httpPort, () => true);
  log.info({ http: health.address, identity }, 'ready');

  let controller: Controller | undefined;
  let elector: LeaderElector | undefined;
  let stopping = false;
  const start = () => startController({
    kubeConfig, log, instance, resyncMs: config.resyncSeconds * 1000,
    ...(config.namespace ? { namespace: config.namespace } : {}),
  });
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await controller?.stop();
    await elector?.stop();
    isLeader.set(0);
    await health.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  if (!config.leaderElection) {
    isLeader.set(1);
    controller = await start();
    return;
  }
  /**
   * Campaigns, and leads once elected. A leader that could not renew within
   * the renew deadline stops its controller (waiting for the reconcile in
   * flight) before it campaigns again: an API server that was away for a
   * while restarts no operator pod.
   */
  const lead = async (): Promise<void> => {
    const candidate = new LeaderElector({
      kubeConfig, log, identity, namespace: config.leaderElectionNamespace!, name: config.leaderElectionId, timing: timingOf(config),
    });
    elector = candidate;
    log.info({ lease: `${config.leaderElectionNamespace}/${config.leaderElectionId}` }, 'campaigning for the leader Lease');
    const leading = await candidate.campaign(() => void stepDown());
    if (!leading || stopping) return;
    log.info({ identity }, 'leading');
    isLeader.set(1);
    const started = await start();
    // Leadership lost while the caches filled: this controller must not run.
    if (elector !== candidate || !candidate.isLeader || stopping) {
      await started.stop();
      return;
    }
    controller = started;
  };
  const stepDown = async () => {
    log.warn('could not renew the leader Lease within the renew deadline; stopping the controller and campaigning again');
    isLeader.set(0);
    const leaving = controller;
    controller = undefined;
    await leaving?.stop();
    if (!stopping) await lead();
  };
  await lead();
}
