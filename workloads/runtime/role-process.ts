// What every role process shares: config, logger, registry, health endpoint,
// self-registration, and an orderly stop on SIGTERM or when the launcher goes.
import type { Logger } from '../observability/logger.js';
import { createLogger } from '../observability/logger.js';
import { serveHealth } from '../observability/http.js';
import { Counter, Gauge } from 'prom-client';
import { metrics } from '../observability/http.js';
import { IpcRegistry } from '../registry/ipc.js';
import type { Registration, Registry } from '../registry/registry.js';
import { servedEpoch, type Member, type Topology } from '../registry/schema.js';
import type { PeerIdentity } from '../transport/peer-link.js';
import { memberIdFor, type RoleConfig } from './config.js';
import { claimOrdinal } from './ordinal.js';

const READINESS_POLL_MS = 200;

export interface RoleContext {
  config: RoleConfig;
  /** This process's ordinal among its role (worker ids). */
  ordinal: number;
  memberId: string;
  self: PeerIdentity;
  log: Logger;
  registry: Registry;
  /** The host other processes dial to reach this one. */
  advertiseHost: string;
}

export interface RoleInstance {
  /** Member fields the role knows once listening (address, wsUrl). */
  member: Pick<Member, 'address'> & Partial<Pick<Member, 'wsUrl'>>;
  /** True once the role can serve (its links are up). */
  isReady(): boolean;
  /** Member fields that change while running (the leader flag of pi and xiu). */
  advertise?(): Pick<Member, 'leader'>;
  stop(): Promise<void>;
}

const topologyEpoch = new Gauge({
  name: 'groupchat_topology_epoch', help: 'Epoch of the topology this process routes by', registers: [metrics],
});

/** Errors a role survives (a failed Lease write, a watch restarted, a deregistration that failed): logged, and counted here. */
const survivedErrors = new Counter({ name: 'groupchat_runtime_errors_total', help: 'Errors a process survived, by where they happened', labelNames: ['where'], registers: [metrics] });

async function connectRegistry(config: RoleConfig, log: Logger): Promise<Registry> {
  switch (config.registry) {
    case 'ipc':
      return IpcRegistry.connect();
    case 'kubernetes': {
      // Loaded only here: a local cluster's processes never pay for the Kubernetes client.
      const [{ KubeConfig }, { KubernetesRegistry }] = await Promise.all([import('@kubernetes/client-node'), import('../registry/kubernetes.js')]);
      // In a pod: the service account; elsewhere: KUBECONFIG or ~/.kube/config.
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromDefault();
      // No deadline: a pod waits for the API server rather than exit and be restarted while it is away.
      return KubernetesRegistry.connect({
        kubeConfig, namespace: config.namespace!, cluster: config.cluster!,
        ...(config.podName ? { leaseName: config.podName } : {}),
        ...(config.podName && config.podUid ? { pod: { name: config.podName, uid: config.podUid } } : {}),
        onWarning: (message) => {
          survivedErrors.inc({ where: 'registry' });
          log.warn(message);
        },
      }, null);
    }
  }
}

export async function runRole(config: RoleConfig, start: (ctx: RoleContext) => Promise<RoleInstance>): Promise<void> {
  const memberId = memberIdFor(config);
  const log = createLogger(config.role, { member: memberId });
  // Health first: the kubelet's probes answer while the registry connects and
  // the role loads its state, so a slow start is never taken for a dead process.
  let instance: RoleInstance | undefined;
  const health = await serveHealth(config.host, config.httpPort, () => instance?.isReady() ?? false);
  log.info({ http: health.address }, 'serving health');
  const registry = await connectRegistry(config, log);
  // Only gateways make message ids; the other roles' ordinals are informational.
  // In a pod, the ordinal is held by the pod's name, so a restarted container takes its own back.
  const ordinal = config.ordinal ?? (config.role === 'gateway' ? await claimOrdinal(registry, config.role, config.podName ?? memberId, log) : 0);
  const ctx: RoleContext = {
    config, memberId, log, registry, ordinal,
    self: { memberId, role: config.role },
    advertiseHost: config.advertiseHost ?? config.host,
  };
  instance = await start(ctx);
  const epochOf = (topology: Topology) => servedEpoch(topology, config.role, config.partition);
  const initialEpoch = epochOf(registry.topology());
  const base: Member = {
    id: memberId, role: config.role, partition: config.partition, replica: config.replica,
    address: instance.member.address, ready: false,
    // Listening on a wildcard host, peers still need a routable one.
    httpAddress: `${ctx.advertiseHost}:${health.address.slice(health.address.lastIndexOf(':') + 1)}`,
    ...(instance.member.wsUrl ? { wsUrl: instance.member.wsUrl } : {}),
    ...(initialEpoch !== undefined ? { epoch: initialEpoch } : {}),
  };
  const registration: Registration = await registry.register(base);
  // The member says which epoch it serves, so the operator can see a doubling through.
  registry.on('topology', (topology) => {
    topologyEpoch.set(topology.epoch);
    const epoch = epochOf(topology);
    log.info({ epoch: topology.epoch, phase: topology.phase, serves: epoch }, 'topology changed');
    if (epoch !== undefined) void registration.update({ epoch });
  });
  // A topology that arrived while this process was starting or registering
  // found no listener above: catch up with it, or the member would report its
  // old epoch until the next change (and a doubling would wait on it forever).
  const caughtUp = epochOf(registry.topology());
  topologyEpoch.set(registry.topology().epoch);
  if (caughtUp !== undefined && caughtUp !== base.epoch) void registration.update({ epoch: caughtUp });
  // Ready is published when the role says so, and withdrawn if it stops being so
  // (polled: the registry is not on any message path, so 200 ms is soon enough).
  let published = { ready: false, leader: undefined as boolean | undefined };
  const readiness = setInterval(() => {
    const current = { ready: instance!.isReady(), leader: instance!.advertise?.().leader };
    if (current.ready !== published.ready || current.leader !== published.leader) {
      if (current.ready !== published.ready) log.info({ ready: current.ready, address: base.address, http: health.address }, current.ready ? 'ready' : 'not ready');
      published = current;
      void registration.update(current.leader === undefined ? { ready: current.ready } : current);
    }
  }, READINESS_POLL_MS);

  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'stopping');
    clearInterval(readiness);
    await registration.close().catch((err: Error) => {
      survivedErrors.inc({ where: 'deregistration' });
      log.warn({ err: err.message }, 'leaving the registry failed; the registration expires on its own');
    });
    await instance!.stop();
    await health.close();
    await registry.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // A child of the local launcher never outlives it.
  process.on('disconnect', () => void stop('launcher gone'));
}
