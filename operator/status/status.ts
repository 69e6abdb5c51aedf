// The status a cluster reports, computed from what the reconcile decided and
// what the workloads' own status says. Pure: the reconciler only writes it.
import { isDeepStrictEqual } from 'node:util';
import type { Role } from '../../workloads/registry/schema.js';
import type { ClusterStatus, Condition, GroupChatCluster, RoleStatus } from '../api/v1alpha1.js';
import { roleSelector } from '../builders/names.js';
import { stateStatus } from '../builders/topology.js';
import type { ScalingResult } from '../scaling/doubling.js';

export interface ObservedWorkload {
  role: Role;
  /** Pods the workload should have. */
  desired: number;
  /** Pods its controller reports ready. */
  ready: number;
}

export interface StatusInput {
  /** The GroupChatCluster's name. */
  cluster: string;
  generation: number;
  result: ScalingResult;
  workloads: ObservedWorkload[];
  /** Set when applying the desired objects failed. */
  applyError?: string;
  /** Set when pods cannot run (pod-problems.ts): one sentence. */
  podProblems?: string;
  previous: ClusterStatus | undefined;
  now: Date;
}

export function computeStatus(input: StatusInput): ClusterStatus {
  const { result, workloads, applyError, podProblems, generation } = input;
  const { topology } = result.state;

  const roles: Record<string, RoleStatus> = {};
  for (const w of workloads) {
    const r = (roles[w.role] ??= { desired: 0, ready: 0 });
    r.desired += w.desired;
    r.ready += Math.min(w.ready, w.desired);
  }
  for (const [role, layout] of Object.entries(topology.next?.roles ?? topology.roles)) {
    if (roles[role]) roles[role].partitions = layout.partitions;
  }
  const notReady = Object.entries(roles).filter(([, r]) => r.ready < r.desired).map(([role, r]) => `${role} ${r.ready}/${r.desired}`);

  const conditions: Omit<Condition, 'lastTransitionTime'>[] = [
    applyError
      ? { type: 'Degraded', status: 'True', reason: 'ApplyFailed', message: applyError }
      : result.refusal
        ? { type: 'Degraded', status: 'True', reason: result.refusal.reason, message: result.refusal.message }
        : podProblems
          ? { type: 'Degraded', status: 'True', reason: 'PodProblems', message: podProblems }
          : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
    topology.phase !== 'Stable'
      ? { type: 'Progressing', status: 'True', reason: `Doubling${topology.phase}`, message: result.waitingFor ?? '' }
      : notReady.length > 0
        ? { type: 'Progressing', status: 'True', reason: 'RollingOut', message: `ready: ${notReady.join(', ')}` }
        : { type: 'Progressing', status: 'False', reason: 'Stable', message: '' },
    notReady.length === 0 && !applyError
      ? { type: 'Ready', status: 'True', reason: 'AllReady', message: '' }
      : { type: 'Ready', status: 'False', reason: 'NotReady', message: applyError ?? `ready: ${notReady.join(', ')}` },
  ];

  const total = Object.values(roles).reduce((sum, r) => ({ ready: sum.ready + r.ready, desired: sum.desired + r.desired }), { ready: 0, desired: 0 });
  return {
    observedGeneration: generation,
    conditions: conditions.map((c) => withTransitionTime({ ...c, observedGeneration: generation }, input.previous, input.now)),
    epoch: topology.epoch,
    phase: topology.phase,
    roles,
    ready: `${total.ready}/${total.desired}`,
    gatewayReplicas: roles.gateway?.desired ?? 0,
    gatewaySelector: labelSelector(roleSelector(input.cluster, 'gateway')),
    ...stateStatus(result.state),
  };
}

/** A label selector in its string form, as the scale subresource reports it. */
const labelSelector = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

/** The annotation that pauses reconciling a cluster: "true" stops every change but the status. */
export const PAUSED_ANNOTATION = 'groupchat.dev/paused';

export const isPaused = (cr: GroupChatCluster) => cr.metadata.annotations?.[PAUSED_ANNOTATION] === 'true';

/**
 * The status of a paused cluster: the last one, with a Paused condition and
 * the generation seen (as a paused Deployment's), so an edit shows as
 * observed and not acted on.
 */
export function pausedStatus(previous: ClusterStatus | undefined, generation: number, now: Date): ClusterStatus {
  const paused = withTransitionTime({
    type: 'Paused', status: 'True', reason: 'PausedByAnnotation', observedGeneration: generation,
    message: `Reconciling is paused by the annotation ${PAUSED_ANNOTATION}: nothing is created, changed or deleted until it is removed.`,
  }, previous, now);
  return { ...previous, observedGeneration: generation, conditions: [...(previous?.conditions ?? []).filter((c) => c.type !== 'Paused'), paused] };
}

/** Whether writing `next` would change the stored status (compared as the JSON the API server keeps). */
export function sameStatus(next: ClusterStatus, stored: ClusterStatus | undefined): boolean {
  return stored !== undefined && isDeepStrictEqual(JSON.parse(JSON.stringify(next)), JSON.parse(JSON.stringify(stored)));
}

/** A condition keeps the time it last changed status. */
function withTransitionTime(c: Omit<Condition, 'lastTransitionTime'>, previous: ClusterStatus | undefined, now: Date): Condition {
  const before = previous?.conditions?.find((p) => p.type === c.type);
  const lastTransitionTime = before && before.status === c.status ? before.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { ...c, lastTransitionTime };
}

/** Whether a refusal is news: not already reported for this generation. */
export function isNewRefusal(result: ScalingResult, previous: ClusterStatus | undefined, generation: number): boolean {
  if (!result.refusal) return false;
  const before = previous?.conditions?.find((c) => c.type === 'Degraded');
  return !(before && before.reason === result.refusal.reason && before.message === result.refusal.message
    && previous?.observedGeneration === generation);
}
