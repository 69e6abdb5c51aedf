// The topology ConfigMap: the registry document every pod routes by, and,
// beside it, the spec the operator last accepted. Together they are the whole
// state of a partition doubling, so an operator restarted mid-way reads them
// back and carries on.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { TOPOLOGY_KEY, topologyConfigMapName, topologyData, topologyFromConfigMap } from '../../workloads/registry/kubernetes-objects.js';
import type { Topology } from '../../workloads/registry/schema.js';
import { ClusterSpecSchema, type ClusterSpec, type GroupChatCluster } from '../api/v1alpha1.js';
import { ownedMeta } from './names.js';

export type ConfigMap = V1ConfigMap & { apiVersion: 'v1'; kind: 'ConfigMap' };

export const ACCEPTED_SPEC_KEY = 'accepted-spec.json';

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
    data: { ...topologyData(state.topology), [ACCEPTED_SPEC_KEY]: JSON.stringify(ClusterSpecSchema.parse(state.accepted)) },
  };
}

/** Reads the state back; throws with the reason when the ConfigMap is not one the operator wrote. */
export function clusterStateFrom(configMap: V1ConfigMap): ClusterState {
  const accepted = configMap.data?.[ACCEPTED_SPEC_KEY];
  if (accepted === undefined) throw new Error(`no ${ACCEPTED_SPEC_KEY} beside ${TOPOLOGY_KEY}`);
  return { topology: topologyFromConfigMap(configMap), accepted: ClusterSpecSchema.parse(JSON.parse(accepted)) };
}
