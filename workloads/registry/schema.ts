// The registry's two documents, as zod schemas: the single source of their
// types, and the validation every back-end applies to what it reads.
import { z } from 'zod';

export const ROLES = ['proxy', 'broker', 'router', 'gateway', 'pi', 'xiu', 'relay'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

export const RoleTopologySchema = z.object({
  partitions: z.number().int().min(1).max(1024),
  replicas: z.number().int().min(1).max(16),
}).strict();

/** Written by the operator (or the local launcher); read by every role. */
export const TopologySchema = z.object({
  epoch: z.number().int().nonnegative(),
  /** Stable, or the phases of a partition doubling (see the operator). */
  phase: z.enum(['Stable', 'Expanding', 'Switching']),
  roles: z.object({
    broker: RoleTopologySchema,
    router: RoleTopologySchema,
    /** The offline roles; absent when the cluster runs without them. */
    pi: RoleTopologySchema.optional(),
    xiu: RoleTopologySchema.optional(),
    relay: RoleTopologySchema.optional(),
  }).strict(),
  /** Members in a room above which a broker splits it into virtual rooms. */
  splitThreshold: z.number().int().min(1),
  /** Token-bucket limits on messages; absent means unlimited. */
  limits: z.object({
    /** Per user, enforced by each gateway for the users it holds. */
    userMessagesPerSecond: z.number().positive().optional(),
    userBurst: z.number().int().positive().optional(),
    /** Per room, enforced by the broker replica that orders the room. */
    roomMessagesPerSecond: z.number().positive().optional(),
    roomBurst: z.number().int().positive().optional(),
    /** Deliveries a broker holds for one slow gateway before refusing more. */
    gatewayQueueMessages: z.number().int().min(100).optional(),
  }).strict().optional(),
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
