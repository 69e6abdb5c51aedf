import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; GROUPCHAT_LOG_LEVEL picks the level. */
export function createLogger(name: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ name, level: process.env.GROUPCHAT_LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } });
}
