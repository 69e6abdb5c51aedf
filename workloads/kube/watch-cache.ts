// A list-watch cache of one kind of object that survives API server hiccups:
// client-node's ListWatch stops for good on a watch error, so this restarts it
// with backoff. start() resolves once the first list is in the cache.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

export interface WatchCacheOptions<T extends KubernetesObject> {
  /** The collection's path, e.g. /api/v1/namespaces/ns/configmaps. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Called on every add, update and delete (after the cache changed). */
  onChange: (object: T) => void;
  onError?: (err: unknown) => void;
}

const MAX_BACKOFF_MS = 10_000;

export class WatchCache<T extends KubernetesObject> {
  private readonly informer: ListWatch<T>;
  private stopped = false;
  private backoffMs = 250;
  private restart: NodeJS.Timeout | undefined;
  private lastError: unknown;
  private markSynced!: () => void;
  private readonly synced = new Promise<void>((resolve) => { this.markSynced = resolve; });

  constructor(kubeConfig: KubeConfig, private readonly options: WatchCacheOptions<T>) {
    // The informer fills its cache synchronously once the list promise settles,
    // so a macrotask later the cache holds the list.
    const list = async () => {
      const result = await options.list();
      setImmediate(() => this.markSynced());
      return result;
    };
    this.informer = new ListWatch<T>(options.path, new Watch(kubeConfig), list, false,
      options.labelSelector, options.fieldSelector);
    this.informer.on('change', options.onChange);
    this.informer.on('connect', () => { this.backoffMs = 250; });
    this.informer.on('error', (err) => {
      this.lastError = err;
      options.onError?.(err);
      if (this.stopped) return;
      // A failed restart is emitted as 'error' again (reported above, retried later): the rejection adds nothing.
      this.restart = setTimeout(() => void this.informer.start().catch(() => undefined), this.backoffMs);
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    });
  }

  /** Resolves once the first list is cached; retries failures until timeoutMs (null: for as long as it takes). */
  async start(timeoutMs: number | null = 30_000): Promise<void> {
    void this.informer.start();
    if (timeoutMs === null) return this.synced;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`could not list ${this.options.path}: ${describe(this.lastError)}`)), timeoutMs);
    });
    try {
      await Promise.race([this.synced, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restart);
    await this.informer.stop();
  }
}

function describe(err: unknown): string {
  if (err === undefined) return 'no answer in time';
  const body = (err as { body?: unknown }).body;
  return typeof body === 'string' ? body : err instanceof Error ? err.message : String(err);
}
