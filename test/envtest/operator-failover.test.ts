// Issue 15, item 1: two operators elect a leader on a Lease; the leader is
// killed (SIGKILL: no release) in the middle of a doubling; the standby takes
// over once the Lease has gone unrenewed for its duration, and completes the
// doubling. The failover time is measured from the kill to the standby's
// `leading` line; a leader that stops cleanly releases the Lease instead.
import { KubernetesRegistry } from '../../workloads/registry/kubernetes.js';
import type { Registration } from '../../workloads/registry/registry.js';
import { type Topology } from '../../workloads/registry/schema.js';
import { type ControlPlane } from './control-plane.js';
import { eventsSince, eventually, getJson, logged, OPERATOR_NS, startOperator, type CliProcess, startOperatorControlPlane, workloadUser, OPERATOR_USER, topologyOf } from './support.js';

const NS = 'failover';
const CLUSTER = 'chat';
const WORKLOAD_USER = workloadUser(NS, CLUSTER);
const LEASE_DURATION_MS = 15_000;
const RETRY_PERIOD_MS = 2_000;

let cp: ControlPlane;
const operators: CliProcess[] = [];
let registry: KubernetesRegistry;
const registrations: Registration[] = [];

const topology = (): Promise<Topology> => topologyOf(cp, NS, CLUSTER);
const leading = (o: CliProcess) => o.logs.some((l) => l.msg === 'leading');

beforeAll(async () => {
  // The operator gets exactly the chart's RBAC.
  cp = await startOperatorControlPlane(NS, CLUSTER);
  for (let i = 0; i < 2; i++) operators.push(await startOperator(cp.kubeconfig(OPERATOR_USER)));
});

afterAll(async () => {
  for (const r of registrations) await r.close();
  await registry?.close();
  for (const o of operators) await o.stop();
  await cp?.stop();
});

test('one of two operators leads; killed mid-doubling, the standby takes over and completes it', async () => {
  await cp.kubectl(['apply', '-n', NS, '-f', 'examples/small.yaml']);
  // The pods' identity and the topology exist once the leader has reconciled.
  registry = await eventually(() => KubernetesRegistry.connect({ kubeConfig: cp.kubeConfig(WORKLOAD_USER), namespace: NS, cluster: CLUSTER }, 5000));
  const leader = await eventually(() => {
    const found = operators.filter(leading);
    expect(found).toHaveLength(1);
    return found[0]!;
  });
  const standby = operators.find((o) => o !== leader)!;
  const lease = await getJson(cp, ['lease', 'groupchat-operator', '-n', OPERATOR_NS]);
  expect(lease.spec).toMatchObject({ holderIdentity: leader.logs.find((l) => l.msg === 'ready')!.identity, leaseDurationSeconds: 15 });

  // The members of the old partitions, serving epoch 1.
  for (const p of [0, 1]) for (const r of [0, 1]) {
    registrations.push(await registry.register({ id: `broker-${p}-${r}-f`, role: 'broker', partition: p, replica: r, address: `10.4.${p}.${r}:7000`, ready: true, epoch: 1 }));
  }
  const doublingsStarted = await eventsSince(cp, NS, CLUSTER);
  await cp.kubectl(['patch', 'groupchatcluster', CLUSTER, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { broker: { partitions: 4, replicas: 2 } } })]);
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 1, phase: 'Expanding' }));
  const killedAt = Date.now();
  await leader.kill();
  // The new partitions sync while nobody leads.
  for (const p of [2, 3]) for (const r of [0, 1]) {
    registrations.push(await registry.register({ id: `broker-${p}-${r}-f`, role: 'broker', partition: p, replica: r, address: `10.4.${p}.${r}:7000`, ready: true, epoch: 2 }));
  }
  await logged(standby, 'leading', (l) => l.msg === 'leading', LEASE_DURATION_MS * 3);
  const failoverMs = standby.logs.find((l) => l.msg === 'leading')!.time as number - killedAt;
  process.stdout.write(`leader failover after SIGKILL: ${(failoverMs / 1000).toFixed(1)} s\n`);
  // Not before the Lease could have expired, and within one retry period (with jitter) after.
  expect(failoverMs).toBeGreaterThanOrEqual(LEASE_DURATION_MS - 1000);
  expect(failoverMs).toBeLessThanOrEqual(LEASE_DURATION_MS + RETRY_PERIOD_MS * 1.2 + 3000);

  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 2, phase: 'Switching' }));
  for (const old of registrations.slice(0, 4)) await old.update({ epoch: 2 });
  await eventually(async () => expect(await topology()).toMatchObject({ epoch: 2, phase: 'Stable', roles: { broker: { partitions: 4 } } }));
  expect(await doublingsStarted('DoublingStarted')).toBe(1);
});

test('a leader that stops releases the Lease: a new standby takes over within a retry period', async () => {
  const leader = operators.find((o) => leading(o) && o.child.exitCode === null && o.child.signalCode === null)!;
  operators.push(await startOperator(cp.kubeconfig(OPERATOR_USER)));
  const standby = operators.at(-1)!;
  const stoppedAt = Date.now();
  await leader.stop();
  await logged(standby, 'leading', (l) => l.msg === 'leading', LEASE_DURATION_MS);
  const takeoverMs = standby.logs.find((l) => l.msg === 'leading')!.time as number - stoppedAt;
  process.stdout.write(`leader handover after SIGTERM: ${(takeoverMs / 1000).toFixed(1)} s\n`);
  expect(takeoverMs).toBeLessThanOrEqual(RETRY_PERIOD_MS * 1.2 + 3000);
});
