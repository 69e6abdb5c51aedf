// One reconcile of one GroupChatCluster, level-triggered: read the cluster, the
// state the operator last wrote (topology ConfigMap) and the live members;
// decide the next state (scaling/doubling.ts); apply every desired object;
// prune what is no longer desired; report decisions as events and the outcome
// as status. Running it twice with nothing changed changes nothing.
import type { KubernetesObject, V1Deployment, V1Lease, V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../../workloads/observability/logger.js';
import { LABEL_CLUSTER, LABEL_ROLE, memberFromLease, topologyConfigMapName } from '../../workloads/registry/kubernetes-objects.js';
import type { Member, Role } from '../../workloads/registry/schema.js';
import { GroupChatClusterSchema, type GroupChatCluster } from '../api/v1alpha1.js';
import { desiredObjects, type DesiredObject } from '../builders/desired.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../builders/names.js';
import { clusterStateFrom, type ClusterState } from '../builders/topology.js';
import { step, type Decision } from '../scaling/doubling.js';
import { computeStatus, isNewRefusal, type ObservedWorkload } from '../status/status.js';
import { apiMessage, type KubeApi } from './kube-api.js';
import type { WorkResult } from './work-queue.js';

/** What the reconciler reads from the informers' caches. */
export interface Observed {
  statefulSet(namespace: string, name: string): V1StatefulSet | undefined;
  deployment(namespace: string, name: string): V1Deployment | undefined;
  leases(namespace: string): readonly V1Lease[];
}

/** Kinds the operator deletes when no longer desired (RBAC and the ConfigMap live as long as the cluster). */
const PRUNED_KINDS = [
  ['apps/v1', 'StatefulSet'], ['apps/v1', 'Deployment'], ['v1', 'Service'], ['policy/v1', 'PodDisruptionBudget'],
] as const;

/** How often an unfinished doubling looks at its members again (Leases expire without an event). */
const DOUBLING_RECHECK_MS = 2000;

export class Reconciler {
  constructor(private readonly api: KubeApi, private readonly observed: Observed, private readonly log: Logger) {}

  async reconcile(namespace: string, name: string): Promise<WorkResult> {
    const raw = await this.api.getCluster(namespace, name);
    if (raw === undefined) return {}; // deleted: the garbage collector removes what it owned
    const parsed = GroupChatClusterSchema.safeParse(raw);
    if (!parsed.success) {
      // The API server validates the same schema, so this is a stored object from an older CRD.
      this.log.warn({ namespace, cluster: name, issues: parsed.error.issues }, 'cluster does not match the schema; not reconciling');
      return {};
    }
    const cr = parsed.data;
    const configMap = await this.api.getConfigMap(namespace, topologyConfigMapName(name));
    let state: ClusterState | undefined;
    if (configMap) {
      try {
        state = clusterStateFrom(configMap);
      } catch (err) {
        // Never guess the state of a doubling: stop and say so.
        const decision: Decision = { type: 'Warning', reason: 'TopologyUnreadable', message: `${configMap.metadata?.name}: ${(err as Error).message}` };
        await this.record(cr, decision, 'Reconcile');
        throw new Error(decision.message);
      }
    }

    const result = step({ spec: cr.spec, state, members: this.members(namespace, name) });
    const desired = desiredObjects(cr, result.state);
    let applyError: string | undefined;
    try {
      for (const object of desired) await this.api.apply(object);
      await this.prune(cr, desired);
    } catch (err) {
      applyError = apiMessage(err);
    }

    if (!applyError) {
      for (const decision of result.decisions) {
        this.log.info({ namespace, cluster: name, reason: decision.reason }, decision.message);
        await this.record(cr, decision, 'Scale');
      }
    }
    if (isNewRefusal(result, cr.status, cr.metadata.generation)) {
      this.log.warn({ namespace, cluster: name, reason: result.refusal!.reason }, result.refusal!.message);
      await this.record(cr, result.refusal!, 'Refuse');
    }
    const status = computeStatus({
      generation: cr.metadata.generation, result, workloads: this.workloads(namespace, desired),
      previous: cr.status, now: new Date(), ...(applyError ? { applyError } : {}),
    });
    await this.api.applyStatus(cr, status);
    if (applyError) throw new Error(applyError);
    return result.state.topology.phase === 'Stable' ? {} : { requeueAfterMs: DOUBLING_RECHECK_MS };
  }

  /** Events are best effort, as with client-go's recorder: a lost one must not stop a reconcile. */
  private async record(cr: GroupChatCluster, decision: Decision, action: string): Promise<void> {
    await this.api.event(cr, decision, action)
      .catch((err) => this.log.warn({ cluster: cr.metadata.name, reason: decision.reason, err: apiMessage(err) }, 'could not record an event'));
  }

  private members(namespace: string, cluster: string): Member[] {
    const now = Date.now();
    return this.observed.leases(namespace)
      .filter((lease) => lease.metadata?.labels?.[LABEL_CLUSTER] === cluster)
      .map((lease) => memberFromLease(lease, now))
      .filter((m): m is Member => m !== undefined);
  }

  private workloads(namespace: string, desired: DesiredObject[]): ObservedWorkload[] {
    return desired.flatMap((object): ObservedWorkload[] => {
      if (object.kind !== 'StatefulSet' && object.kind !== 'Deployment') return [];
      const name = object.metadata!.name!;
      const current = object.kind === 'StatefulSet' ? this.observed.statefulSet(namespace, name) : this.observed.deployment(namespace, name);
      return [{
        role: object.metadata!.labels![LABEL_ROLE] as Role,
        desired: object.spec!.replicas ?? 0,
        ready: current?.status?.readyReplicas ?? 0,
      }];
    });
  }

  private async prune(cr: GroupChatCluster, desired: DesiredObject[]): Promise<void> {
    const wanted = new Set(desired.map((o) => `${o.kind}/${o.metadata!.name}`));
    const selector = `${LABEL_CLUSTER}=${cr.metadata.name},${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    for (const [apiVersion, kind] of PRUNED_KINDS) {
      const existing: KubernetesObject[] = await this.api.list(apiVersion, kind, cr.metadata.namespace, selector);
      for (const object of existing) {
        const ownedByThis = object.metadata?.ownerReferences?.some((o) => o.uid === cr.metadata.uid);
        if (ownedByThis && !wanted.has(`${kind}/${object.metadata!.name}`)) {
          this.log.info({ kind, name: object.metadata!.name }, 'deleting an object no longer desired');
          await this.api.delete({ apiVersion, kind, metadata: { name: object.metadata!.name!, namespace: cr.metadata.namespace } });
        }
      }
    }
  }
}
