// One reconcile of one GroupChatCluster, level-triggered: read the cluster
// (its status records the state: topology and accepted spec) and the live
// members; decide the next state (scaling/doubling.ts); record a new state in
// the status before anything acts on it; apply every desired object that
// changed; prune what is no longer desired; report decisions as events and
// the outcome as status, written only when it changed. Running it twice with
// nothing changed writes nothing.
import { ApiException, type KubernetesObject, type V1Lease, type V1Pod } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../../workloads/observability/logger.js';
import { LABEL_CLUSTER, LABEL_ROLE, memberFromLease, topologyConfigMapName } from '../../workloads/registry/kubernetes-objects.js';
import { LeaseObservations } from '../../workloads/registry/lease-observations.js';
import type { Member, Role } from '../../workloads/registry/schema.js';
import { GroupChatClusterSchema, type ClusterStatus, type GroupChatCluster } from '../api/v1alpha1.js';
import type { DesiredObject } from '../builders/desired.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../builders/names.js';
import { clusterStateFromLegacyConfigMap, clusterStateFromStatus, describeIssues, type ClusterState } from '../builders/topology.js';
import { step, type Decision, type ScalingResult } from '../scaling/doubling.js';
import { describePodProblems } from '../status/pod-problems.js';
import { computeStatus, isNewRefusal, isPaused, pausedStatus, sameStatus, type ObservedWorkload } from '../status/status.js';
import { AppliedObjects } from './applied.js';
import { DesiredObjectsCache } from './desired-cache.js';
import { apiMessage, type KubeApi } from './kube-api.js';
import { applies, statusWrites } from './metrics.js';
import type { WorkResult } from './work-queue.js';

export interface OwnedKind { apiVersion: string; kind: string; plural: string; pruned: boolean }

/**
 * Every kind the operator creates, watched through informers. Pruned: deleted
 * when no longer desired (RBAC and the ConfigMap live as long as the cluster).
 */
export const OWNED_KINDS: readonly OwnedKind[] = [
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', pruned: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', plural: 'roles', pruned: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', plural: 'rolebindings', pruned: false },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', pruned: true },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets', pruned: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', pruned: true },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', pruned: true },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies', pruned: true },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', pruned: false },
];

/** What the reconciler reads from the informers' caches. */
export interface Observed {
  get(kind: Pick<OwnedKind, 'apiVersion' | 'kind'>, namespace: string, name: string): KubernetesObject | undefined;
  list(kind: Pick<OwnedKind, 'apiVersion' | 'kind'>, namespace: string): readonly KubernetesObject[];
  leases(namespace: string): readonly V1Lease[];
  pods(namespace: string): readonly V1Pod[];
}

/** How often an unfinished doubling looks at its members again (Leases expire without an event). */
const DOUBLING_RECHECK_MS = 2000;

export class Reconciler {
  private readonly applied = new AppliedObjects();
  private readonly desired = new DesiredObjectsCache();
  /** Member Leases are judged by when this operator saw them renewed, not by the members' renewTime. */
  private readonly leaseObservations = new LeaseObservations();

  constructor(private readonly api: KubeApi, private readonly observed: Observed, private readonly log: Logger) {}

  async reconcile(namespace: string, name: string): Promise<WorkResult> {
    const raw = await this.api.getCluster(namespace, name);
    if (raw === undefined) {
      // Deleted: the garbage collector removes what it owned.
      this.desired.forget(namespace, name);
      return {};
    }
    const parsed = GroupChatClusterSchema.safeParse(raw);
    if (!parsed.success) {
      // The API server validates the same schema, so this is a stored object from an older CRD.
      this.log.warn({ namespace, cluster: name, problems: describeIssues(parsed.error.issues) }, 'cluster does not match the schema; not reconciling');
      return {};
    }
    const cr = parsed.data;
    if (isPaused(cr)) {
      // Paused: nothing changes but the status, which says so.
      const status = pausedStatus(cr.status, cr.metadata.generation, new Date());
      if (!sameStatus(status, cr.status)) await this.writeStatus(cr, status);
      return {};
    }
    let stored: ClusterState | undefined;
    try {
      stored = await this.storedState(cr);
    } catch (err) {
      // Never guess the state of a doubling: stop and say so.
      const decision: Decision = { type: 'Warning', reason: 'StateUnreadable', message: (err as Error).message };
      await this.record(cr, decision, 'Reconcile');
      throw new Error(decision.message);
    }

    const result = step({ spec: cr.spec, state: stored, members: this.members(namespace, name), ...(cr.status?.epoch ? { lastEpoch: cr.status.epoch } : {}) });
    const desired = this.desired.of(cr, result.state);
    let written: ClusterStatus | undefined = cr.status;
    if (!isDeepStrictEqual(stored, result.state)) {
      // The decision is recorded before anything acts on it, and only if
      // nobody changed the cluster since it was read (another operator that
      // still believes it leads cannot record a second, different one).
      written = this.status(cr, result, desired);
      await this.writeStatus(cr, written, cr.metadata.resourceVersion);
      for (const decision of result.decisions) {
        this.log.info({ namespace, cluster: name, reason: decision.reason }, decision.message);
        await this.record(cr, decision, 'Scale');
      }
    }

    let applyError: string | undefined;
    try {
      for (const object of desired) await this.apply(object);
      await this.prune(cr, desired);
    } catch (err) {
      applyError = apiMessage(err);
      if (err instanceof ApiException && err.code === 403) {
        applyError += `. The operator may write only in the namespaces its chart lists in clusterNamespaces; add ${namespace} there`;
      }
    }
    if (isNewRefusal(result, cr.status, cr.metadata.generation)) {
      this.log.warn({ namespace, cluster: name, reason: result.refusal!.reason }, result.refusal!.message);
      await this.record(cr, result.refusal!, 'Refuse');
    }
    const status = this.status(cr, result, desired, applyError);
    if (!sameStatus(status, written)) await this.writeStatus(cr, status);
    if (applyError) throw new Error(applyError);
    return result.state.topology.phase === 'Stable' ? {} : { requeueAfterMs: DOUBLING_RECHECK_MS };
  }

