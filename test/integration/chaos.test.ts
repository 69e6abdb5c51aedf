// Issue 7, acceptance 5: under load, for a bounded time, kill -9 random
// processes of every role (the launcher restarts them, as a kubelet would)
// and check the delivery contract for the users that stayed connected: no
// acknowledged message lost, none twice, and each room in publish order.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { messageIdKey, toNumber } from '../../workloads/protocol/index.js';
import { ChatClient, type InboxMessage } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { connectUser, type User } from '../support/traffic.js';

const CHAOS_MS = 20_000;
const KILL_EVERY_MS = 1_500;
const ROOMS = 10;
/**
 * Liveness bounds. Each room publishes one message at a time, so a kill can
 * cost a room at most the publish it has in flight; in practice one kill of a
 * broker or proxy costs each room one (0 or 10 failures per run) and directs
 * none, over 14 kills. A cluster that stopped answering would fail far more.
 */
const MAX_FAILED_PUBLISHES = 2 * ROOMS;
const MAX_FAILED_DIRECTS = 10;
/** Pause after a failed direct, so a relay that is down is not asked in a tight loop. */
const DIRECT_RETRY_PAUSE_MS = 100;
/** Which processes die is drawn from this seed; GROUPCHAT_CHAOS_SEED replays a run's choices. */
const SEED = Number(process.env.GROUPCHAT_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded generator of numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
let cluster: LocalClusterHandle;
let users: User[];

/** A restarted proxy listens on a new port, so publishers follow the addresses registered now, as a backend watching the registry would. */
async function proxiesNow(): Promise<string[]> {
  return (await cluster.processes()).filter((p) => p.role === 'proxy' && p.member?.ready).map((p) => p.member!.address);
}

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '300']);
  users = [];
  // The audited users stay on gateway-0; gateway-1 is one of the victims.
  for (let i = 0; i < 40; i++) users.push(await connectUser(cluster.ready.gateways[0]!, 7000 + i, [1 + (i % ROOMS)]));
  for (let i = 0; i < 10; i++) await connectUser(cluster.ready.gateways[1]!, 7500 + i, [1 + (i % ROOMS)]);
});

afterAll(async () => {
  await Promise.all(users.map((u) => u.client.close()));
  await cluster.stop();
});

