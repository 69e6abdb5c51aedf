// Acceptance 6 of the data plane: garbage, truncated, oversized and
// wrong-type frames, from a user (WebSocket) and from a peer (raw TCP to each
// role's peer port), against a real `groupchat up`. Each such connection gets
// a clear error (an Error frame and a WebSocket close code, or a PeerError
// frame) or a clean close, and the processes keep serving everyone else:
// afterwards two users on the two gateways still chat, and no process restarted.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import WebSocket from 'ws';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { client, decodePeerFrame, Long, messageIdKey, PEER_PROTOCOL_VERSION, type Delivery } from '../../workloads/protocol/index.js';
import { FrameDecoder } from '../../workloads/transport/framing.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { clientFrameArb, mutate, mutation, peerFrameArb } from '../support/arbitraries.js';
import { eventually, startLocalCluster, type LocalClusterHandle, type ProcessStatus } from '../support/cluster.js';
import { encodeFrame, helloFrame, RawPeer, varint } from '../support/raw-peer.js';
import { RawWebSocket } from '../support/raw-websocket.js';

const ErrorCode = client.ErrorCode;
const MiB = 1 << 20;

let cluster: LocalClusterHandle;
let before: ProcessStatus[];

/** Whether a process of ours is still running (the launcher restarts a dead one only after a delay). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  cluster = await startLocalCluster([]);
  before = await cluster.processes();
});

afterAll(async () => {
  await cluster?.stop();
});

// ---------------------------------------------------------------- users ----

interface WsOutcome {
  errors: Array<{ code: number; message: string }>;
  replies: Array<{ requestId: number; code: number }>;
  undecodable: number;
  closeCode: number;
  closeReason: string;
}

/** Opens a user connection, lets act() misbehave on it, and waits for the gateway to close it. */
function userSession(url: string, act: (ws: WebSocket) => void, boundMs = 10_000): Promise<WsOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'nodebuffer';
    const outcome: WsOutcome = { errors: [], replies: [], undecodable: 0, closeCode: 0, closeReason: '' };
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`the gateway did not close the connection within ${boundMs} ms`)); }, boundMs);
    ws.on('open', () => act(ws));
    ws.on('message', (data: Buffer) => {
      try {
        const frame = client.ServerFrame.decode(data);
        if (frame.error) outcome.errors.push({ code: frame.error.code ?? 0, message: frame.error.message ?? '' });
        if (frame.reply) outcome.replies.push({ requestId: frame.reply.requestId ?? 0, code: frame.reply.code ?? 0 });
      } catch {
        outcome.undecodable++;
      }
    });
    ws.on('error', () => undefined); // the close that follows is what counts
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      outcome.closeCode = code;
      outcome.closeReason = reason.toString();
      resolve(outcome);
    });
  });
}

const sendBytes = (bytes: Uint8Array | string) => (ws: WebSocket) => ws.send(bytes);

