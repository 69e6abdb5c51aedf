// A link that keeps itself up: it dials, says Hello, and after any loss dials
// again with exponential backoff and jitter until close() is called.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DEFAULT_LINK_OPTIONS, PeerLink, type LinkOptions, type PeerIdentity } from './peer-link.js';

export interface ReconnectOptions {
  initialBackoffMs: number;
  maxBackoffMs: number;
  connectTimeoutMs: number;
}

export const DEFAULT_RECONNECT: ReconnectOptions = { initialBackoffMs: 50, maxBackoffMs: 2000, connectTimeoutMs: 1000 };

export interface PeerClientEvents {
  up: [PeerLink];
  down: [Error | undefined];
}

export function parseAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const port = Number(address.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`"${address}" is not a host:port address`);
  }
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port };
}

/** Whether parseAddress accepts it: check addresses from the wire before they reach a PeerClient. */
export function isPeerAddress(address: string): boolean {
  try {
    parseAddress(address);
    return true;
  } catch {
    return false;
  }
}

export class PeerClient extends EventEmitter<PeerClientEvents> {
  link: PeerLink | null = null;
  private stopped = false;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Consecutive failed dials; reset once a Hello comes back. */
  failures = 0;

  constructor(
    readonly address: string,
    private readonly self: PeerIdentity,
    private readonly options: LinkOptions = DEFAULT_LINK_OPTIONS,
    private readonly reconnect: ReconnectOptions = DEFAULT_RECONNECT,
  ) {
    super();
    this.backoffMs = reconnect.initialBackoffMs;
    parseAddress(address);
    this.dial();
  }

  /** The link once its Hello has arrived, else null. */
  get ready(): PeerLink | null {
    return this.link && this.link.remote && !this.link.closed ? this.link : null;
  }

  close(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.link?.close();
  }

  private dial(): void {
    if (this.stopped) return;
    const { host, port } = parseAddress(this.address);
    const socket = net.connect({ host, port });
    const connectTimer = setTimeout(() => socket.destroy(new Error(`connect to ${this.address} timed out`)), this.reconnect.connectTimeoutMs);
    const link = new PeerLink(socket, this.self, this.options);
    this.link = link;
    socket.once('connect', () => clearTimeout(connectTimer));
    link.once('hello', () => {
      this.backoffMs = this.reconnect.initialBackoffMs;
      this.failures = 0;
      this.emit('up', link);
    });
    link.once('close', (err) => {
      clearTimeout(connectTimer);
      const wasUp = link.remote !== null;
      if (this.link === link) this.link = null;
      if (!wasUp) this.failures++;
      if (wasUp) this.emit('down', err);
      else this.emit('down', err ?? new Error(`could not reach ${this.address}`));
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.reconnect.maxBackoffMs);
    this.retryTimer = setTimeout(() => this.dial(), delay);
    this.retryTimer.unref();
  }
}