describe('chaos', () => {
  test('random SIGKILLs of every role under load keep the delivery invariants', async () => {
    console.log(`chaos seed ${SEED} (replay the victims with GROUPCHAT_CHAOS_SEED=${SEED})`);
    const random = seededRandom(SEED);
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 40), timeoutMs: 10_000 });
    const ackedByRoom = new Map<number, string[]>();
    let failedPublishes = 0;
    let running = true;
    // Each room publishes one message at a time (its order is then defined); rooms run in parallel.
    const rooms = Array.from({ length: ROOMS }, async (_, r) => {
      const roomId = r + 1;
      const acked: string[] = [];
      ackedByRoom.set(roomId, acked);
      for (let i = 0; running; i++) {
        try {
          const result = await publisher.publish({ roomId, payload: Buffer.from(`${roomId}:${i}`) });
          acked.push(messageIdKey(result.messageId));
        } catch {
          failedPublishes++;
        }
      }
    });
    // And a one-to-one stream between two users on gateway-0.
    const sender = await ChatClient.connect(cluster.ready.gateways[0]!);
    await sender.login(7900, 'sender');
    const receiver = await ChatClient.connect(cluster.ready.gateways[0]!);
    const inbox: InboxMessage[] = [];
    receiver.on('inbox', (m) => inbox.push(m));
    await receiver.login(7901, 'receiver');
    const directAcked: string[] = [];
    let failedDirects = 0;
    const direct = (async () => {
      for (let i = 0; running; i++) {
        try {
          await sender.direct(7901, Buffer.from(`d${i}`));
          directAcked.push(`d${i}`);
        } catch {
          failedDirects++;
          await new Promise((r) => setTimeout(r, DIRECT_RETRY_PAUSE_MS));
        }
      }
    })();

    // Every role is hit, in a random order, until the time is up.
    const victims = (await cluster.processes()).filter((p) => p.name !== 'gateway-0');
    const roles = [...new Set(victims.map((p) => p.role))];
    const killed: string[] = [];
    const started = Date.now();
    for (let k = 0; Date.now() - started < CHAOS_MS; k++) {
      const role = k < roles.length ? roles[k]! : roles[Math.floor(random() * roles.length)]!;
      const candidates = (await cluster.processes()).filter((p) => p.role === role && p.name !== 'gateway-0' && p.member?.ready);
      const victim = candidates[Math.floor(random() * candidates.length)];
      if (victim) {
        process.kill(victim.pid, 'SIGKILL');
        killed.push(victim.name);
      }
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS));
      publisher.setProxies(await proxiesNow());
    }
    running = false;
    await Promise.all([...rooms, direct]);

    // Delivery: every acked room message reached every member, once, in publish order.
    let lost = 0;
    let duplicated = 0;
    let reordered = 0;
    await eventually(() => users.every((u) => [...u.rooms].every((room) => {
      const got = new Set(u.received.get(room) ?? []);
      return ackedByRoom.get(room)!.every((k) => got.has(k));
    })), 'acked room messages', 30_000).catch(() => undefined);
    for (const u of users) {
      for (const room of u.rooms) {
        const acked = ackedByRoom.get(room)!;
        const ackedSet = new Set(acked);
        const got = u.received.get(room) ?? [];
        duplicated += got.length - new Set(got).size + u.client.duplicatesDropped;
        const gotSet = new Set(got);
        lost += acked.filter((k) => !gotSet.has(k)).length;
        const inOrder = got.filter((k) => ackedSet.has(k));
        reordered += inOrder.filter((k, i) => k !== acked[i]).length;
      }
    }
    await eventually(() => directAcked.every((t) => inbox.some((m) => Buffer.from(m.payload).toString() === t)), 'acked directs', 30_000).catch(() => undefined);
    const inboxTexts = inbox.map((m) => Buffer.from(m.payload).toString());
    const directLost = directAcked.filter((t) => !inboxTexts.includes(t)).length;
    const directDuplicated = inboxTexts.length - new Set(inboxTexts).size;
    const positionsConsecutive = inbox.every((m, i) => toNumber(m.position) === i + 1);
    const totalAcked = [...ackedByRoom.values()].reduce((n, a) => n + a.length, 0);
    // Alive afterwards: once every process is back, every room takes a message again, and a direct goes through.
    let processes = await cluster.processes();
    await eventually(async () => (processes = await cluster.processes()).every((p) => p.member?.ready),
      'every killed process restarted and ready', 60_000).catch(() => undefined);
    const notBack = processes.filter((p) => !p.member?.ready).map((p) => p.name);
    // A new publisher, with time for partitions whose replicas were killed to elect a leader again: this is
    // about the cluster taking messages, not the old links' reconnect backoff.
    const after = new Publisher({ proxies: await proxiesNow(), workerId: workerIdFor('client', 41), timeoutMs: 30_000 });
    const recovered = await Promise.all(Array.from({ length: ROOMS }, (_, r) => after.publish({ roomId: r + 1, payload: Buffer.from('after') }).then(() => 'OK', (e: Error) => e.message)));
    after.close();
    const directAfter = await sender.direct(7901, Buffer.from('after')).then(() => 'OK', (e: Error) => e.message);
    console.log(`chaos (seed ${SEED}): killed ${killed.length} processes (${killed.join(', ')}); room messages acked ${totalAcked}, `
      + `failed ${failedPublishes}; directs acked ${directAcked.length}, failed ${failedDirects}; `
      + `lost ${lost}, duplicated ${duplicated}, reordered ${reordered}; direct lost ${directLost}, duplicated ${directDuplicated}`);
    expect(new Set(killed.map((n) => n.split('-')[0]))).toEqual(new Set(roles));
    expect(totalAcked).toBeGreaterThan(0);
    expect(failedPublishes).toBeLessThanOrEqual(MAX_FAILED_PUBLISHES);
    expect(failedDirects).toBeLessThanOrEqual(MAX_FAILED_DIRECTS);
    expect({ notBack, recovered, directAfter }).toEqual({ notBack: [], recovered: Array(ROOMS).fill('OK'), directAfter: 'OK' });
    expect({ lost, duplicated, reordered }).toEqual({ lost: 0, duplicated: 0, reordered: 0 });
    expect({ directLost, directDuplicated, positionsConsecutive }).toEqual({ directLost: 0, directDuplicated: 0, positionsConsecutive: true });
    publisher.close();
    await Promise.all([sender.close(), receiver.close()]);
  });
});
