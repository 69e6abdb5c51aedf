// Everything a cluster should consist of, in the order it is applied: the
// pods' identity and fences first, then services and workloads, and the topology last,
// so a phase is only published once the objects it speaks of exist.
import type { GroupChatCluster } from '../api/v1alpha1.js';
import { networkPolicies } from './network-policies.js';
import { workloadRbac } from './rbac.js';
import { disruptionBudgets, services } from './services.js';
import { topologyConfigMap, type ClusterState } from './topology.js';
import { deployments, statefulSets } from './workloads.js';

export function desiredObjects(cr: GroupChatCluster, state: ClusterState) {
  const spec = state.accepted;
  const workloads = [...statefulSets(cr, spec), ...deployments(cr, spec)];
  return [
    ...workloadRbac(cr),
    ...networkPolicies(cr, spec),
    ...services(cr, spec),
    ...workloads,
    ...disruptionBudgets(cr, workloads),
    topologyConfigMap(cr, state),
  ];
}

export type DesiredObject = ReturnType<typeof desiredObjects>[number];