describe('bad input from a user (WebSocket)', () => {
  const gateways = () => cluster.ready.gateways;

  test('a text frame gets Error TEXT_FRAME and close 1003', async () => {
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes('{"login": {"userId": 1}}'));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.TEXT_FRAME]);
      expect(out.closeCode).toBe(1003);
    }
  });

  test('garbage bytes get Error MALFORMED_FRAME and close 1007', async () => {
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13])));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.MALFORMED_FRAME]);
      expect(out.errors[0]!.message).toMatch(/not a ClientFrame/);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('a truncated ClientFrame gets Error MALFORMED_FRAME and close 1007', async () => {
    const whole = client.ClientFrame.encode({ requestId: 1, login: { userId: 42, displayName: 'truncated tess' } }).finish();
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(whole.subarray(0, whole.length - 4)));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.MALFORMED_FRAME]);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('a frame over the gateway limit (> 65 KiB) gets Error FRAME_TOO_LARGE and close 1009', async () => {
    const big = client.ClientFrame.encode({ requestId: 2, send: { roomId: 1, payload: Buffer.alloc(70 * 1024, 0x61) } }).finish();
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(big));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.FRAME_TOO_LARGE]);
      expect(out.errors[0]!.message).toMatch(/exceeds/);
      expect(out.closeCode).toBe(1009);
    }
  });

  test('a frame over the WebSocket limit (> 1 MiB) is cut by the WebSocket layer with close 1009', async () => {
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(Buffer.alloc(MiB + 4096, 0x62)));
      // ws refuses it from the frame header, before buffering it: no Error frame, a 1009 close.
      expect(out.closeCode).toBe(1009);
      expect(out.undecodable).toBe(0);
    }
  });

  test('a well-formed ClientFrame with no body gets Error MALFORMED_FRAME and close 1007', async () => {
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(client.ClientFrame.encode({ requestId: 7 }).finish()));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.MALFORMED_FRAME]);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('a ClientFrame holding only an unknown field gets Error MALFORMED_FRAME and close 1007', async () => {
    // request_id 3, then field 99 (varint 1) which no version of client.proto defines.
    const unknown = Buffer.concat([client.ClientFrame.encode({ requestId: 3 }).finish(), Buffer.from([0x98, 0x06, 0x01])]);
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(unknown));
      expect(out.errors.map((e) => e.code)).toEqual([ErrorCode.MALFORMED_FRAME]);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('a ClientFrame with two bodies gets Error MALFORMED_FRAME and close 1007; neither body runs', async () => {
    const login = client.ClientFrame.encode({ requestId: 1, login: { userId: 9201 } }).finish();
    const join = client.ClientFrame.encode({ requestId: 1, join: { roomId: 9201 } }).finish();
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(Buffer.concat([login, join])));
      expect(out.errors).toEqual([{ code: ErrorCode.MALFORMED_FRAME, message: expect.stringMatching(/exactly one body; this one holds login and join/) }]);
      expect(out.replies).toEqual([]);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('an id wider than 32 bits (room 2^32 + 7) gets Error MALFORMED_FRAME and close 1007, not room 7', async () => {
    const room = Buffer.concat([Buffer.from([0x08]), varint(2 ** 32 + 7)]); // Join { room_id: 2^32 + 7 }
    const frame = Buffer.concat([client.ClientFrame.encode({ requestId: 2 }).finish(), Buffer.from([(11 << 3) | 2]), varint(room.length), room]);
    for (const url of gateways()) {
      const out = await userSession(url, sendBytes(frame));
      expect(out.replies).toEqual([]); // read as room 7, it would have been answered NOT_LOGGED_IN
      expect(out.errors).toEqual([{ code: ErrorCode.MALFORMED_FRAME, message: expect.stringMatching(/join\.room_id is 4294967303, wider than 32 bits/) }]);
      expect(out.closeCode).toBe(1007);
    }
  });

  test('more than 64 frames behind a Login in one TCP write are all held and answered in order; none is refused', async () => {
    const raw = await RawWebSocket.connect(gateways()[0]!);
    const pings = Array.from({ length: 300 }, (_, i) => ({ ping: { clientTimeMs: i + 1 } }));
    const frames = [{ requestId: 1, login: { userId: 9203 } }, ...pings, { requestId: 2, join: { roomId: 9203 } }];
    raw.write(Buffer.concat(frames.map((f) => RawWebSocket.frame(client.ClientFrame.encode(f).finish()))));
    await eventually(() => raw.messages.length >= frames.length || raw.closed, 'an answer to every frame, or a close');
    const answers = raw.messages.map((m) => {
      const f = client.ServerFrame.decode(m);
      return f.reply ? `reply ${f.reply.requestId} ${ErrorCode[f.reply.code ?? 0]}` : f.pong ? `pong ${String(f.pong.clientTimeMs)}` : `error ${f.error?.message}`;
    });
    expect(answers).toEqual(['reply 1 OK', ...pings.map((p) => `pong ${p.ping.clientTimeMs}`), 'reply 2 OK']);
    expect(raw.closed).toBe(false);
    raw.destroy();
  });

  test('a WebSocket ping is answered with a pong carrying its payload', async () => {
    for (const url of gateways()) {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const pong = new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${url} sent no pong within 10 s`)), 10_000);
        ws.once('pong', (data) => { clearTimeout(timer); resolve(data); });
      });
      ws.ping(Buffer.from('are you there'));
      expect((await pong).toString()).toBe('are you there');
      ws.close();
    }
  });

  test('a well-formed request out of order is answered with a Reply, and the connection stays usable', async () => {
    const chat = await ChatClient.connect(cluster.ready.gateways[0]!);
    try {
      await expect(chat.join(5)).rejects.toThrow(/NOT_LOGGED_IN/);
      await chat.login(9001, 'patient');
      await expect(chat.login(9001)).rejects.toThrow(/ALREADY_LOGGED_IN/);
      await expect(chat.join(0)).rejects.toThrow(/INVALID_ARGUMENT/);
      await chat.join(5);
    } finally {
      await chat.close();
    }
  });

  test('damaged and random ClientFrames: every connection gets answers or an Error and a close; none hangs (150 runs)', async () => {
    const valid = clientFrameArb.map((f) => client.ClientFrame.encode(f as Parameters<typeof client.ClientFrame.encode>[0]).finish());
    const hostile = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, ms]) => mutate(b, ms)),
    );
    await fc.assert(fc.asyncProperty(fc.array(hostile, { minLength: 1, maxLength: 4 }), fc.nat(1), async (frames, g) => {
      const url = cluster.ready.gateways[g % cluster.ready.gateways.length]!;
      // After the hostile frames, a Ping with no reply wanted and then garbage that is always
      // refused: so every session ends in a close, and we can check how it ended.
      const out = await userSession(url, (ws) => {
        for (const f of frames) ws.send(f);
        ws.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
      });
      expect(out.undecodable).toBe(0);
      expect(out.errors.length).toBe(1); // one Error frame, just before the close
      const expectedClose: Record<number, number> = {
        [ErrorCode.MALFORMED_FRAME]: 1007, [ErrorCode.FRAME_TOO_LARGE]: 1009, [ErrorCode.TEXT_FRAME]: 1003,
      };
      expect(out.closeCode).toBe(expectedClose[out.errors[0]!.code] ?? -1);
    }), { numRuns: 150, endOnFailure: true });
  });
});

// ---------------------------------------------------------------- peers ----

/** One live process of each role that listens for peers. */
async function peerTargets(): Promise<Array<{ name: string; role: string; address: string }>> {
  const byRole = new Map<string, { name: string; role: string; address: string }>();
  for (const p of await cluster.processes()) {
    if (!p.member?.address || byRole.has(p.role)) continue;
    byRole.set(p.role, { name: p.name, role: p.role, address: p.member.address });
  }
  return [...byRole.values()];
}

/**
 * Connects, writes the bytes, and waits for the process to close the connection.
 * One write: bytes still unread when the process closes would make its close a
 * reset, which can cost the client the PeerError it was sent (see the report).
 */
async function peerSession(address: string, ...writes: Uint8Array[]) {
  const raw = await RawPeer.connect(address);
  raw.write(Buffer.concat(writes));
  const outcome = await raw.outcome(10_000);
  expect(outcome.undecodable).toBeNull(); // what the process sent back is valid framing
  // It says its own Hello only after a valid one (a stranger learns nothing).
  if (!(writes.length > 0 && startsWithValidHello(writes[0]!))) expect(outcome.frames.map((f) => f.body)).not.toContain('hello');
  return outcome;
}

function startsWithValidHello(bytes: Uint8Array): boolean {
  try {
    const [first] = new FrameDecoder(1 << 20).push(Buffer.from(bytes));
    if (!first) return false;
    const frame = decodePeerFrame(first);
    return frame.body === 'hello' && !!frame.hello.memberId && !!frame.hello.role && frame.hello.protocolVersion === PEER_PROTOCOL_VERSION;
  } catch {
    return false;
  }
}

/** For every role at once: the same abuse, the expected PeerError code. */
async function everyRole(code: number | null, writes: () => Uint8Array[], message?: RegExp): Promise<void> {
  const targets = await peerTargets();
  expect(targets.map((t) => t.role)).toEqual(expect.arrayContaining(['gateway', 'broker', 'router', 'proxy']));
  const outcomes = await Promise.all(targets.map(async (t) => ({ t, out: await peerSession(t.address, ...writes()) })));
  for (const { t, out } of outcomes) {
    const got = { role: t.role, code: out.peerError?.code ?? null };
    expect(got).toEqual({ role: t.role, code });
    if (message) expect(out.peerError?.message).toMatch(message);
    // Nothing follows the PeerError.
    if (code !== null) expect(out.frames.at(-1)!.body).toBe('error');
  }
}

describe('bad input from a peer (raw TCP to every role)', () => {
  test('a frame of garbage (valid length, undecodable body) gets PeerError 2', async () => {
    await everyRole(2, () => [Buffer.from([0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])], /malformed peer frame/);
  });

  test('garbage after a valid Hello gets PeerError 2', async () => {
    await everyRole(2, () => [helloFrame(), Buffer.from([0x03, 0x0f, 0x0f, 0x0f])], /malformed peer frame/);
  });

  test('a length varint that never ends gets PeerError 1', async () => {
    await everyRole(1, () => [Buffer.alloc(12, 0x80)], /varint longer than 5 bytes/);
  });

  test('a declared length over the 1 MiB limit gets PeerError 1 without the body being sent', async () => {
    await everyRole(1, () => [helloFrame(), varint(MiB + 1)], /exceeds the limit/);
  });

  test('an HTTP request (text that is not a frame) is closed', async () => {
    // "G" reads as a 71-byte length that never completes: the silence timeout closes it.
    const targets = await peerTargets();
    await Promise.all(targets.map((t) => peerSession(t.address, Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'))));
  });

  test('a truncated frame followed by silence is closed by the heartbeat timeout', async () => {
    const targets = await peerTargets();
    const outcomes = await Promise.all(targets.map((t) => peerSession(t.address, helloFrame(), Buffer.from([0x64, 0x01, 0x02, 0x03]))));
    for (const out of outcomes) {
      expect(out.peerError).toBeNull();
      // Before the timeout it kept heartbeating.
      expect(out.frames.some((f) => f.body === 'heartbeat')).toBe(true);
    }
  });

  test('a peer that trickles a frame that never completes, and so never says Hello, gets PeerError 3', async () => {
    const targets = await peerTargets();
    const raws = await Promise.all(targets.map((t) => RawPeer.connect(t.address)));
    for (const raw of raws) raw.write(varint(4096));
    const trickle = setInterval(() => { for (const raw of raws) raw.write(Buffer.from([0x01])); }, 200);
    try {
      const outcomes = await Promise.all(raws.map((raw) => raw.outcome(10_000)));
      expect(outcomes.map((o, i) => ({ role: targets[i]!.role, code: o.peerError?.code ?? null })))
        .toEqual(targets.map((t) => ({ role: t.role, code: 3 })));
    } finally {
      clearInterval(trickle);
    }
  });

  test('a frame before Hello gets PeerError 3', async () => {
    await everyRole(3, () => [encodeFrame({ heartbeat: { nonce: 1 } })], /first frame on a link must be a Hello/);
  });

  test('a Hello without member id or role gets PeerError 3', async () => {
    await everyRole(3, () => [encodeFrame({ hello: { protocolVersion: PEER_PROTOCOL_VERSION } })]);
  });

  test('a Hello of another protocol version gets PeerError 4', async () => {
    await everyRole(4, () => [encodeFrame({ hello: { memberId: 'old', role: 'test', protocolVersion: PEER_PROTOCOL_VERSION + 41 } })], /protocol version/);
  });

  test('an empty frame after Hello (no body) gets PeerError 5', async () => {
    await everyRole(5, () => [helloFrame(), Buffer.from([0x00])], /without a body/);
  });

  test('a reply-type frame no role accepts from a dialer gets PeerError 10', async () => {
    await everyRole(10, () => [helloFrame(), encodeFrame({ publishAck: { correlation: 1 } })]);
  });

  test.each([
    ['gateway', { publish: { roomId: 1, payload: Buffer.from('x'), correlation: 1 } }, /only RoomDelivery/],
    ['broker', { deliveryAck: { deliveredCount: 5 } }, /does not accept/],
    ['router', { publish: { roomId: 1, correlation: 1 } }, /only MembershipUpdate/],
    ['proxy', { membership: { gatewayId: 'g', gatewayAddress: '127.0.0.1:1', gatewaySeq: 1 } }, /only Publish/],
  ])('a valid Hello, then a frame of the wrong type for a %s, gets PeerError 10', async (role, frame, message) => {
    const target = (await peerTargets()).find((t) => t.role === role)!;
    const out = await peerSession(target.address, helloFrame(), encodeFrame(frame));
    expect(out.peerError?.code).toBe(10);
    expect(out.peerError?.message).toMatch(message);
  });

  test('a router refuses a MembershipUpdate whose gateway address no one can dial', async () => {
    const router = (await peerTargets()).find((t) => t.role === 'router')!;
    for (const gatewayAddress of ['', 'no-port', 'host:0', 'host:99999']) {
      const out = await peerSession(router.address, helloFrame('gateway'), encodeFrame({
        membership: { gatewayId: 'gw-bogus', gatewayAddress, gatewaySeq: 1, rooms: [{ roomId: 3, vrooms: [{ vroom: 0, count: 1 }] }] },
      }), encodeFrame({ heartbeat: { nonce: 1 } }));
      expect({ gatewayAddress, code: out.peerError?.code }).toEqual({ gatewayAddress, code: 12 });
    }
  });

  test('a broker given a membership entry with an undialable gateway address, then a publish to that room, keeps running', async () => {
    // Room 4: partition 4 % P = 0, ordered by replica 4 % R = 0.
    const processes = await cluster.processes();
    const partitions = new Set(processes.filter((p) => p.role === 'broker').map((p) => p.partition)).size;
    const replicas = new Set(processes.filter((p) => p.role === 'broker').map((p) => p.replica)).size;
    const room = 4;
    const broker = processes.find((p) => p.role === 'broker' && p.partition === room % partitions && p.replica === room % replicas)!;
    const raw = await RawPeer.connect(broker.member!.address);
    raw.write(Buffer.concat([
      helloFrame('router'),
      encodeFrame({
        membership: { gatewayId: 'gw-bogus', gatewayAddress: 'nowhere:0', gatewaySeq: 1, rooms: [{ roomId: room, vrooms: [{ vroom: 0, count: 1 }] }] },
      }),
      encodeFrame({ publish: { messageId: Long.fromNumber(77, true), roomId: room, senderId: 1, payload: Buffer.from('x'), correlation: 5 } }),
    ]));
    // It refuses the entry with a PeerError (and so never opens a channel to it); it must not die.
    const out = await raw.outcome(10_000);
    expect(out.peerError?.code).toBe(12);
    expect(out.frames.some((f) => f.body === 'publishAck')).toBe(false);
    // It answers a request made after it handled all of that: it lived through it.
    expect((await fetch(`http://${broker.member!.httpAddress}/metrics`)).ok).toBe(true);
    expect(alive(broker.pid)).toBe(true);
    const now = (await cluster.processes()).find((p) => p.name === broker.name)!;
    expect({ pid: now.pid, restarts: now.restarts }).toEqual({ pid: broker.pid, restarts: 0 });
  });
});

describe('well-framed frames of every type, with random contents, from a peer', () => {
  test('no process dies (200 connections spread over every role)', async () => {
    const targets = await peerTargets();
    const pids = new Map((await cluster.processes()).map((p) => [p.name, p.pid]));
    const frames = fc.array(peerFrameArb.map((f) => encodeFrame(f as Parameters<typeof encodeFrame>[0])), { minLength: 1, maxLength: 4 });
    await fc.assert(fc.asyncProperty(fc.nat(targets.length - 1), fc.boolean(), frames, async (which, withHello, writes) => {
      const target = targets[which]!;
      const raw = await RawPeer.connect(target.address);
      raw.write(Buffer.concat([...(withHello ? [helloFrame()] : []), ...writes]));
      // Wait for its Hello (or the close), then a moment to answer or close; a link it keeps open is ours to close.
      await eventually(() => raw.frames.length > 0 || raw.isClosed, `an answer from ${target.name}`, 10_000);
      await eventually(() => raw.isClosed, 'a close', 50).catch(() => undefined);
      raw.destroy();
      if (raw.frames.length) expect(raw.frames[0]!.body).toBe(withHello ? 'hello' : 'error');
      expect(alive(pids.get(target.name)!)).toBe(true);
    }), { numRuns: 200, endOnFailure: true }); // no shrinking against live processes: report the first failure
    // Every process answers a request made after all of that: none died handling the last frames.
    for (const p of await cluster.processes()) {
      if (p.member?.httpAddress) expect({ name: p.name, ok: (await fetch(`http://${p.member.httpAddress}/metrics`)).ok }).toEqual({ name: p.name, ok: true });
    }
    const dead = [...pids].filter(([, pid]) => !alive(pid)).map(([name]) => name);
    expect(dead).toEqual([]);
  });
});

// -------------------------------------------------- everyone else is fine ----

describe('after all that abuse', () => {
  test('two users on the two gateways still chat, publishes through every proxy are delivered, and no process restarted', async () => {
    const [gw0, gw1] = cluster.ready.gateways;
    const alice = await ChatClient.connect(gw0!);
    const bob = await ChatClient.connect(gw1!);
    const got = { alice: [] as string[], bob: [] as string[] };
    alice.on('message', (d: Delivery) => got.alice.push(Buffer.from(d.payload).toString()));
    bob.on('message', (d: Delivery) => got.bob.push(Buffer.from(d.payload).toString()));
    const publishers: Publisher[] = [];
    try {
      await alice.login(501, 'alice');
      await bob.login(502, 'bob');
      // One room per broker partition, so every ordering broker is exercised.
      const rooms = [100, 101, 102, 103];
      for (const room of rooms) {
        await alice.join(room);
        await bob.join(room);
      }
      // A join is answered before the brokers hear of it (gateway -> router -> broker):
      // wait until each user's membership has reached the brokers of every room.
      for (const room of rooms) {
        for (const [from, to] of [[alice, 'bob'], [bob, 'alice']] as const) {
          const mark = `ready-${room}-${to}`;
          for (let attempt = 0; !got[to].includes(mark); attempt++) {
            if (attempt === 60) throw new Error(`membership of ${to} in room ${room} never reached its broker`);
            await from.send(room, Buffer.from(mark));
            await new Promise((r) => setTimeout(r, attempt === 0 ? 20 : 500));
          }
        }
      }
      got.alice.length = 0;
      got.bob.length = 0;
      for (const room of rooms) {
        await alice.send(room, Buffer.from(`alice->${room}`));
        await bob.send(room, Buffer.from(`bob->${room}`));
      }
      // And from a backend, through each proxy on its own.
      for (const [i, proxy] of cluster.ready.proxies.entries()) {
        const publisher = new Publisher({ proxies: [proxy], workerId: workerIdFor('client', 60 + i) });
        publishers.push(publisher);
        const result = await publisher.publish({ roomId: 100 + i, payload: Buffer.from(`backend-${i}`), senderId: 1 });
        expect(messageIdKey(result.messageId)).not.toBe('0');
      }
      const want = [...rooms.flatMap((r) => [`alice->${r}`, `bob->${r}`]), ...cluster.ready.proxies.map((_, i) => `backend-${i}`)].sort();
      const real = (list: string[]) => list.filter((m) => !m.startsWith('ready-')).sort();
      await eventually(() => real(got.alice).length >= want.length && real(got.bob).length >= want.length, 'every message at both users', 30_000)
        .catch(() => undefined); // the comparison below says what is missing
      expect(real(got.alice)).toEqual(want);
      expect(real(got.bob)).toEqual(want);
    } finally {
      for (const p of publishers) p.close();
      await alice.close();
      await bob.close();
    }

    expect(before.filter((p) => !alive(p.pid)).map((p) => p.name)).toEqual([]);
    const after = await cluster.processes();
    const restarted = after.filter((p) => {
      const was = before.find((b) => b.name === p.name);
      return !was || was.pid !== p.pid || p.restarts !== 0;
    }).map((p) => `${p.name} (restarts ${p.restarts})`);
    const logs = cluster.ready.logDir;
    expect({ restarted, logs }).toEqual({ restarted: [], logs });
    expect({ notReady: after.filter((p) => !p.member?.ready).map((p) => p.name), logs }).toEqual({ notReady: [], logs });
    // And each still says it is ready to its probe.
    for (const p of after) {
      const res = await fetch(`http://${p.member!.httpAddress}/readyz`);
      expect({ name: p.name, status: res.status }).toEqual({ name: p.name, status: 200 });
    }
  });
});
