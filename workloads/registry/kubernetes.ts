// The kubernetes registry: the topology is a ConfigMap the operator writes,
// and each member is a coordination.k8s.io Lease its pod applies and renews
// (the Lease is the member's ephemeral node: it counts while this process sees
// it renewed within leaseDurationSeconds, by its own clock: lease-observations.ts).
// Both are watched through informers.
//
// Statically stable: while this process cannot reach the API server (its own
// renewals fail or hang), it keeps the last topology and members it saw and
// expires nobody by its clock alone; peers are judged by their links. Once
// back in contact it gives every Lease a whole duration to be renewed.
import { EventEmitter } from 'node:events';
import {
  CoordinationV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy,
  type V1ConfigMap, type V1Lease, type V1OwnerReference,
} from '@kubernetes/client-node';
import { WatchCache } from '../kube/watch-cache.js';
import {
  LABEL_CLUSTER, LABEL_LEASE, leaderLeaseName, leaseExpired, memberLease, MemberLeaseParser, memberLeaseSelector, microTime,
  topologyConfigMapName, topologyFromConfigMap,
} from './kubernetes-objects.js';
import { ApiContact } from './contact.js';
import { LeaseObservations } from './lease-observations.js';
import type { LeaseState, Registration, Registry, RegistryEvents } from './registry.js';
import { MemberSchema, type Member, type Topology } from './schema.js';

/** The field manager of every Lease a member applies. */
const FIELD_MANAGER = 'groupchat-member';

export interface KubernetesRegistryOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The GroupChatCluster's name. */
  cluster: string;
  /** Name of this process's Lease: its pod's name (stable across restarts), or the member id. */
  leaseName?: string;
  /** The pod, when running in one, so its Lease is garbage-collected with it. */
  pod?: { name: string; uid: string };
  leaseDurationSeconds?: number;
  /** Reports a malformed topology or a failing watch (the registry keeps the last good state). */
  onWarning?: (message: string) => void;
}

