// The SDK's reconnecting ChatClient: its gateway is killed mid-stream, it moves
// to the other gateway, logs in again and rejoins its rooms from where it was,
// and so gets every message of the room once, in the room's order.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { messageIdKey, type Delivery } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';

const ROOM = 4242;
let cluster: LocalClusterHandle;

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '1000']);
});

afterAll(async () => {
  await cluster.stop();
});

function record(chat: ChatClient): string[] {
  const got: string[] = [];
  chat.on('message', (d: Delivery) => { if (d.roomId === ROOM) got.push(messageIdKey(d.messageId)); });
  return got;
}

describe('reconnecting ChatClient', () => {
  test('moves to another gateway when its own dies and misses nothing', async () => {
    const [first, second] = cluster.ready.gateways as [string, string];
    const chat = await ChatClient.connect([first, second], { reconnect: true, maxBackoffMs: 500 });
    const keys: string[] = [];
    const reference = await ChatClient.connect(second); // never loses its gateway
    const got = record(chat);
    const order = record(reference);
    const reconnected = new Promise<string>((resolve) => chat.once('reconnected', resolve));
    // How many messages were acknowledged while the client had no connection (they must come from the resume).
    let droppedAt = -1;
    let backAt = -1;
    chat.once('reconnecting', () => { droppedAt = keys.length; });
    chat.once('reconnected', () => { backAt = keys.length; });
    await chat.login(7001);
    await reference.login(7002);
    await chat.join(ROOM);
    await reference.join(ROOM);

    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 40), timeoutMs: 20_000 });
    for (let i = 0; i < 300; i++) {
      if (i === 100) {
        const gateway = (await cluster.processes()).find((p) => p.name === 'gateway-0')!;
        process.kill(gateway.pid, 'SIGKILL');
      }
      keys.push(messageIdKey((await publisher.publish({ roomId: ROOM, payload: Buffer.from(`m${i}`) })).messageId));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await reconnected).toBe(second);
    expect(backAt - droppedAt).toBeGreaterThan(0);
    await eventually(() => got.length >= keys.length && order.length >= keys.length, 'every message to both members');
    expect(new Set(got).size).toBe(got.length); // none twice
    expect(got).toEqual(order); // the room's order
    expect([...got].sort()).toEqual([...keys].sort()); // all of them
    // Still a working session afterwards.
    await chat.send(ROOM, Buffer.from('after'));
    publisher.close();
    await chat.close();
    await reference.close();
  });

  test('without reconnect, a lost connection ends the client', async () => {
    const chat = await ChatClient.connect(cluster.ready.gateways[1]!);
    await chat.login(7003);
    const closed = new Promise<number>((resolve) => chat.once('close', resolve));
    const gateway = (await cluster.processes()).find((p) => p.name === 'gateway-1')!;
    process.kill(gateway.pid, 'SIGKILL');
    expect(typeof await closed).toBe('number');
    await expect(chat.send(ROOM, Buffer.from('x'))).rejects.toThrow(/CLOSED/);
  });
});
