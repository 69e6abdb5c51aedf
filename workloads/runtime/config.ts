// A role's configuration: command-line flags first, then GROUPCHAT_* environment
// variables (what a pod gets), validated once with zod at start.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { RoleSchema } from '../registry/schema.js';

const Port = z.coerce.number().int().min(0).max(65535);

export const RoleConfigSchema = z.object({
  role: RoleSchema,
  partition: z.coerce.number().int().nonnegative().default(0),
  replica: z.coerce.number().int().nonnegative().default(0),
  /**
   * Distinguishes the processes of a role for worker ids: the launcher's or
   * the StatefulSet's ordinal; unset, a gateway claims a free one (ordinal.ts).
   */
  ordinal: z.coerce.number().int().min(0).max(127).optional(),
  host: z.string().default('127.0.0.1'),
  /** Address other members should dial; defaults to host. */
  advertiseHost: z.string().optional(),
  port: Port.default(0),
  httpPort: Port.default(0),
  wsPort: Port.default(0),
  registry: z.enum(['ipc', 'kubernetes']).default('ipc'),
  /** Where pi and xiu keep their RocksDB data. */
  dataDir: z.string().optional(),
  /** File holding the HS256 key for login tokens (gateway); unset: no tokens needed. */
  authKeyFile: z.string().optional(),
  /** kubernetes registry: the GroupChatCluster this process belongs to, and its namespace. */
  cluster: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a Kubernetes object name').optional(),
  namespace: z.string().min(1).optional(),
  /** kubernetes registry: the pod, which names and owns the member's Lease. */
  podName: z.string().min(1).optional(),
  podUid: z.string().min(1).optional(),
}).strict().superRefine((config, ctx) => {
  if (config.registry !== 'kubernetes') return;
  for (const key of ['cluster', 'namespace'] as const) {
    if (!config[key]) ctx.addIssue({ code: 'custom', path: [key], message: `the kubernetes registry needs ${ENV_KEYS[key]}` });
  }
});

export type RoleConfig = z.infer<typeof RoleConfigSchema>;

const ENV_KEYS: Record<string, string> = {
  partition: 'GROUPCHAT_PARTITION', replica: 'GROUPCHAT_REPLICA', ordinal: 'GROUPCHAT_ORDINAL',
  host: 'GROUPCHAT_HOST', advertiseHost: 'GROUPCHAT_ADVERTISE_HOST', port: 'GROUPCHAT_PORT',
  httpPort: 'GROUPCHAT_HTTP_PORT', wsPort: 'GROUPCHAT_WS_PORT', registry: 'GROUPCHAT_REGISTRY',
  dataDir: 'GROUPCHAT_DATA_DIR', authKeyFile: 'GROUPCHAT_AUTH_KEY_FILE',
  cluster: 'GROUPCHAT_CLUSTER', namespace: 'GROUPCHAT_NAMESPACE', podName: 'GROUPCHAT_POD_NAME', podUid: 'GROUPCHAT_POD_UID',
};

export function loadRoleConfig(role: string, flags: Record<string, unknown>): RoleConfig {
  const merged: Record<string, unknown> = { role };
  for (const [key, env] of Object.entries(ENV_KEYS)) {
    const value = flags[key] ?? process.env[env];
    if (value !== undefined) merged[key] = value;
  }
  const parsed = RoleConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`).join('; ');
    throw new Error(`invalid ${role} configuration: ${problems}`);
  }
  return parsed.data;
}

/** Unique per process incarnation, so peers can tell a restart from a reconnect. */
export function memberIdFor(config: RoleConfig): string {
  return `${config.role}-${config.partition}-${config.replica}-${randomBytes(3).toString('hex')}`;
}
