// GroupChatCluster (groupchat.dev/v1alpha1): the zod schema is the single
// source of the types, of the validation the operator applies to what it reads,
// and (through crd.ts) of the CRD's OpenAPI schema the API server enforces.
// Whatever zod checks that OpenAPI cannot express is carried by `.meta()` as
// CEL rules or patterns, so both sides reject the same documents.
import { z } from 'zod';
import { TOPOLOGY_PHASES, TopologySchema } from '../../workloads/registry/schema.js';

export const GROUP = 'groupchat.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'GroupChatCluster';
export const PLURAL = 'groupchatclusters';
export const SINGULAR = 'groupchatcluster';
export const SHORT_NAMES = ['gcc'];

/** Partition counts only ever double, so only powers of two are valid. */
export const MAX_PARTITIONS = 1024;
const POWERS_OF_TWO = Array.from({ length: Math.log2(MAX_PARTITIONS) + 1 }, (_, i) => 2 ** i);
const isPowerOfTwo = (n: number) => POWERS_OF_TWO.includes(n);

const Partitions = z.number().int().min(1).max(MAX_PARTITIONS)
  .refine(isPowerOfTwo, { message: `partitions must be a power of two from 1 to ${MAX_PARTITIONS}` })
  .meta({
    description: 'Number of partitions; a power of two, since partitions only grow by doubling.',
    'x-kubernetes-validations': [{
      rule: `self in [${POWERS_OF_TWO.join(', ')}]`,
      message: `partitions must be a power of two from 1 to ${MAX_PARTITIONS}`,
    }],
  });

// The API's resource.Quantity: an integer, or a string such as "500m" or "1Gi";
// here never negative. The CEL rule carries the sentence the API server answers with.
const QUANTITY = /^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
const QUANTITY_MESSAGE = 'must be a non-negative quantity such as 500m, 2 or 1Gi';
export const QuantitySchema = z.union([z.number().int().nonnegative(), z.string().max(20)])
  .refine((q) => typeof q === 'number' || QUANTITY.test(q), { message: QUANTITY_MESSAGE })
  .meta({
    'x-kubernetes-int-or-string': true,
    'x-kubernetes-validations': [{ rule: "type(self) == int ? self >= 0 : !self.startsWith('-') && isQuantity(self)", message: QUANTITY_MESSAGE }],
  });

/** Resource names a container may request: the built-in ones, huge pages, and extended resources (domain/name). */
const BUILT_IN_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'];
const isResourceName = (name: string) => BUILT_IN_RESOURCES.includes(name) || name.startsWith('hugepages-') || name.includes('/');
const RESOURCE_NAME_MESSAGE = 'resource names are cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource such as example.com/gpu';
const Quantities = (what: string) => z.record(z.string().max(253), QuantitySchema)
  .refine((q) => Object.keys(q).every(isResourceName), { message: RESOURCE_NAME_MESSAGE })
  .meta({
    description: `${what} per resource name (cpu, memory, ...).`,
    maxProperties: 5,
    'x-kubernetes-validations': [{
      rule: `self.all(k, k in [${BUILT_IN_RESOURCES.map((r) => `'${r}'`).join(', ')}] || k.startsWith('hugepages-') || k.contains('/'))`,
      message: RESOURCE_NAME_MESSAGE,
    }],
  });

