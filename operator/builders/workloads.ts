// The workloads of a cluster: one StatefulSet per (role, partition) with the
// partition's replicas for the partitioned roles, a Deployment for each
// stateless role.
import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import type { PartitionedRole } from '../../workloads/registry/schema.js';
import { DEFAULT_BROKER_STORAGE, type ClusterSpec, type GroupChatCluster } from '../api/v1alpha1.js';
import { ownedMeta, roleSelector, serviceName, workloadName } from './names.js';
import { podTemplate } from './pod.js';

export type StatefulSet = V1StatefulSet & { apiVersion: 'apps/v1'; kind: 'StatefulSet' };
export type Deployment = V1Deployment & { apiVersion: 'apps/v1'; kind: 'Deployment' };

export const STATELESS_ROLES = ['proxy', 'gateway'] as const;

/** The partitioned roles the spec deploys, with their spec. */
export function deployedPartitionedRoles(spec: ClusterSpec): [PartitionedRole, NonNullable<ClusterSpec[PartitionedRole]>][] {
  const roles: PartitionedRole[] = ['broker', 'router', 'pi', 'xiu', 'relay'];
  return roles.flatMap((role) => (spec[role] ? [[role, spec[role]!] as [PartitionedRole, NonNullable<ClusterSpec[PartitionedRole]>]] : []));
}

export function partitionStatefulSet(cr: GroupChatCluster, spec: ClusterSpec, role: PartitionedRole, partition: number): StatefulSet {
  const cluster = cr.metadata.name;
  const roleSpec = spec[role]!;
  // Brokers always keep their room log on a volume; pi and xiu name theirs.
  const storage = 'storage' in roleSpec && roleSpec.storage ? roleSpec.storage : role === 'broker' ? DEFAULT_BROKER_STORAGE : undefined;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: ownedMeta(cr, workloadName(cluster, role, partition), roleSelector(cluster, role, partition)),
    spec: {
      serviceName: serviceName(cluster, role),
      replicas: roleSpec.replicas,
      // Replicas of a partition are peers, not a chain: start and stop them together.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: roleSelector(cluster, role, partition) },
      template: podTemplate(cr, spec, { role, partition, stored: storage !== undefined }),
      ...(storage ? {
        volumeClaimTemplates: [{
          metadata: { name: 'data', labels: roleSelector(cluster, role, partition) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: String(storage.size) } },
            ...(storage.storageClassName ? { storageClassName: storage.storageClassName } : {}),
          },
        }],
        // Messages outlive a scale-down or a deleted cluster until someone decides otherwise.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      } : {}),
    },
  };
}

export function statefulSets(cr: GroupChatCluster, spec: ClusterSpec): StatefulSet[] {
  return deployedPartitionedRoles(spec).flatMap(([role, roleSpec]) =>
    Array.from({ length: roleSpec.partitions }, (_, partition) => partitionStatefulSet(cr, spec, role, partition)));
}

export function deployments(cr: GroupChatCluster, spec: ClusterSpec): Deployment[] {
  const cluster = cr.metadata.name;
  return STATELESS_ROLES.map((role) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: ownedMeta(cr, workloadName(cluster, role), roleSelector(cluster, role)),
    spec: {
      replicas: spec[role].replicas,
      selector: { matchLabels: roleSelector(cluster, role) },
      // Bring a new pod up before an old one goes: users and publishers reconnect, not wait.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: podTemplate(cr, spec, { role }),
    },
  }));
}
