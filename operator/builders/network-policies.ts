// The fences of one cluster, in its namespace: peer and health ports only
// from the cluster's own pods, users only to the gateways' WebSocket port,
// publishers only to the proxies' peer port, and metrics scrapes only from
// the namespace spec.networkPolicy.metricsNamespace names. Policies add up: a
// pod admits what any policy selecting it admits, and nothing else.
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyIngressRule, V1NetworkPolicyPort } from '@kubernetes/client-node';
import { LABEL_CLUSTER } from '../../workloads/registry/kubernetes-objects.js';
import type { ClusterSpec, GroupChatCluster } from '../api/v1alpha1.js';
import { LABEL_MANAGED_BY, MANAGED_BY, ownedMeta, roleSelector } from './names.js';
import { PORTS } from './pod.js';

export type NetworkPolicy = V1NetworkPolicy & { apiVersion: 'networking.k8s.io/v1'; kind: 'NetworkPolicy' };

const tcp = (port: number): V1NetworkPolicyPort => ({ port, protocol: 'TCP' });

export function networkPolicies(cr: GroupChatCluster, spec: ClusterSpec): NetworkPolicy[] {
  const cluster = cr.metadata.name;
  const clusterPods = { matchLabels: { [LABEL_CLUSTER]: cluster, [LABEL_MANAGED_BY]: MANAGED_BY } };
  const policy = (suffix: string, podSelector: V1LabelSelector, ingress: V1NetworkPolicyIngressRule[]): NetworkPolicy => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: ownedMeta(cr, `${cluster}-${suffix}`),
    spec: { podSelector, policyTypes: ['Ingress'], ingress },
  });
  const metricsNamespace = spec.networkPolicy?.metricsNamespace;
  // `_from` is the client's name for a rule's `from`; it is sent as `from`.
  return [
    policy('peers', clusterPods, [{ _from: [{ podSelector: clusterPods }], ports: [tcp(PORTS.peer), tcp(PORTS.http)] }]),
    policy('users', { matchLabels: roleSelector(cluster, 'gateway') }, [{ ports: [tcp(PORTS.ws)] }]),
    policy('publishers', { matchLabels: roleSelector(cluster, 'proxy') }, [{ ports: [tcp(PORTS.peer)] }]),
    ...(metricsNamespace ? [policy('metrics', clusterPods, [{
      _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': metricsNamespace } } }],
      ports: [tcp(PORTS.http)],
    }])] : []),
  ];
}