/** Compares two quantities (as the API server's CEL does) for zod; enough for requests against limits. */
function quantityValue(q: string | number): number {
  if (typeof q === 'number') return q;
  const match = /^\+?([0-9.]+)(.*)$/.exec(q)!;
  const suffixes: Record<string, number> = {
    '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  };
  const suffix = match[2]!;
  return Number(match[1]) * (suffixes[suffix] ?? 10 ** Number(suffix.slice(1)));
}
const requestsWithinLimits = (r: { requests?: Record<string, string | number>; limits?: Record<string, string | number> }) =>
  Object.entries(r.requests ?? {}).every(([k, v]) => r.limits?.[k] === undefined || quantityValue(v) <= quantityValue(r.limits[k]));
/**
 * One rule per resource keeps each rule's cost constant (a rule over every
 * key of two maps is over the API server's budget), and the CRD's total
 * budget allows cpu and memory; the kubelet refuses the rest.
 */
const withinLimitRule = (name: string) => {
  const [request, limit] = [`string(self.requests['${name}'])`, `string(self.limits['${name}'])`];
  return {
    rule: `!has(self.requests) || !has(self.limits) || !('${name}' in self.requests) || !('${name}' in self.limits) `
      + `|| !isQuantity(${request}) || !isQuantity(${limit}) || quantity(${request}).compareTo(quantity(${limit})) <= 0`,
    message: `the ${name} request must not be above the ${name} limit`,
  };
};

const ResourcesSchema = z.object({
  requests: Quantities('Resources each pod is guaranteed').optional(),
  limits: Quantities('Most of each resource a pod may use').optional(),
}).strict().refine(requestsWithinLimits, { message: 'a request must not be above the limit of the same resource' }).meta({
  description: 'CPU and memory requests and limits of each pod of the role.',
  'x-kubernetes-validations': ['cpu', 'memory'].map(withinLimitRule),
});

const StorageSchema = z.object({
  size: QuantitySchema.meta({ description: 'Size of each pod\'s volume, e.g. 10Gi.' }),
  storageClassName: z.string().min(1).max(253).optional()
    .meta({ description: 'StorageClass of the volumes; the cluster default when omitted.' }),
}).strict().meta({ description: 'A PersistentVolumeClaim per pod for the role\'s RocksDB data.' });

const StatelessRoleSchema = z.object({
  replicas: z.number().int().min(0).max(256).meta({ description: 'Number of pods.' }),
  resources: ResourcesSchema.optional(),
}).strict();

/**
 * Each gateway claims one of 128 worker-id ordinals (message ids must be
 * unique), and a rolling update starts one more before an old one goes.
 */
export const MAX_GATEWAYS = 127;
const GATEWAYS_MESSAGE = `gateway replicas must be at most ${MAX_GATEWAYS}: each gateway holds one of 128 message-id ordinals, and a rolling update needs one more`;
const GatewayRoleSchema = StatelessRoleSchema.extend({
  replicas: z.number().int().min(0).refine((n) => n <= MAX_GATEWAYS, { message: GATEWAYS_MESSAGE })
    .meta({ description: `Number of pods (at most ${MAX_GATEWAYS}).`, 'x-kubernetes-validations': [{ rule: `self <= ${MAX_GATEWAYS}`, message: GATEWAYS_MESSAGE }] }),
}).strict();

const PartitionedRoleSchema = z.object({
  partitions: Partitions,
  replicas: z.number().int().min(1).max(16).meta({ description: 'Pods per partition.' }),
  resources: ResourcesSchema.optional(),
}).strict();

const StoredRoleSchema = PartitionedRoleSchema.extend({ storage: StorageSchema }).strict();

/** The volume of each broker pod when the spec names none: its partition's room log lives there. */
export const DEFAULT_BROKER_STORAGE: z.infer<typeof StorageSchema> = { size: '10Gi' };
const BrokerRoleSchema = PartitionedRoleSchema.extend({
  storage: StorageSchema.optional()
    .meta({ description: 'A PersistentVolumeClaim per broker pod for its partition\'s replicated room log; omitted: 10Gi of the default StorageClass.' }),
}).strict();

const ObjectName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(253);
const IMAGE_MESSAGE = 'image must be an image reference such as registry.example/groupchat:1.0, without blanks';

/** Transition rules: what an update may change, judged against the stored spec (oldSelf). */
const doublingRule = (role: string, optional: boolean) => ({
  rule: `${optional ? `!has(oldSelf.${role}) || !has(self.${role}) || ` : ''}self.${role}.partitions == oldSelf.${role}.partitions || self.${role}.partitions == 2 * oldSelf.${role}.partitions`,
  message: `${role} partitions can only stay as they are or double, one doubling at a time`,
});
const storedRules = (role: string) => [
  {
    rule: `!has(oldSelf.${role}) || !has(self.${role}) || self.${role}.partitions == oldSelf.${role}.partitions`,
    message: `${role} partitions cannot change: its data is placed by partition and is not moved`,
  },
  {
    rule: `!has(oldSelf.${role}) || has(self.${role}) || (has(self.allowStoreRemoval) && self.allowStoreRemoval)`,
    message: `removing ${role} leaves its stored messages behind: set spec.allowStoreRemoval to true to remove it anyway`,
  },
];

export const ClusterSpecSchema = z.object({
  image: z.string().min(1).max(512).refine((i) => /^\S+$/.test(i), { message: IMAGE_MESSAGE }).meta({
    description: 'The groupchat workload image; every role runs it.',
    'x-kubernetes-validations': [{ rule: "self.matches('^\\\\S+$')", message: IMAGE_MESSAGE }],
  }),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional()
    .meta({ description: 'When the kubelet pulls the image (Always, IfNotPresent, Never); the Kubernetes default when omitted.' }),
  authSecretRef: z.object({
    name: ObjectName.meta({ description: 'Name of the Secret, in the cluster\'s namespace.' }),
    key: z.string().regex(/^[-._a-zA-Z0-9]+$/).default('key').meta({ description: 'The Secret\'s key holding the HS256 key (at least 32 bytes).' }),
  }).strict().optional()
    .meta({ description: 'Secret with the key gateways verify login tokens with; omitted: no tokens needed.' }),
  peerSecretRef: z.object({
    name: ObjectName.meta({ description: 'Name of the Secret, in the cluster\'s namespace.' }),
    key: z.string().regex(/^[-._a-zA-Z0-9]+$/).default('secret').meta({ description: 'The Secret\'s key holding the cluster secret (at least 16 bytes).' }),
  }).strict().optional()
    .meta({ description: 'Secret every role presents in the Hello of its peer links (a peer without it is refused); omitted: peer links are not authenticated.' }),
  limits: TopologySchema.shape.limits.unwrap().optional()
    .meta({ description: 'Token-bucket limits on messages, per user and per room; omitted: unlimited.' }),
  history: TopologySchema.shape.history.unwrap().optional()
    .meta({ description: 'Room history kept by the brokers (messagesPerRoom default 10000, maxAgeSeconds default 604800, bytesPerPartition default 256 MiB) and when a write is durable (fsync: always, the default, or batch every fsyncIntervalMs). A broker keeps its partition\'s log in memory until retention removes it: at the default bytesPerPartition a full log makes a broker about 650 MB (750 MB as leader), so its memory limit should allow for it.' }),
  splitThreshold: z.number().int().min(1).default(1000)
    .meta({ description: 'Members in a room above which it is split into 64 virtual rooms.' }),
  allowStoreRemoval: z.boolean().optional()
    .meta({ description: 'Set to true to remove pi or xiu from a running cluster; their volumes are kept, but the messages they hold are no longer served.' }),
  networkPolicy: z.object({
    metricsNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(63).optional()
      .meta({ description: 'Namespace whose pods may scrape every pod\'s /metrics (port 8080), e.g. monitoring; omitted: only the cluster\'s own pods reach that port.' }),
  }).strict().optional().meta({
    description: 'The NetworkPolicies the operator keeps in the cluster\'s namespace: peer and health ports only from the cluster\'s pods, '
      + 'users only to the gateways\' WebSocket port, publishers only to the proxies\' peer port, metrics from metricsNamespace.',
  }),
  proxy: StatelessRoleSchema.meta({ description: 'Stateless publish entry points (a Deployment).' }),
  gateway: GatewayRoleSchema.meta({ description: 'User WebSocket entry points (a Deployment).' }),
  broker: BrokerRoleSchema.meta({ description: 'Room ordering, history and fan-out, partitioned by RoomID; each partition\'s replicas keep one replicated room log (3 replicas survive one failure).' }),
  router: PartitionedRoleSchema.meta({ description: 'Room membership aggregation, partitioned by RoomID.' }),
  pi: StoredRoleSchema.optional().meta({ description: 'Per-user inboxes for offline messages; omitted: not deployed.' }),
  xiu: StoredRoleSchema.optional().meta({ description: 'Message payload store; omitted: not deployed.' }),
  relay: PartitionedRoleSchema.optional().meta({ description: 'Per-user delivery; omitted: not deployed.' }),
}).strict().meta({
  description: 'The groupchat system to run.',
  'x-kubernetes-validations': [
    doublingRule('broker', false), doublingRule('router', false), doublingRule('relay', true),
    ...storedRules('pi'), ...storedRules('xiu'),
  ],
});
export type ClusterSpec = z.infer<typeof ClusterSpecSchema>;

export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded', 'Paused'] as const;
export const ConditionSchema = z.object({
  type: z.enum(CONDITION_TYPES).meta({ description: 'Ready (every pod ready), Progressing (a rollout or a doubling under way), Degraded (something refused or failing, pods that cannot run included) or Paused (the annotation groupchat.dev/paused is "true": nothing is changed).' }),
  status: z.enum(['True', 'False', 'Unknown']).meta({ description: 'True, False or Unknown.' }),
  reason: z.string().min(1).meta({ description: 'Why, in one CamelCase word.' }),
  message: z.string().meta({ description: 'Why, in a sentence.' }),
  lastTransitionTime: z.string().meta({ description: 'When status last changed.' }),
  observedGeneration: z.number().int().nonnegative().optional().meta({ description: 'The metadata.generation the condition was computed from.' }),
}).strict();
export type Condition = z.infer<typeof ConditionSchema>;

export const RoleStatusSchema = z.object({
  partitions: z.number().int().nonnegative().optional().meta({ description: 'Partitions of a partitioned role (the doubled count while doubling).' }),
  desired: z.number().int().nonnegative().meta({ description: 'Pods the role should have.' }),
  ready: z.number().int().nonnegative().meta({ description: 'Pods of the role that are ready.' }),
}).strict();
export type RoleStatus = z.infer<typeof RoleStatusSchema>;

export const ClusterStatusSchema = z.object({
  observedGeneration: z.number().int().nonnegative().optional()
    .meta({ description: 'The metadata.generation this status was computed from.' }),
  conditions: z.array(ConditionSchema).optional().meta({
    description: 'Ready, Progressing and Degraded, each with a reason and a message.',
    'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'],
  }),
  epoch: z.number().int().nonnegative().optional().meta({ description: 'Epoch of the topology the cluster routes by.' }),
  phase: z.enum(TOPOLOGY_PHASES).optional().meta({ description: 'Stable, or where a partition doubling is.' }),
  roles: z.record(z.string(), RoleStatusSchema).optional().meta({ description: 'Pods desired and ready per role.' }),
  ready: z.string().optional().meta({ description: 'Pods ready out of pods desired, over every role, e.g. 11/12.' }),
  gatewayReplicas: z.number().int().nonnegative().optional()
    .meta({ description: 'Gateway pods the gateway Deployment has now: the replicas of the scale subresource (kubectl scale, a HorizontalPodAutoscaler), which sets spec.gateway.replicas.' }),
  gatewaySelector: z.string().optional()
    .meta({ description: 'Label selector of the gateway pods, for the scale subresource (a HorizontalPodAutoscaler finds the pods it measures by it).' }),
  topology: TopologySchema.optional().meta({
    description: 'The topology the operator decided: the record of the epoch and the doubling phase. '
      + 'The ConfigMap <cluster>-topology is rewritten from it when deleted or edited.',
  }),
  acceptedSpec: z.record(z.string(), z.unknown()).optional().meta({
    description: 'The spec the topology and the objects were built from (a change refused during a doubling is not in it).',
    'x-kubernetes-preserve-unknown-fields': true,
  }),
}).strict().meta({
  'x-kubernetes-validations': [{
    rule: '!has(oldSelf.topology) || (has(self.topology) && self.topology.epoch >= oldSelf.topology.epoch)',
    message: 'status.topology.epoch never goes backwards',
  }],
});
export type ClusterStatus = z.infer<typeof ClusterStatusSchema>;

const MAX_NAME = 40;
/**
 * Object names derive from the cluster's, with room for role, partition and
 * pod ordinal; Services among them, whose names are DNS-1035 labels.
 */
const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const CLUSTER_NAME_RULES = [
  { rule: `self.metadata.name.size() <= ${MAX_NAME}`, message: `the name of a GroupChatCluster can have at most ${MAX_NAME} characters` },
  {
    rule: `self.metadata.name.matches('${DNS_1035.source}')`,
    message: 'the name of a GroupChatCluster must start with a lower-case letter and hold only lower-case letters, digits and \'-\' (a DNS-1035 label), as the names of its Services derive from it',
  },
];

/** The document as stored; metadata is the API's own and only lightly checked. */
export const GroupChatClusterSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: z.object({
    name: z.string().max(MAX_NAME).regex(DNS_1035),
    namespace: z.string(),
    uid: z.string(),
    generation: z.number().int(),
    resourceVersion: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }).passthrough(),
  spec: ClusterSpecSchema,
  status: ClusterStatusSchema.optional(),
});
export type GroupChatCluster = z.infer<typeof GroupChatClusterSchema>;

