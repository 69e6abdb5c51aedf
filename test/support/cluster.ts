// Starts `groupchat up` as a real child process for a test and stops it after.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const CLI = resolve('dist/workloads/cli/main.js');

export interface Ready {
  web: string;
  gateways: string[];
  proxies: string[];
  logDir: string;
}

export interface ProcessStatus {
  name: string;
  role: string;
  partition: number;
  replica: number;
  pid: number;
  restarts: number;
  member: { id: string; address: string; httpAddress?: string; wsUrl?: string; ready: boolean; leader?: boolean } | null;
}

export interface LocalClusterHandle {
  ready: Ready;
  child: ChildProcess;
  processes(): Promise<ProcessStatus[]>;
  /** Resolves with the first line `groupchat up` printed (or prints) that starts with prefix. */
  line(prefix: string, boundMs?: number): Promise<string>;
  /** Waits until the named process has restarted `restarts` times and is registered ready. */
  waitForRestart(name: string, restarts: number): Promise<ProcessStatus>;
  stop(): Promise<void>;
}

export async function startLocalCluster(args: string[] = []): Promise<LocalClusterHandle> {
  const logDir = mkdtempSync(join(tmpdir(), 'groupchat-test-'));
  const child = spawn(process.execPath, [CLI, 'up', '--web-port', '0', '--log-dir', logDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const printed: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => printed.push(line));
  const line = (prefix: string, boundMs = 180_000) => new Promise<string>((resolvePromise, reject) => {
    const found = printed.find((l) => l.startsWith(prefix));
    if (found) return resolvePromise(found);
    const timer = setTimeout(() => reject(new Error(`groupchat up printed no line starting "${prefix}" within ${boundMs / 1000} s: ${stderr.slice(-2000)}`)), boundMs);
    const onLine = (l: string) => {
      if (!l.startsWith(prefix)) return;
      clearTimeout(timer);
      lines.off('line', onLine);
      resolvePromise(l);
    };
    lines.on('line', onLine);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`groupchat up exited with ${code}: ${stderr}`)); });
  });
  const ready = JSON.parse((await line('ready ')).slice(6)) as Ready;
  const processes = async (): Promise<ProcessStatus[]> => {
    const res = await fetch(new URL('/cluster.json', ready.web));
    return ((await res.json()) as { processes: ProcessStatus[] }).processes;
  };
  return {
    ready,
    child,
    processes,
    line,
    async waitForRestart(name, restarts) {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const found = (await processes()).find((p) => p.name === name);
        if (found && found.restarts >= restarts && found.member?.ready) return found;
        if (Date.now() > deadline) {
          throw new Error(`${name} was not back and ready within 120 s (restarts ${found?.restarts ?? 'unknown'}, wanted ${restarts}; registered ready: ${found?.member?.ready ?? false})`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: () => new Promise<void>((resolvePromise) => {
      if (child.exitCode !== null) return resolvePromise();
      child.once('exit', () => resolvePromise());
      child.kill('SIGTERM');
    }),
  };
}

/** Polls until check() holds; the bound only keeps a broken run from hanging. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, boundMs = 60_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
