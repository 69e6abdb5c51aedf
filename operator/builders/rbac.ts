// The identity the pods run as, allowed only what the kubernetes registry
// needs: read the topology ConfigMap, and hold member Leases.
import type { V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { topologyConfigMapName } from '../../workloads/registry/kubernetes-objects.js';
import type { GroupChatCluster } from '../api/v1alpha1.js';
import { ownedMeta, workloadIdentity } from './names.js';

export type ServiceAccount = V1ServiceAccount & { apiVersion: 'v1'; kind: 'ServiceAccount' };
export type Role = V1Role & { apiVersion: 'rbac.authorization.k8s.io/v1'; kind: 'Role' };
export type RoleBinding = V1RoleBinding & { apiVersion: 'rbac.authorization.k8s.io/v1'; kind: 'RoleBinding' };

/** What the pods may do; the operator holds the same, which lets it grant them. */
export const WORKLOAD_RULES = (cluster: string) => [
  // Watching one object by name: list and watch with a metadata.name field selector.
  { apiGroups: [''], resources: ['configmaps'], resourceNames: [topologyConfigMapName(cluster)], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
];

export function workloadRbac(cr: GroupChatCluster): [ServiceAccount, Role, RoleBinding] {
  const cluster = cr.metadata.name;
  const name = workloadIdentity(cluster);
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: ownedMeta(cr, name) },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: ownedMeta(cr, name), rules: WORKLOAD_RULES(cluster) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: ownedMeta(cr, name),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: cr.metadata.namespace }],
    },
  ];
}
