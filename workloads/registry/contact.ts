// How the kubernetes registry knows it is cut off from the API server (see
// kubernetes.ts, static stability).
/**
 * Whether this process is in contact with the API server, judged by its own
 * calls: the last one succeeded, within `windowMs`. A call that hangs (an API
 * server or etcd that stopped) ends contact as surely as one that fails.
 */
export class ApiContact {
  private lastOkMs: number | undefined;
  private sinceMs: number | undefined;

  constructor(private readonly windowMs: number) {}

  succeeded(nowMs: number): void {
    if (this.since(nowMs) === undefined) this.sinceMs = nowMs;
    this.lastOkMs = nowMs;
  }

  failed(): void {
    this.sinceMs = undefined;
  }

  /** Since when contact has been unbroken; undefined when out of contact at nowMs. */
  since(nowMs: number): number | undefined {
    return this.lastOkMs !== undefined && nowMs - this.lastOkMs <= this.windowMs ? this.sinceMs : undefined;
  }
}
