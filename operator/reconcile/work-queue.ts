// A work queue of object keys: a key is handled by one worker at a time, a key
// added again while handled is handled once more after, failures come back
// with exponential backoff, and a handler may ask to be called again later.
export interface WorkResult { requeueAfterMs?: number }

const BASE_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 30_000;

export class WorkQueue {
  private readonly pending: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private readonly failures = new Map<string, number>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handle: (key: string) => Promise<WorkResult>,
    private readonly onError: (key: string, err: unknown) => void,
    private readonly workers = 1,
  ) {}

  /** Keys waiting for a worker. */
  get depth(): number {
    return this.pending.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.pending.push(key);
    this.pump();
  }

  /** Adds the key after a delay (the earliest of several requested wins). */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const due = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.due <= due) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => { this.timers.delete(key); this.add(key); }, delayMs);
    timer.unref();
    this.timers.set(key, { timer, due });
  }

  /** Stops taking work and waits for the handlers running now. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    if (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.stopped && this.running < this.workers && this.pending.length > 0) {
      const key = this.pending.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.handle(key);
      this.failures.delete(key);
      if (result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      this.onError(key, err);
      this.addAfter(key, Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** (failures - 1)));
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.again.delete(key)) this.add(key);
      if (this.running === 0 && this.stopped) this.idleWaiters.splice(0).forEach((resolve) => resolve());
      this.pump();
    }
  }
}
