// The command-line tools the envtest suites drive, from the project's own
// cache (scripts/kube-tools.sh), so the version is the same on every machine.
import { execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
let toolsDir: Promise<string> | undefined;

async function tool(name: 'helm' | 'kubectl'): Promise<string> {
  toolsDir ??= run('bash', [resolve('scripts/kube-tools.sh')]).then(({ stdout }) => stdout.trim());
  return join(await toolsDir, name);
}

/** Runs helm or kubectl; resolves with stdout, rejects with the tool's own message. */
export async function runTool(name: 'helm' | 'kubectl', args: string[], input = ''): Promise<string> {
  const child = spawn(await tool(name), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  // A command that reads no input (kubectl get) may exit before its stdin is
  // closed: that EPIPE says nothing, and the exit code and stderr below do.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input);
  const code = await new Promise<number>((r) => child.once('close', (c) => r(c ?? 1)));
  if (code !== 0) throw new Error(stderr.trim() || `${name} ${args.join(' ')} exited with ${code}`);
  return stdout;
}
