// The envtest control plane (kube-apiserver + etcd, test/envtest) grown into a
// whole one: kube-controller-manager and kube-scheduler from the same
// Kubernetes release, so StatefulSets and Deployments really make Pods, the
// scheduler really binds them to a node, Endpoints follow readiness, and the
// garbage collector really deletes what an owner leaves behind. Nodes are the
// test's own (node-agent.ts).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startControlPlane, type ControlPlane, type User } from '../envtest/control-plane.js';

const run = promisify(execFile);

/** kube-controller-manager and kube-scheduler: KUBEBUILDER_ASSETS, or the cache `make e2e-assets` fills. */
async function assets(): Promise<string> {
  const { stdout } = await run('bash', [resolve('scripts/e2e/assets.sh'), '--check']);
  return stdout.trim();
}

export interface FullControlPlane extends ControlPlane {
  /** Where the controller-manager's and scheduler's logs are. */
  logs: { controllerManager: string; scheduler: string };
}

function start(binary: string, args: string[], log: string): ChildProcess {
  const out = createWriteStream(log);
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startFullControlPlane(users: User[] = []): Promise<FullControlPlane> {
  const bin = await assets();
  const cp = await startControlPlane(users);
  const children: ChildProcess[] = [];
  const killAll = () => { for (const c of children) c.kill('SIGKILL'); };
  process.once('exit', killAll);
  try {
    const admin = cp.kubeconfig();
    const logs = { controllerManager: join(cp.dir, 'kube-controller-manager.log'), scheduler: join(cp.dir, 'kube-scheduler.log') };
    children.push(start(join(bin, 'kube-controller-manager'), [
      `--kubeconfig=${admin}`,
      // One instance, thrown away after the test: nobody to elect.
      '--leader-elect=false',
      // No metrics endpoint is needed, and a fixed port could collide.
      '--secure-port=0',
      // Every controller that is on by default: workloads, endpoints and
      // endpoint slices, garbage collector, node lifecycle, service accounts...
      '--controllers=*',
      `--service-account-private-key-file=${join(cp.dir, 'sa.key')}`,
      `--root-ca-file=${join(cp.dir, 'certs', 'apiserver.crt')}`,
      // A small cluster on a shared machine: answer quickly, without throttling.
      '--kube-api-qps=100', '--kube-api-burst=200',
      '--concurrent-statefulset-syncs=10', '--concurrent-deployment-syncs=10',
    ], logs.controllerManager));

    const schedulerConfig = join(cp.dir, 'kube-scheduler.yaml');
    writeFileSync(schedulerConfig, JSON.stringify({
      apiVersion: 'kubescheduler.config.k8s.io/v1',
      kind: 'KubeSchedulerConfiguration',
      clientConnection: { kubeconfig: admin, qps: 100, burst: 200 },
      leaderElection: { leaderElect: false },
    }));
    children.push(start(join(bin, 'kube-scheduler'), [`--config=${schedulerConfig}`, '--secure-port=0'], logs.scheduler));

    // Both are up once they exit no more: there is no port to ask. The test
    // notices soon enough when pods are not made or not scheduled.
    await new Promise((r) => setTimeout(r, 500));
    for (const [child, log] of [[children[0]!, logs.controllerManager], [children[1]!, logs.scheduler]] as const) {
      if (child.exitCode !== null) throw new Error(`${log} exited with ${child.exitCode}; see the log`);
    }

    return {
      ...cp,
      logs,
      async stop() {
        for (const child of [...children].reverse()) await stop(child);
        process.off('exit', killAll);
        await cp.stop();
      },
    };
  } catch (err) {
    killAll();
    await cp.stop();
    throw err;
  }
}