  /** The state in the status; for a cluster an older operator ran, the state it kept in the ConfigMap. */
  private async storedState(cr: GroupChatCluster): Promise<ClusterState | undefined> {
    const fromStatus = clusterStateFromStatus(cr.status);
    if (fromStatus || cr.status?.topology) return fromStatus;
    const configMap = await this.api.getConfigMap(cr.metadata.namespace, topologyConfigMapName(cr.metadata.name));
    if (!configMap) return undefined;
    try {
      return clusterStateFromLegacyConfigMap(configMap);
    } catch (err) {
      throw new Error(`${configMap.metadata?.name}: ${(err as Error).message}`);
    }
  }

  private status(cr: GroupChatCluster, result: ScalingResult, desired: readonly DesiredObject[], applyError?: string): ClusterStatus {
    const { namespace, name } = cr.metadata;
    const podProblems = describePodProblems(this.observed.pods(namespace).filter((p) => p.metadata?.labels?.[LABEL_CLUSTER] === name));
    return computeStatus({
      cluster: name, generation: cr.metadata.generation, result, workloads: this.workloads(namespace, desired),
      previous: cr.status, now: new Date(), ...(applyError ? { applyError } : {}), ...(podProblems ? { podProblems } : {}),
    });
  }

  private async writeStatus(cr: GroupChatCluster, status: ClusterStatus, resourceVersion?: string): Promise<void> {
    await this.api.applyStatus(cr, status, resourceVersion);
    statusWrites.inc();
  }

  private async apply(object: DesiredObject): Promise<void> {
    const live = this.observed.get(object, object.metadata!.namespace!, object.metadata!.name!);
    if (this.applied.upToDate(object, live)) {
      applies.inc({ kind: object.kind, outcome: 'skipped' });
      return;
    }
    this.applied.record(object, await this.api.apply(object));
    applies.inc({ kind: object.kind, outcome: 'applied' });
  }

  /** Events are best effort, as with client-go's recorder: a lost one must not stop a reconcile. */
  private async record(cr: GroupChatCluster, decision: Decision, action: string): Promise<void> {
    await this.api.event(cr, decision, action)
      .catch((err) => this.log.warn({ cluster: cr.metadata.name, reason: decision.reason, err: apiMessage(err) }, 'could not record an event'));
  }

  private members(namespace: string, cluster: string): Member[] {
    const now = Date.now();
    const leases = this.observed.leases(namespace);
    this.leaseObservations.retain(namespace, leases);
    return leases
      .filter((lease) => lease.metadata?.labels?.[LABEL_CLUSTER] === cluster)
      .map((lease) => memberFromLease(lease, this.leaseObservations.observedAt(lease, now), now))
      .filter((m): m is Member => m !== undefined);
  }

  private workloads(namespace: string, desired: readonly DesiredObject[]): ObservedWorkload[] {
    return desired.flatMap((object): ObservedWorkload[] => {
      if (object.kind !== 'StatefulSet' && object.kind !== 'Deployment') return [];
      const current = this.observed.get(object, namespace, object.metadata!.name!) as { status?: { readyReplicas?: number } } | undefined;
      return [{
        role: object.metadata!.labels![LABEL_ROLE] as Role,
        desired: object.spec!.replicas ?? 0,
        ready: current?.status?.readyReplicas ?? 0,
      }];
    });
  }

  private async prune(cr: GroupChatCluster, desired: readonly DesiredObject[]): Promise<void> {
    const wanted = new Set(desired.map((o) => `${o.kind}/${o.metadata!.name}`));
    for (const kind of OWNED_KINDS.filter((k) => k.pruned)) {
      for (const object of this.observed.list(kind, cr.metadata.namespace)) {
        const ownedByThis = object.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY
          && object.metadata?.ownerReferences?.some((o) => o.uid === cr.metadata.uid);
        if (ownedByThis && !wanted.has(`${kind.kind}/${object.metadata!.name}`)) {
          this.log.info({ kind: kind.kind, name: object.metadata!.name }, 'deleting an object no longer desired');
          const target = { apiVersion: kind.apiVersion, kind: kind.kind, metadata: { name: object.metadata!.name!, namespace: cr.metadata.namespace } };
          await this.api.delete(target);
          this.applied.forget(target);
        }
      }
    }
  }
}
