// Issue 3: one-to-one messages through Relay, Pi and Xiu (real RocksDB,
// real replication), leader failover, full-partition restarts, bad input,
// and room gap recovery.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Long, messageIdKey, toNumber, type Delivery, type PeerFrame, type PeerFrameInit } from '../../workloads/protocol/index.js';
import { ChatClient, ChatError } from '../../workloads/sdk/chat-client.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { expectEachAckedOnce, inboxText, loginWithInbox } from '../support/inbox.js';
import { requiredMetric } from '../support/metrics.js';
import { encodeFrame, helloFrame, RawPeer } from '../support/raw-peer.js';

let cluster: LocalClusterHandle;

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '500']);
});

afterAll(async () => {
  await cluster.stop();
});

const login = (gateway: number, userId: number) => loginWithInbox(cluster.ready.gateways[gateway]!, userId);

const text = inboxText;

async function sendAll(sender: ChatClient, to: number, texts: string[], concurrency = 32): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < texts.length) {
      const t = texts[next++]!;
      await sender.direct(to, Buffer.from(t));
    }
  }));
}

async function leaderOf(role: 'pi' | 'xiu') {
  for (;;) {
    const leader = (await cluster.processes()).find((p) => p.role === role && p.member?.leader);
    if (leader) return leader;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('one-to-one and offline messages', () => {
  test('1,000 messages to an offline user arrive once, in order, at login; after an ack, none again', async () => {
    const alice = await login(0, 2001);
    const texts = Array.from({ length: 1000 }, (_, i) => `a→b ${i}`);
    for (const t of texts) await alice.client.direct(2002, Buffer.from(t)); // one at a time: a defined order
    const bob = await login(1, 2002);
    await eventually(() => bob.inbox.length >= 1000, '1000 inbox messages');
    expect(bob.inbox.map(text)).toEqual(texts);
    expect(bob.inbox.map((m) => toNumber(m.position))).toEqual(texts.map((_, i) => i + 1));
    await bob.client.ackInbox();
    await bob.client.close();
    // A new login gets only what came after the ack.
    const again = await login(0, 2002);
    await alice.client.direct(2002, Buffer.from('after the ack'));
    await eventually(() => again.inbox.length >= 1, 'the new message');
    expect(again.inbox.map(text)).toEqual(['after the ack']);
    expect(toNumber(again.inbox[0]!.position)).toBe(1001);
    await Promise.all([alice.client.close(), again.client.close()]);
  });

  test('SIGKILL of the pi leader and then the xiu leader mid-stream: nothing acked lost, nothing twice', async () => {
    const sender = await login(0, 3001);
    const receiver = await login(1, 3002);
    const texts = Array.from({ length: 600 }, (_, i) => `stream ${i}`);
    const acked: string[] = [];
    let next = 0;
    const kills: Array<{ at: number; role: 'pi' | 'xiu' }> = [{ at: 150, role: 'pi' }, { at: 400, role: 'xiu' }];
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < texts.length) {
        const i = next++;
        const kill = kills.find((k) => k.at === i);
        if (kill) process.kill((await leaderOf(kill.role)).pid, 'SIGKILL');
        await sender.client.direct(3002, Buffer.from(texts[i]!));
        acked.push(texts[i]!);
      }
    }));
    expect(acked.length).toBe(600);
    await expectEachAckedOnce(receiver.inbox, acked);
    await Promise.all([sender.client.close(), receiver.client.close()]);
  });

  test('every replica of pi and xiu killed and restarted: the stored messages are still there', async () => {
    const sender = await login(0, 4001);
    await sendAll(sender.client, 4002, Array.from({ length: 50 }, (_, i) => `kept ${i}`));
    const victims = (await cluster.processes()).filter((p) => p.role === 'pi' || p.role === 'xiu');
    for (const p of victims) process.kill(p.pid, 'SIGKILL');
    for (const p of victims) await cluster.waitForRestart(p.name, p.restarts + 1);
    const receiver = await login(1, 4002);
    await eventually(() => receiver.inbox.length >= 50, '50 kept messages');
    expect(new Set(receiver.inbox.map(text))).toEqual(new Set(Array.from({ length: 50 }, (_, i) => `kept ${i}`)));
    await Promise.all([sender.client.close(), receiver.client.close()]);
  });

  test('a Direct id is unique per sender and recipient: the same id to two recipients stores both, again to one stores nothing new', async () => {
    const sender = await login(0, 8001);
    const id = Long.fromString('4242424242', true); // both recipients share Xiu's one partition (the default)
    await sender.client.direct(8002, Buffer.from('to 8002'), id);
    await sender.client.direct(8003, Buffer.from('to 8003'), id);
    await sender.client.direct(8002, Buffer.from('again to 8002'), id);
    await sender.client.direct(8002, Buffer.from('last'));
    const [first, second] = [await login(1, 8002), await login(0, 8003)];
    await eventually(() => first.inbox.length >= 2 && second.inbox.length >= 1, 'both inboxes');
    expect(first.inbox.map((m) => [toNumber(m.position), text(m)])).toEqual([[1, 'to 8002'], [2, 'last']]);
    expect(second.inbox.map(text)).toEqual(['to 8003']);
    await Promise.all([sender.client.close(), first.client.close(), second.client.close()]);
  });

  test('malformed or oversized one-to-one input and out-of-range cursors get clear errors; nothing stored changes', async () => {
    const sender = await login(0, 5001);
    await sender.client.direct(5002, Buffer.from('the only message'));
    const code = (p: Promise<unknown>) => p.then(() => 'OK', (e: ChatError) => e.code);
    expect(await code(sender.client.direct(0, Buffer.from('x')))).toBe('INVALID_ARGUMENT');
    expect(await code(sender.client.direct(5002, Buffer.alloc(64 * 1024 + 1)))).toBe('INVALID_ARGUMENT');
    const receiver = await login(1, 5002);
    expect(await code(receiver.client.ackInbox(2))).toBe('CURSOR_OUT_OF_RANGE');
    await eventually(() => receiver.inbox.length >= 1, 'the stored message');
    expect(receiver.inbox.map(text)).toEqual(['the only message']);
    expect(await code(receiver.client.ackInbox(1))).toBe('OK');
    await Promise.all([sender.client.close(), receiver.client.close()]);
  });
});

