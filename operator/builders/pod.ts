// The pod every role runs: the one workload image with the role as its first
// argument, configured through GROUPCHAT_* variables (workloads/runtime/config.ts),
// locked down to run as non-root on a read-only root file system.
import type { V1Container, V1ResourceRequirements, V1EnvVar, V1PodTemplateSpec, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Role } from '../../workloads/registry/schema.js';
import type { ClusterSpec, GroupChatCluster } from '../api/v1alpha1.js';
import { clusterLabels, roleSelector, workloadIdentity } from './names.js';

export const PORTS = { peer: 7000, http: 8080, ws: 8081 } as const;
export const DATA_DIR = '/var/lib/groupchat';
export const AUTH_DIR = '/etc/groupchat/auth';
export const PEER_SECRET_DIR = '/etc/groupchat/peer';
/** The image's non-root user (see the workload Dockerfile). */
export const RUN_AS_USER = 10001;

const field = (name: string, fieldPath: string): V1EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });
const value = (name: string, v: string | number): V1EnvVar => ({ name, value: String(v) });

export interface PodOptions {
  role: Role;
  /** Set for a partitioned role's StatefulSet. */
  partition?: number;
  /** The StatefulSet mounts its volume claim `data` here. */
  stored?: boolean;
}

export function podTemplate(cr: GroupChatCluster, spec: ClusterSpec, o: PodOptions): V1PodTemplateSpec {
  const cluster = cr.metadata.name;
  const roleSpec = spec[o.role];
  const env: V1EnvVar[] = [
    value('GROUPCHAT_REGISTRY', 'kubernetes'),
    value('GROUPCHAT_CLUSTER', cluster),
    field('GROUPCHAT_NAMESPACE', 'metadata.namespace'),
    field('GROUPCHAT_POD_NAME', 'metadata.name'),
    field('GROUPCHAT_POD_UID', 'metadata.uid'),
    value('GROUPCHAT_HOST', '0.0.0.0'),
    field('GROUPCHAT_ADVERTISE_HOST', 'status.podIP'),
    value('GROUPCHAT_PORT', PORTS.peer),
    value('GROUPCHAT_HTTP_PORT', PORTS.http),
  ];
  if (o.role === 'gateway') env.push(value('GROUPCHAT_WS_PORT', PORTS.ws));
  if (o.partition !== undefined) {
    env.push(value('GROUPCHAT_PARTITION', o.partition));
    // A StatefulSet pod's ordinal is its replica index within the partition.
    env.push(field('GROUPCHAT_REPLICA', "metadata.labels['apps.kubernetes.io/pod-index']"));
    env.push(field('GROUPCHAT_ORDINAL', "metadata.labels['apps.kubernetes.io/pod-index']"));
  }
  if (o.stored) env.push(value('GROUPCHAT_DATA_DIR', DATA_DIR));

  // The root file system is read-only: scratch space is an emptyDir.
  const volumes: V1Volume[] = [{ name: 'tmp', emptyDir: {} }];
  const mounts: V1VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
  if (o.stored) mounts.push({ name: 'data', mountPath: DATA_DIR });
  // Only gateways verify login tokens, so only their pods see the key.
  if (spec.authSecretRef && o.role === 'gateway') {
    const { name, key } = spec.authSecretRef;
    volumes.push({ name: 'auth', secret: { secretName: name, items: [{ key, path: key }] } });
    mounts.push({ name: 'auth', mountPath: AUTH_DIR, readOnly: true });
    env.push(value('GROUPCHAT_AUTH_KEY_FILE', `${AUTH_DIR}/${key}`));
  }

  // Every role speaks the peer protocol, so every pod proves the cluster secret.
  if (spec.peerSecretRef) {
    const { name, key } = spec.peerSecretRef;
    volumes.push({ name: 'peer-secret', secret: { secretName: name, items: [{ key, path: key }] } });
    mounts.push({ name: 'peer-secret', mountPath: PEER_SECRET_DIR, readOnly: true });
    env.push(value('GROUPCHAT_PEER_SECRET_FILE', `${PEER_SECRET_DIR}/${key}`));
  }

  const container: V1Container = {
    name: o.role,
    image: spec.image,
    ...(spec.imagePullPolicy ? { imagePullPolicy: spec.imagePullPolicy } : {}),
    args: [o.role],
    env,
    ports: [
      { name: 'peer', containerPort: PORTS.peer, protocol: 'TCP' },
      { name: 'http', containerPort: PORTS.http, protocol: 'TCP' },
      ...(o.role === 'gateway' ? [{ name: 'ws', containerPort: PORTS.ws, protocol: 'TCP' }] : []),
    ],
    // The health port opens before anything else (registry, snapshots, RocksDB), so
    // the startup probe only waits for the process; liveness fails only on an
    // event loop wedged for a minute (never on the API server or a peer being away);
    // readiness is the role's own (its links), never the API server's.
    startupProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 150 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10, timeoutSeconds: 10, failureThreshold: 6 },
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 3 },
    ...(roleSpec?.resources ? { resources: resourceRequirements(roleSpec.resources) } : {}),
    volumeMounts: mounts,
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };

  return {
    metadata: { labels: { ...clusterLabels(cluster), ...roleSelector(cluster, o.role, o.partition) } },
    spec: {
      serviceAccountName: workloadIdentity(cluster),
      securityContext: {
        runAsNonRoot: true, runAsUser: RUN_AS_USER, runAsGroup: RUN_AS_USER, fsGroup: RUN_AS_USER,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [container],
      volumes,
    },
  };
}

type Quantities = Record<string, string | number> | undefined;
const quantities = (q: Quantities) => (q ? Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)])) : undefined);

function resourceRequirements(r: { requests?: Quantities; limits?: Quantities }): V1ResourceRequirements {
  const requests = quantities(r.requests);
  const limits = quantities(r.limits);
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}
