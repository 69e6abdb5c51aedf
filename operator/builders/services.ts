// Services: a headless one per partitioned role (the StatefulSets' governing
// service: stable pod DNS names), and a load-balanced one in front of the
// stateless entry points (proxies for publishers, gateways for users).
import type { V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import type { ClusterSpec, GroupChatCluster } from '../api/v1alpha1.js';
import { ownedMeta, roleSelector, serviceName } from './names.js';
import { PORTS } from './pod.js';
import { deployedPartitionedRoles, STATELESS_ROLES, type Deployment, type StatefulSet } from './workloads.js';

export type Service = V1Service & { apiVersion: 'v1'; kind: 'Service' };
export type PodDisruptionBudget = V1PodDisruptionBudget & { apiVersion: 'policy/v1'; kind: 'PodDisruptionBudget' };

export function services(cr: GroupChatCluster, spec: ClusterSpec): Service[] {
  const cluster = cr.metadata.name;
  const headless: Service[] = deployedPartitionedRoles(spec).map(([role]) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(cr, serviceName(cluster, role), roleSelector(cluster, role)),
    spec: {
      clusterIP: 'None',
      // Members find each other through the registry; DNS should not hide a starting pod.
      publishNotReadyAddresses: true,
      selector: roleSelector(cluster, role),
      ports: [
        { name: 'peer', port: PORTS.peer, targetPort: 'peer', protocol: 'TCP' },
        { name: 'http', port: PORTS.http, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  }));
  const entryPorts = { proxy: { name: 'peer', port: PORTS.peer }, gateway: { name: 'ws', port: PORTS.ws } } as const;
  const entry: Service[] = STATELESS_ROLES.map((role) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(cr, serviceName(cluster, role), roleSelector(cluster, role)),
    spec: {
      type: 'ClusterIP',
      selector: roleSelector(cluster, role),
      ports: [{ ...entryPorts[role], targetPort: entryPorts[role].name, protocol: 'TCP' }],
    },
  }));
  return [...headless, ...entry];
}

/** One voluntary disruption at a time per partition (and per stateless role). */
export function disruptionBudgets(cr: GroupChatCluster, workloads: (StatefulSet | Deployment)[]): PodDisruptionBudget[] {
  return workloads.map((w) => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMeta(cr, w.metadata!.name!, w.spec!.selector.matchLabels),
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: w.spec!.selector.matchLabels! },
    },
  }));
}
