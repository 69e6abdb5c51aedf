// Names, labels and ownership of everything the operator creates for a
// GroupChatCluster. Pods and the registry find each other by these labels.
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { LABEL_CLUSTER, LABEL_PARTITION, LABEL_ROLE } from '../../workloads/registry/kubernetes-objects.js';
import type { Role } from '../../workloads/registry/schema.js';
import { API_VERSION, KIND, type GroupChatCluster } from '../api/v1alpha1.js';

export const MANAGED_BY = 'groupchat-operator';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';

/** Every object of a cluster carries these, so the operator can list and prune them. */
export function clusterLabels(cluster: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'groupchat',
    'app.kubernetes.io/instance': cluster,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_CLUSTER]: cluster,
  };
}

/** Selects the pods of a role, or of one partition of it. */
export function roleSelector(cluster: string, role: Role, partition?: number): Record<string, string> {
  return {
    [LABEL_CLUSTER]: cluster,
    [LABEL_ROLE]: role,
    ...(partition === undefined ? {} : { [LABEL_PARTITION]: String(partition) }),
  };
}

export const workloadName = (cluster: string, role: Role, partition?: number) =>
  partition === undefined ? `${cluster}-${role}` : `${cluster}-${role}-${partition}`;
export const serviceName = (cluster: string, role: Role) => `${cluster}-${role}`;
/** The identity the pods run as: only the topology ConfigMap and member Leases. */
export const workloadIdentity = (cluster: string) => `${cluster}-workload`;

export function ownerReference(cr: GroupChatCluster): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: cr.metadata.name, uid: cr.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** Metadata of an object owned by the cluster. */
export function ownedMeta(cr: GroupChatCluster, name: string, labels: Record<string, string> = {}): V1ObjectMeta {
  return {
    name,
    namespace: cr.metadata.namespace,
    labels: { ...clusterLabels(cr.metadata.name), ...labels },
    ownerReferences: [ownerReference(cr)],
  };
}
