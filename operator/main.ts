// `groupchat operator`: the controller plus the health and metrics endpoints
// the kubelet probes, stopped in order on SIGTERM.
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { serveHealth } from '../workloads/observability/http.js';
import { createLogger } from '../workloads/observability/logger.js';
import { startController } from './reconcile/controller.js';

export const OperatorConfigSchema = z.object({
  /** One namespace to watch; every namespace when omitted. */
  namespace: z.string().min(1).optional(),
  host: z.string().default('127.0.0.1'),
  httpPort: z.coerce.number().int().min(0).max(65535).default(8080),
}).strict();
export type OperatorConfig = z.infer<typeof OperatorConfigSchema>;

const ENV_KEYS = { namespace: 'GROUPCHAT_WATCH_NAMESPACE', host: 'GROUPCHAT_HOST', httpPort: 'GROUPCHAT_HTTP_PORT' } as const;

export function loadOperatorConfig(flags: Record<string, unknown>): OperatorConfig {
  const merged: Record<string, unknown> = {};
  for (const [key, env] of Object.entries(ENV_KEYS)) {
    const value = flags[key] ?? process.env[env];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  const parsed = OperatorConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(`invalid operator configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

export async function runOperator(config: OperatorConfig): Promise<void> {
  const log = createLogger('operator');
  // In a pod: its service account; elsewhere: KUBECONFIG or ~/.kube/config.
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  let started = false;
  const health = await serveHealth(config.host, config.httpPort, () => started);
  const controller = await startController({
    kubeConfig, log, instance: process.env.GROUPCHAT_POD_NAME ?? hostname(), ...(config.namespace ? { namespace: config.namespace } : {}),
  });
  started = true;
  log.info({ http: health.address }, 'ready');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await controller.stop();
    await health.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
