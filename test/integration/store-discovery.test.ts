// Issue 16 item 3 / issue 15: store clients find the pi leader from the
// replicas themselves. Three pi replicas (real sockets, real RocksDB) in this
// process, registered in a registry that never says who leads (as when the
// API server is unreachable: the last known members, no fresh leader flag);
// a relay's StoreClient writes, the leader is stopped, and the client's next
// writes reach the new leader through the replicas' NOT_LEADER answers.
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../workloads/observability/logger.js';
import { toNumber } from '../../workloads/protocol/index.js';
import { EmbeddedRegistry } from '../../workloads/registry/embedded.js';
import { defaultTopology } from '../../workloads/registry/schema.js';
import { startPi } from '../../workloads/pi/pi.js';
import { RoleConfigSchema } from '../../workloads/runtime/config.js';
import type { RoleInstance } from '../../workloads/runtime/role-process.js';
import { StoreClient } from '../../workloads/store/store-client.js';

const dir = mkdtempSync(join(tmpdir(), 'store-discovery-'));
const registry = new EmbeddedRegistry({ ...defaultTopology(1, 1, 1), roles: { ...defaultTopology(1, 1, 1).roles, pi: { partitions: 1, replicas: 3 } } }, 600_000);
const replicas = new Map<number, { instance: RoleInstance; memberId: string }>();
const client = new StoreClient('pi', registry, { memberId: 'relay-0-0-test', role: 'relay' }, 60_000);

afterAll(async () => {
  client.close();
  for (const { instance } of replicas.values()) await instance.stop();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startReplica(replica: number): Promise<void> {
  const memberId = `pi-0-${replica}-test`;
  const log = createLogger('pi', { member: memberId });
  log.level = 'warn';
  const config = RoleConfigSchema.parse({ role: 'pi', partition: 0, replica, dataDir: join(dir, `pi-0-${replica}`) });
  const instance = await startPi({ config, ordinal: replica, memberId, self: { memberId, role: 'pi' }, log, registry, advertiseHost: '127.0.0.1' });
  // Registered ready, and never with a leader flag: whoever leads, the registry does not say.
  registry.put({ id: memberId, role: 'pi', partition: 0, replica, address: instance.member.address, ready: true });
  replicas.set(replica, { instance, memberId });
}

const append = (msgId: number) => client.call(0, { piAppend: { userId: 42, msgId } });

test('a store client finds the leader, and the next one after the leader stops, with no leader flag in the registry', async () => {
  for (const r of [0, 1, 2]) await startReplica(r);
  expect(toNumber((await append(1)).position)).toBe(1);
  const leader = [...replicas.entries()].find(([, r]) => r.instance.advertise?.().leader)![0];
  await replicas.get(leader)!.instance.stop();
  registry.remove(replicas.get(leader)!.memberId);
  replicas.delete(leader);
  expect(toNumber((await append(2)).position)).toBe(2);
  expect(toNumber((await append(1)).position)).toBe(1); // a retry of the first: idempotent on the new leader too
  expect(registry.members().some((m) => m.leader)).toBe(false);
});
