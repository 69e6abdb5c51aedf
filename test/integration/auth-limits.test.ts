// Issue 7, acceptance 1 and 2: signed logins, the join hook, and rate limits
// per user and per room, against a real local cluster that requires tokens.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { signLogin } from '../../workloads/auth/tokens.js';
import { ChatClient, type ChatError } from '../../workloads/sdk/chat-client.js';
import { PEER_PROTOCOL_VERSION } from '../../workloads/protocol/index.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { encodeFrame, RawPeer } from '../support/raw-peer.js';

let cluster: LocalClusterHandle;
const key = Buffer.from(randomBytes(32).toString('hex'));
const peerSecret = randomBytes(24).toString('hex');
const USER_RATE = 5;
const ROOM_RATE = 20;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'groupchat-auth-'));
  writeFileSync(join(dir, 'key'), key);
  writeFileSync(join(dir, 'peer-secret'), peerSecret);
  cluster = await startLocalCluster(['--auth-key-file', join(dir, 'key'), '--peer-secret-file', join(dir, 'peer-secret'),
    '--user-rate', String(USER_RATE), '--room-rate', String(ROOM_RATE)]);
});

afterAll(async () => {
  await cluster.stop();
});

const outcome = (p: Promise<unknown>) => p.then(() => 'OK', (e: ChatError) => e.code);

async function connect(gateway = 0): Promise<ChatClient> {
  return ChatClient.connect(cluster.ready.gateways[gateway]!);
}

async function loggedIn(userId: number, gateway = 0, rooms?: number[]): Promise<ChatClient> {
  const client = await connect(gateway);
  await client.login(userId, `u${userId}`, await signLogin(key, userId, 600, rooms));
  return client;
}

describe('authentication', () => {
  test('a login without a token, with a forged, foreign or expired token is refused', async () => {
    const client = await connect();
    expect(await outcome(client.login(7, 'mallory'))).toBe('UNAUTHENTICATED');
    const forged = await signLogin(Buffer.from(randomBytes(32).toString('hex')), 7, 600);
    expect(await outcome(client.login(7, 'mallory', forged))).toBe('UNAUTHENTICATED');
    const someoneElses = await signLogin(key, 8, 600);
    expect(await outcome(client.login(7, 'mallory', someoneElses))).toBe('UNAUTHENTICATED');
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('7')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
    expect(await outcome(client.login(7, 'mallory', expired))).toBe('UNAUTHENTICATED');
    // Refused logins grant nothing.
    expect(await outcome(client.join(1))).toBe('NOT_LOGGED_IN');
    expect(await outcome(client.login(7, 'alice', await signLogin(key, 7, 600)))).toBe('OK');
    expect(await outcome(client.join(1))).toBe('OK');
    await client.close();
  });

  test('a token listing rooms may join only those', async () => {
    const client = await loggedIn(9, 1, [11, 12]);
    expect(await outcome(client.join(11))).toBe('OK');
    expect(await outcome(client.join(13))).toBe('FORBIDDEN');
    await client.close();
  });
});

describe('peer secret', () => {
  test('a link without the cluster secret is refused before the process says anything', async () => {
    const proxy = (await cluster.processes()).find((p) => p.role === 'proxy')!;
    const hello = (secret: string) => encodeFrame({ hello: { memberId: 'intruder', role: 'client', protocolVersion: PEER_PROTOCOL_VERSION, secret: Buffer.from(secret) } });
    const stranger = await RawPeer.connect(proxy.member!.address);
    stranger.write(hello('not-the-secret'));
    const refused = await stranger.outcome();
    expect(refused.peerError?.code).toBe(6);
    expect(refused.frames.map((f) => f.body)).toEqual(['error']);
    const member = await RawPeer.connect(proxy.member!.address);
    member.write(hello(peerSecret));
    await eventually(() => member.frames.length > 0, 'the proxy Hello');
    expect(member.frames[0]!.body).toBe('hello');
    member.destroy();
  });
});

describe('rate limits', () => {
  test('a user over its rate gets RATE_LIMITED; another user in the room is unaffected', async () => {
    const room = 300;
    const flooder = await loggedIn(21, 0);
    const calm = await loggedIn(22, 1);
    const listener = await loggedIn(23, 1);
    for (const c of [flooder, calm, listener]) await c.join(room);
    const received: string[] = [];
    listener.on('message', (d) => received.push(Buffer.from(d.payload).toString()));
    const flood = await Promise.all(Array.from({ length: 30 }, (_, i) => outcome(flooder.send(room, Buffer.from(`flood ${i}`)))));
    expect(flood.filter((o) => o === 'RATE_LIMITED').length).toBeGreaterThan(0);
    expect(flood.filter((o) => o === 'OK').length).toBeLessThanOrEqual(USER_RATE + 2);
    for (let i = 0; i < 3; i++) expect(await outcome(calm.send(room, Buffer.from(`calm ${i}`)))).toBe('OK');
    await eventually(() => ['calm 0', 'calm 1', 'calm 2'].every((t) => received.includes(t)), 'the calm messages');
    await Promise.all([flooder.close(), calm.close(), listener.close()]);
  });

  test("a request refused by the gateway's own checks costs no token of the user's rate", async () => {
    const room = 500;
    const user = await loggedIn(31, 0);
    await user.join(room);
    // Four times the burst in requests the gateway refuses itself: a room not joined, a payload too large, recipient 0.
    const refused = await Promise.all(Array.from({ length: 4 * USER_RATE }, (_, i) => outcome(
      i % 3 === 0 ? user.send(room + 1, Buffer.from('not joined'))
        : i % 3 === 1 ? user.send(room, Buffer.alloc(64 * 1024 + 1)) : user.direct(0, Buffer.from('nobody')))));
    expect(new Set(refused)).toEqual(new Set(['NOT_A_MEMBER', 'INVALID_ARGUMENT']));
    // The bucket is still full (it only refills meanwhile): a whole burst goes through.
    const sent = await Promise.all(Array.from({ length: USER_RATE }, (_, i) => outcome(user.send(room, Buffer.from(`counted ${i}`)))));
    expect(sent).toEqual(Array(USER_RATE).fill('OK'));
    await user.close();
  });

  test('a room over its rate gets RATE_LIMITED; another room is unaffected', async () => {
    const busy = 400;
    const quiet = 401;
    const senders = await Promise.all(Array.from({ length: 10 }, (_, i) => loggedIn(100 + i, i % 2)));
    for (const s of senders) await s.join(busy);
    const other = await loggedIn(200, 0);
    await other.join(quiet);
    // 10 users × 4 messages stays within each user's rate but passes the room's.
    const results = await Promise.all(senders.flatMap((s, i) => Array.from({ length: 4 }, (_, j) => outcome(s.send(busy, Buffer.from(`${i}/${j}`))))));
    expect(results.filter((o) => o === 'RATE_LIMITED').length).toBeGreaterThan(0);
    expect(await outcome(other.send(quiet, Buffer.from('still fine')))).toBe('OK');
    await Promise.all([...senders, other].map((c) => c.close()));
  });
});
