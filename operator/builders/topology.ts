// The state of a cluster and its projections. The state (the topology the
// operator decided, and the spec it was built from) is recorded in the
// cluster's status, the one place that cannot be deleted apart from the
// cluster itself; the topology ConfigMap the pods route by is rewritten from
// it whenever it is deleted or edited.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { TOPOLOGY_KEY, topologyConfigMapName, topologyData, topologyFromConfigMap } from '../../workloads/registry/kubernetes-objects.js';
import { TopologySchema, type Topology } from '../../workloads/registry/schema.js';
import { ClusterSpecSchema, type ClusterSpec, type ClusterStatus, type GroupChatCluster } from '../api/v1alpha1.js';
import { ownedMeta } from './names.js';

export type ConfigMap = V1ConfigMap & { apiVersion: 'v1'; kind: 'ConfigMap' };

/** Where operators before the state moved to the status kept the accepted spec. */
export const LEGACY_ACCEPTED_SPEC_KEY = 'accepted-spec.json';

export interface ClusterState {
  topology: Topology;
  /** The spec the topology and the objects were built from. */
  accepted: ClusterSpec;
}

export function topologyConfigMap(cr: GroupChatCluster, state: ClusterState): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(cr, topologyConfigMapName(cr.metadata.name)),
    data: topologyData(state.topology),
  };
}

/** The status fields that record the state. */
export function stateStatus(state: ClusterState): Pick<ClusterStatus, 'topology' | 'acceptedSpec'> {
  return { topology: TopologySchema.parse(state.topology), acceptedSpec: ClusterSpecSchema.parse(state.accepted) };
}

/** The state recorded in the status; undefined when none is; throws with the reason when it is not valid. */
export function clusterStateFromStatus(status: ClusterStatus | undefined): ClusterState | undefined {
  if (!status?.topology || !status.acceptedSpec) return undefined;
  const accepted = ClusterSpecSchema.safeParse(status.acceptedSpec);
  if (!accepted.success) throw new Error(`status.acceptedSpec is not a valid spec: ${describeIssues(accepted.error.issues)}`);
  return { topology: status.topology, accepted: accepted.data };
}

/**
 * The state as an older operator kept it, in the topology ConfigMap (its
 * topology beside the accepted spec), read once to carry such a cluster over;
 * throws with the reason when the ConfigMap does not hold it.
 */
export function clusterStateFromLegacyConfigMap(configMap: V1ConfigMap): ClusterState {
  const accepted = configMap.data?.[LEGACY_ACCEPTED_SPEC_KEY];
  if (accepted === undefined) throw new Error(`no ${LEGACY_ACCEPTED_SPEC_KEY} beside ${TOPOLOGY_KEY}`);
  return { topology: topologyFromConfigMap(configMap), accepted: ClusterSpecSchema.parse(JSON.parse(accepted)) };
}

/** zod's issues as one sentence: "spec.gateway.replicas: Too small: expected number to be >=0; …". */
export function describeIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}
