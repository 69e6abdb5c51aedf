// The registry's two documents, as zod schemas: the single source of their
// types, and the validation every back-end applies to what it reads.
import { z } from 'zod';

export const ROLES = ['proxy', 'broker', 'router', 'gateway', 'pi', 'xiu', 'relay'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

export const RoleTopologySchema = z.object({
  partitions: z.number().int().min(1).max(1024).meta({ description: 'Number of partitions.' }),
  replicas: z.number().int().min(1).max(16).meta({ description: 'Replicas of each partition.' }),
}).strict();

const layoutEntry = (role: string) => ({ description: `Partitions and replicas of ${role}.` });
const optionalEntry = (role: string) => ({ description: `Partitions and replicas of ${role}; absent where not deployed.` });

/** The layout of the partitioned roles; pi, xiu and relay only where deployed. */
export const LayoutSchema = z.object({
  broker: RoleTopologySchema.meta(layoutEntry('the brokers')),
  router: RoleTopologySchema.meta(layoutEntry('the routers')),
  pi: RoleTopologySchema.optional().meta(optionalEntry('pi')),
  xiu: RoleTopologySchema.optional().meta(optionalEntry('xiu')),
  relay: RoleTopologySchema.optional().meta(optionalEntry('the relays')),
}).strict();
export type Layout = z.infer<typeof LayoutSchema>;
export const PARTITIONED_ROLES = ['broker', 'router', 'pi', 'xiu', 'relay'] as const satisfies readonly (keyof Layout)[];
export type PartitionedRole = (typeof PARTITIONED_ROLES)[number];

export const TOPOLOGY_PHASES = ['Stable', 'Expanding', 'Switching'] as const;

/**
 * Written by the operator (or the local launcher); read by every role.
 *
 * A partition doubling goes Stable(epoch e) → Expanding(epoch e, `next` holds
 * the doubled layout: the new partitions start and sync their state while
 * `roles` still routes) → Switching(epoch e + 1, `roles` is the doubled layout:
 * members move over, old partitions still answer stragglers) → Stable(e + 1)
 * once every member reports that it serves epoch e + 1.
 */
export const TopologySchema = z.object({
  epoch: z.number().int().nonnegative().meta({ description: 'Grows by one with every new layout; never goes back.' }),
  phase: z.enum(TOPOLOGY_PHASES).meta({ description: 'Stable, or where a partition doubling is: Expanding, then Switching.' }),
  roles: LayoutSchema.meta({ description: 'The layout every member routes by.' }),
  next: z.object({ roles: LayoutSchema.meta({ description: 'The doubled layout.' }) }).strict().optional()
    .meta({ description: 'Only while Expanding: the layout that epoch + 1 will have.' }),
  splitThreshold: z.number().int().min(1).meta({ description: 'Members in a room above which a broker splits it into virtual rooms.' }),
  limits: z.object({
    userMessagesPerSecond: z.number().positive().optional()
      .meta({ description: 'Messages per second one user may send, enforced by each gateway for the users it holds; omitted: unlimited.' }),
    userBurst: z.number().int().positive().optional()
      .meta({ description: 'Messages one user may send at once above the rate (the token bucket\'s size).' }),
    roomMessagesPerSecond: z.number().positive().optional()
      .meta({ description: 'Messages per second one room may carry, enforced by the broker replica that orders it; omitted: unlimited.' }),
    roomBurst: z.number().int().positive().optional()
      .meta({ description: 'Messages one room may carry at once above the rate (the token bucket\'s size).' }),
    gatewayQueueMessages: z.number().int().min(100).optional()
      .meta({ description: 'Deliveries a broker holds for one slow gateway before refusing more (default 10000).' }),
  }).strict().optional().meta({ description: 'Token-bucket limits on messages; omitted: unlimited.' }),
  history: z.object({
    messagesPerRoom: z.number().int().min(1).optional().meta({ description: 'The newest messages kept per room.' }),
    maxAgeSeconds: z.number().int().min(0).optional().meta({ description: 'Messages older than this are compacted away; 0: no age limit.' }),
    bytesPerPartition: z.number().int().min(1024 * 1024).optional().meta({ description: 'Each partition\'s log is compacted to stay under this many bytes.' }),
    fsync: z.enum(['always', 'batch']).optional()
      .meta({ description: 'always: fsync before a commit is acknowledged; batch: fsync every fsyncIntervalMs.' }),
    fsyncIntervalMs: z.number().int().min(1).max(1000).optional().meta({ description: 'How often batch mode fsyncs, in milliseconds.' }),
  }).strict().optional()
    .meta({ description: 'Room history: retention of the brokers\' replicated room logs, and when a write counts as durable.' }),
}).strict();
export type Topology = z.infer<typeof TopologySchema>;

const HostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')
  // A port peers can dial (what PeerClient's parseAddress accepts): one bad
  // registration must not throw in every role's members handler.
  .refine((a) => { const port = Number(a.slice(a.lastIndexOf(':') + 1)); return port >= 1 && port <= 65535; }, 'port must be 1..65535');

/** What a process registers about itself; held with a TTL like an ephemeral node. */
export const MemberSchema = z.object({
  id: z.string().min(1).max(128),
  role: RoleSchema,
  partition: z.number().int().nonnegative(),
  replica: z.number().int().nonnegative(),
  /** Peer (TCP) address. */
  address: HostPort,
  /** HTTP address serving /metrics, /healthz and /readyz. */
  httpAddress: HostPort.optional(),
  /** User-facing WebSocket URL (gateways). */
  wsUrl: z.string().url().optional(),
  ready: z.boolean(),
  /**
   * The topology epoch this member serves (see servedEpoch). The operator
   * flips a doubling's epoch once the new partitions serve epoch + 1, and ends
   * it once every member does.
   */
  epoch: z.number().int().nonnegative().optional(),
  /** Set by the leader of a replicated partition (pi, xiu). */
  leader: z.boolean().optional(),
}).strict();
export type Member = z.infer<typeof MemberSchema>;

export function defaultTopology(partitions = 2, replicas = 2, routers = 2): Topology {
  return {
    epoch: 1,
    phase: 'Stable',
    roles: {
      broker: { partitions, replicas },
      router: { partitions: 1, replicas: routers },
      pi: { partitions: 2, replicas: 2 },
      xiu: { partitions: 2, replicas: 2 },
      relay: { partitions: 2, replicas: 1 },
    },
    splitThreshold: 1000,
  };
}

/**
 * The epoch a member of (role, partition) serves under `topology`: the current
 * one where its partition is routed to, the next one where only the layout
 * being expanded to has it (the member reports it once it has synced, i.e. is
 * ready), and none where neither has it.
 */
export function servedEpoch(topology: Topology, role: Role, partition: number): number | undefined {
  const partitionsIn = (layout: Layout | undefined) => (isPartitioned(role) ? layout?.[role]?.partitions ?? 0 : 1);
  if (partition < partitionsIn(topology.roles)) return topology.epoch;
  if (partition < partitionsIn(topology.next?.roles)) return topology.epoch + 1;
  return undefined;
}

export function isPartitioned(role: Role): role is PartitionedRole {
  return (PARTITIONED_ROLES as readonly string[]).includes(role);
}
