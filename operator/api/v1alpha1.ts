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

// The API's resource.Quantity: an integer, or a string such as "500m" or "1Gi".
const QUANTITY = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
export const QuantitySchema = z.union([z.number().int(), z.string()])
  .refine((q) => typeof q === 'number' || QUANTITY.test(q), { message: 'expected a quantity such as 500m or 1Gi' })
  .meta({ 'x-kubernetes-int-or-string': true, pattern: QUANTITY.source });

const ResourcesSchema = z.object({
  requests: z.record(z.string(), QuantitySchema).optional(),
  limits: z.record(z.string(), QuantitySchema).optional(),
}).strict().meta({ description: 'CPU and memory requests and limits of each pod of the role.' });

const StorageSchema = z.object({
  size: QuantitySchema.meta({ description: 'Size of each pod\'s volume, e.g. 10Gi.' }),
  storageClassName: z.string().min(1).optional()
    .meta({ description: 'StorageClass of the volumes; the cluster default when omitted.' }),
}).strict().meta({ description: 'A PersistentVolumeClaim per pod for the role\'s RocksDB data.' });

const StatelessRoleSchema = z.object({
  replicas: z.number().int().min(0).max(256).meta({ description: 'Number of pods.' }),
  resources: ResourcesSchema.optional(),
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

export const ClusterSpecSchema = z.object({
  image: z.string().min(1).meta({ description: 'The groupchat workload image; every role runs it.' }),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  authSecretRef: z.object({
    name: ObjectName,
    key: z.string().regex(/^[-._a-zA-Z0-9]+$/).default('key').meta({ description: 'The Secret\'s key holding the HS256 key (at least 32 bytes).' }),
  }).strict().optional()
    .meta({ description: 'Secret with the key gateways verify login tokens with; omitted: no tokens needed.' }),
  peerSecretRef: z.object({
    name: ObjectName,
    key: z.string().regex(/^[-._a-zA-Z0-9]+$/).default('secret').meta({ description: 'The Secret\'s key holding the cluster secret (at least 16 bytes).' }),
  }).strict().optional()
    .meta({ description: 'Secret every role presents in the Hello of its peer links (a peer without it is refused); omitted: peer links are not authenticated.' }),
  limits: TopologySchema.shape.limits.unwrap().optional()
    .meta({ description: 'Token-bucket limits on messages, per user and per room; omitted: unlimited.' }),
  history: TopologySchema.shape.history.unwrap().optional()
    .meta({ description: 'Room history kept by the brokers (messagesPerRoom default 10000, maxAgeSeconds default 604800, bytesPerPartition default 256 MiB) and when a write is durable (fsync: always, the default, or batch every fsyncIntervalMs).' }),
  splitThreshold: z.number().int().min(1).default(1000)
    .meta({ description: 'Members in a room above which it is split into 64 virtual rooms.' }),
  proxy: StatelessRoleSchema.meta({ description: 'Stateless publish entry points (a Deployment).' }),
  gateway: StatelessRoleSchema.meta({ description: 'User WebSocket entry points (a Deployment).' }),
  broker: BrokerRoleSchema.meta({ description: 'Room ordering, history and fan-out, partitioned by RoomID; each partition\'s replicas keep one replicated room log (3 replicas survive one failure).' }),
  router: PartitionedRoleSchema.meta({ description: 'Room membership aggregation, partitioned by RoomID.' }),
  pi: StoredRoleSchema.optional().meta({ description: 'Per-user inboxes for offline messages; omitted: not deployed.' }),
  xiu: StoredRoleSchema.optional().meta({ description: 'Message payload store; omitted: not deployed.' }),
  relay: PartitionedRoleSchema.optional().meta({ description: 'Per-user delivery; omitted: not deployed.' }),
}).strict();
export type ClusterSpec = z.infer<typeof ClusterSpecSchema>;

export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded'] as const;
export const ConditionSchema = z.object({
  type: z.enum(CONDITION_TYPES),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().min(1),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().nonnegative().optional(),
}).strict();
export type Condition = z.infer<typeof ConditionSchema>;

export const RoleStatusSchema = z.object({
  partitions: z.number().int().nonnegative().optional(),
  desired: z.number().int().nonnegative(),
  ready: z.number().int().nonnegative(),
}).strict();
export type RoleStatus = z.infer<typeof RoleStatusSchema>;

export const ClusterStatusSchema = z.object({
  observedGeneration: z.number().int().nonnegative().optional()
    .meta({ description: 'The metadata.generation this status was computed from.' }),
  conditions: z.array(ConditionSchema).optional().meta({
    'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'],
  }),
  epoch: z.number().int().nonnegative().optional().meta({ description: 'Epoch of the topology the cluster routes by.' }),
  phase: z.enum(TOPOLOGY_PHASES).optional().meta({ description: 'Stable, or where a partition doubling is.' }),
  roles: z.record(z.string(), RoleStatusSchema).optional().meta({ description: 'Pods desired and ready per role.' }),
  ready: z.string().optional().meta({ description: 'Pods ready out of pods desired, over every role, e.g. 11/12.' }),
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

/** The document as stored; metadata is the API's own and only lightly checked. */
export const GroupChatClusterSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: z.object({
    name: z.string().max(MAX_NAME),
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

/** Object names derive from the cluster's, with room for role, partition and pod ordinal. */
export const CLUSTER_NAME_RULE = {
  rule: `self.metadata.name.size() <= ${MAX_NAME}`,
  message: `the name of a GroupChatCluster can have at most ${MAX_NAME} characters`,
};