type StoreOp = Omit<NonNullable<PeerFrameInit['storeRequest']>, 'correlation'>;

/** One request to the leader of a Pi or Xiu partition, over a raw peer connection: its StoreReply. */
async function storeCall(role: 'pi' | 'xiu', key: number, op: StoreOp) {
  const replicas = (await cluster.processes()).filter((p) => p.role === role);
  const partition = key % (Math.max(...replicas.map((p) => p.partition)) + 1);
  let leader: (typeof replicas)[number] | undefined;
  await eventually(() => !!(leader = replicas.find((p) => p.partition === partition && p.member?.leader)), `a ${role} ${partition} leader`);
  const raw = await RawPeer.connect(leader!.member!.address);
  try {
    raw.write(Buffer.concat([helloFrame(), encodeFrame({ storeRequest: { correlation: 1, ...op } })]));
    let reply: Extract<PeerFrame, { body: 'storeReply' }> | undefined;
    await eventually(() => !!(reply = raw.frames.find((f): f is Extract<PeerFrame, { body: 'storeReply' }> => f.body === 'storeReply')), `the ${role} StoreReply`, 15_000);
    expect(reply!.storeReply.status).toBe(0); // STORED
    return reply!.storeReply;
  } finally {
    raw.destroy();
  }
}

/** The sum of a counter over every relay (each exports it, 0 included). */
async function relaySum(sample: string): Promise<number> {
  const relays = (await cluster.processes()).filter((p) => p.role === 'relay' && p.member?.httpAddress);
  expect(relays.length).toBeGreaterThan(0);
  return (await Promise.all(relays.map((r) => requiredMetric(r.member!.httpAddress!, sample)))).reduce((a, b) => a + b, 0);
}

describe('an inbox entry whose payload Xiu does not have', () => {
  test('is not delivered (nothing made up), is counted, and is delivered once the payload is stored', async () => {
    const sender = await login(0, 7001);
    await sender.client.direct(7002, Buffer.from('first'));
    const peek = await login(1, 7002);
    await eventually(() => peek.inbox.length >= 1, 'the first message');
    const first = peek.inbox[0]!.messageId;
    await peek.client.close();
    // Xiu numbers a partition's messages one by one: the next one stored there gets this id.
    const next = Long.fromValue(first).add(1);
    const appended = await storeCall('pi', 7002, { piAppend: { userId: 7002, msgId: next } });
    expect(toNumber(appended.position)).toBe(2);

    const missingBefore = await relaySum('groupchat_relay_missing_payload_total');
    const receiver = await login(1, 7002);
    await eventually(() => receiver.inbox.length >= 1, 'position 1 again');
    // The relay reads position 2, finds no payload, and tries again: twice seen, nothing made up.
    await eventually(async () => (await relaySum('groupchat_relay_missing_payload_total')) >= missingBefore + 2, 'the missing payload counted twice');
    expect(receiver.inbox.map((m) => [toNumber(m.position), text(m), m.senderId])).toEqual([[1, 'first', 7001]]);

    const stored = await storeCall('xiu', 7002, { xiuPut: { clientMessageId: 77, senderId: 7001, recipientId: 7002, payload: Buffer.from('second'), sentAtMs: Date.now() } });
    expect(messageIdKey(stored.msgId)).toBe(messageIdKey(next));
    await eventually(() => receiver.inbox.length >= 2, 'position 2 once its payload is there');
    expect(receiver.inbox.map((m) => [toNumber(m.position), text(m), m.senderId])).toEqual([[1, 'first', 7001], [2, 'second', 7001]]);
    await Promise.all([sender.client.close(), receiver.client.close()]);
  });
});

describe('room gap recovery', () => {
  test('a member that drops and rejoins gets exactly the messages it missed', async () => {
    const room = 4242;
    const speaker = await login(0, 6001);
    await speaker.client.join(room);
    const member = await login(1, 6002);
    const seen: Delivery[] = [];
    member.client.on('message', (d) => seen.push(d));
    await member.client.join(room);
    for (let i = 0; i < 5; i++) await speaker.client.send(room, Buffer.from(`before ${i}`));
    await eventually(() => seen.length >= 5, 'the first five');
    const position = member.client.positions.get(room)!;
    await member.client.close();
    const missedIds: string[] = [];
    const speakerSeen: Delivery[] = [];
    speaker.client.on('message', (d) => speakerSeen.push(d));
    for (let i = 0; i < 20; i++) await speaker.client.send(room, Buffer.from(`missed ${i}`));
    await eventually(() => speakerSeen.length >= 20, 'the speaker sees its own messages');
    for (const d of speakerSeen) missedIds.push(messageIdKey(d.messageId));

    const back = await login(1, 6002);
    const recovered: Delivery[] = [];
    back.client.on('message', (d) => recovered.push(d));
    await back.client.join(room, position);
    expect(recovered.map((d) => messageIdKey(d.messageId))).toEqual(missedIds);
    await speaker.client.send(room, Buffer.from('live again'));
    await eventually(() => recovered.length >= 21, 'the live message');
    expect(Buffer.from(recovered[20]!.payload).toString()).toBe('live again');
    await Promise.all([speaker.client.close(), back.client.close()]);
  });
});