export class KubernetesRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private current: Topology | undefined;
  private live: Member[] = [];
  private readonly configMaps: WatchCache<V1ConfigMap>;
  private readonly leases: WatchCache<V1Lease>;
  private readonly objects: KubernetesObjectApi;
  private readonly coordination: CoordinationV1Api;
  private readonly durationSeconds: number;
  private readonly contact: ApiContact;
  private expiry: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly core: CoreV1Api;
  private readonly registrations = new Set<Registration>();
  private readonly observations = new LeaseObservations();
  private readonly parser = new MemberLeaseParser();

  private constructor(private readonly options: KubernetesRegistryOptions) {
    super();
    this.setMaxListeners(0);
    const { kubeConfig, namespace, cluster } = options;
    this.durationSeconds = options.leaseDurationSeconds ?? 10;
    // Renewals go every third of the duration: two in a row missing is no contact.
    this.contact = new ApiContact((this.durationSeconds * 2000) / 3);
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    this.core = core;
    const coordination = kubeConfig.makeApiClient(CoordinationV1Api);
    this.coordination = coordination;
    const name = topologyConfigMapName(cluster);
    const warn = (what: string) => (err: unknown) => options.onWarning?.(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    // Watching one ConfigMap by name is what a Role limited to that resourceName allows.
    this.configMaps = new WatchCache<V1ConfigMap>(kubeConfig, {
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      fieldSelector: `metadata.name=${name}`,
      list: () => core.listNamespacedConfigMap({ namespace, fieldSelector: `metadata.name=${name}` }),
      onChange: () => this.readTopology(),
      onError: warn('watching the topology'),
    });
    const selector = memberLeaseSelector(cluster);
    this.leases = new WatchCache<V1Lease>(kubeConfig, {
      path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      labelSelector: selector,
      list: () => coordination.listNamespacedLease({ namespace, labelSelector: selector }),
      onChange: () => this.readMembers(),
      onError: warn('watching the member Leases'),
    });
  }

  /**
   * Resolves once the topology and the members are known; with a timeout,
   * rejects if they are not by then (null: waits as long as it takes, as a
   * pod must, rather than exit and be restarted while the API server is away).
   */
  static async connect(options: KubernetesRegistryOptions, timeoutMs: number | null = 60_000): Promise<KubernetesRegistry> {
    const registry = new KubernetesRegistry(options);
    try {
      await Promise.all([registry.configMaps.start(timeoutMs), registry.leases.start(timeoutMs)]);
      registry.contact.succeeded(Date.now());
      registry.readMembers();
      registry.readTopology();
      if (!registry.current) {
        await new Promise<void>((resolve, reject) => {
          const timer = timeoutMs === null ? undefined : setTimeout(() => reject(new Error(
            `no valid topology in ConfigMap ${options.namespace}/${topologyConfigMapName(options.cluster)}`)), timeoutMs);
          registry.once('topology', () => { clearTimeout(timer); resolve(); });
        });
      }
    } catch (err) {
      await registry.close();
      throw err;
    }
    // Leases expire without an event: look again at the rate they can expire.
    registry.expiry = setInterval(() => registry.readMembers(), 1000);
    registry.expiry.unref();
    // A process that registers nothing (a view) has no renewals to judge contact by: it reads the topology instead.
    let reading = false;
    registry.heartbeat = setInterval(() => {
      if (reading || registry.registrations.size > 0) return;
      reading = true;
      const { namespace, cluster } = options;
      registry.core.readNamespacedConfigMap({ namespace, name: topologyConfigMapName(cluster) })
        .then(() => registry.contact.succeeded(Date.now()), () => registry.contact.failed())
        .finally(() => { reading = false; });
    }, (registry.durationSeconds * 1000) / 3);
    registry.heartbeat.unref();
    return registry;
  }

  topology(): Topology {
    if (!this.current) throw new Error('the topology is not known yet');
    return this.current;
  }

  members(): Member[] {
    return this.live;
  }

  async register(member: Member): Promise<Registration> {
    const { namespace, cluster, pod } = this.options;
    let current = MemberSchema.parse(member);
    const name = this.options.leaseName ?? current.id;
    const apply = async () => {
      const lease = memberLease({
        name, namespace, cluster, member: current, durationSeconds: this.durationSeconds, renewedAt: new Date(),
        ...(pod ? { pod } : {}),
      });
      try {
        await this.objects.patch(lease, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      } catch (err) {
        this.contact.failed();
        throw err;
      }
      this.contact.succeeded(Date.now());
    };
    await apply();
    // Renew well within the duration so one slow or failed renewal is survived;
    // one at a time, so renewals do not pile up on an API server that hangs.
    let renewing = false;
    const renewal = setInterval(() => {
      if (renewing) return;
      renewing = true;
      apply().catch((err) => this.options.onWarning?.(`renewing Lease ${name}: ${(err as Error).message}`))
        .finally(() => { renewing = false; });
    }, (this.durationSeconds * 1000) / 3);
    renewal.unref();
    let closed = false;
    const registration: Registration = {
      update: async (patch) => {
        current = MemberSchema.parse({ ...current, ...patch });
        // A failed write is retried by the next renewal, which applies `current`.
        if (!closed) await apply().catch((err) => this.options.onWarning?.(`updating Lease ${name}: ${(err as Error).message}`));
      },
      close: async () => {
        if (closed) return;
        closed = true;
        clearInterval(renewal);
        this.registrations.delete(registration);
        await this.objects.delete({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace } })
          .catch((err) => {
            // Already gone is fine; anything else is worth a warning (the Lease still expires on its own).
            if (statusOf(err) !== 404) this.options.onWarning?.(`deleting Lease ${name}: ${(err as Error).message}`);
          });
      },
    };
    this.registrations.add(registration);
    return registration;
  }

  /**
   * Leader election on a Lease, as client-go's leader election does it: take
   * it when free or expired, renew it while held, and let the API server's
   * optimistic concurrency (resourceVersion) pick one winner of a race. The
   * term is the Lease's leaseTransitions.
   */
  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState> {
    const { namespace, cluster } = this.options;
    const leaseName = leaderLeaseName(cluster, name);
    const durationSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const now = new Date();
    const current = await this.coordination.readNamespacedLease({ name: leaseName, namespace }).catch((err) => {
      if (statusOf(err) === 404) return undefined;
      throw err;
    });
    if (!current) {
      const created = await this.coordination.createNamespacedLease({
        namespace,
        body: {
          metadata: { name: leaseName, namespace, labels: { [LABEL_CLUSTER]: cluster, [LABEL_LEASE]: 'leader' }, ...this.clusterOwner() },
          spec: leaseSpec(holder, durationSeconds, now, now, 1),
        },
      }).catch((err) => {
        if (statusOf(err) === 409) return undefined; // another candidate created it first
        throw err;
      });
      return created ? { holder, term: 1 } : this.leaseState(leaseName);
    }
    const spec = current.spec ?? {};
    const held = spec.holderIdentity || null;
    const expired = spec.renewTime === undefined
      || new Date(spec.renewTime).getTime() + (spec.leaseDurationSeconds ?? 0) * 1000 < now.getTime();
    const term = spec.leaseTransitions ?? 0;
    if (held !== null && held !== holder && !expired) return { holder: held, term };
    const taking = held !== holder;
    const acquired = spec.acquireTime && !taking ? new Date(spec.acquireTime) : now;
    const replaced = await this.coordination.replaceNamespacedLease({
      name: leaseName, namespace,
      body: {
        ...current,
        metadata: { ...current.metadata, ...(current.metadata?.ownerReferences?.length ? {} : this.clusterOwner()) },
        spec: leaseSpec(holder, durationSeconds, acquired, now, taking ? term + 1 : term),
      },
    }).catch((err) => {
      if (statusOf(err) === 409) return undefined; // someone else wrote it since we read it
      throw err;
    });
    return replaced ? { holder, term: taking ? term + 1 : term } : this.leaseState(leaseName);
  }

  /**
   * A leader Lease outlives its holders (its term must keep counting), so no
   * pod can own it; it belongs to the cluster, as the topology ConfigMap does,
   * and goes with it. The owner is copied from the ConfigMap (not as the
   * controller, and without blocking the owner's deletion, which would need
   * rights on the cluster object that pods do not have).
   */
  private clusterOwner(): { ownerReferences?: V1OwnerReference[] } {
    const configMap = this.configMaps.get(topologyConfigMapName(this.options.cluster), this.options.namespace);
    const owner = configMap?.metadata?.ownerReferences?.find((o) => o.controller) ?? configMap?.metadata?.ownerReferences?.[0];
    return owner ? { ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid }] } : {};
  }

  private async leaseState(leaseName: string): Promise<LeaseState> {
    const lease = await this.coordination.readNamespacedLease({ name: leaseName, namespace: this.options.namespace });
    return { holder: lease.spec?.holderIdentity || null, term: lease.spec?.leaseTransitions ?? 0 };
  }

  async close(): Promise<void> {
    clearInterval(this.expiry);
    clearInterval(this.heartbeat);
    await Promise.all([...this.registrations].map((r) => r.close()));
    await Promise.all([this.configMaps.stop(), this.leases.stop()]);
  }

  private readTopology(): void {
    const configMap = this.configMaps.get(topologyConfigMapName(this.options.cluster), this.options.namespace);
    if (!configMap) return; // deleted: keep serving the last topology
    let next: Topology;
    try {
      next = topologyFromConfigMap(configMap);
    } catch (err) {
      this.options.onWarning?.(`ignoring an invalid topology: ${(err as Error).message}`);
      return;
    }
    if (JSON.stringify(next) === JSON.stringify(this.current)) return;
    this.current = next;
    this.emit('topology', next);
  }

  private readMembers(): void {
    const now = Date.now();
    const contactSince = this.contact.since(now);
    const leases = this.leases.list(this.options.namespace);
    this.observations.retain(this.options.namespace, leases);
    const records = this.parser.parseAll(leases);
    const live = leases
      .flatMap((lease, i) => {
        const record = records[i];
        const observedAt = this.observations.observedAt(lease, now);
        return record && !leaseExpired(record.durationMs, observedAt, contactSince, now) ? [record.member] : [];
      })
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    // Unchanged Leases give the same member objects (MemberLeaseParser): comparing them is enough.
    if (live.length === this.live.length && live.every((m, i) => m === this.live[i])) return;
    this.live = live;
    this.emit('members', live);
  }
}

const statusOf = (err: unknown) => (err as { code?: number }).code;

function leaseSpec(holder: string, durationSeconds: number, acquired: Date, renewed: Date, transitions: number): V1Lease['spec'] {
  return {
    holderIdentity: holder,
    leaseDurationSeconds: durationSeconds,
    // The API's MicroTime, which a Date would not be serialised as.
    acquireTime: microTime(acquired) as unknown as Date,
    renewTime: microTime(renewed) as unknown as Date,
    leaseTransitions: transitions,
  };
}
