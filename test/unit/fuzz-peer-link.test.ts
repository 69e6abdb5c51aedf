// A PeerLink over a real TCP socket pair, fed arbitrary byte streams by a
// hand-driven peer: it must emit exactly the frames a correct reading of the
// stream gives, answer bad input with a PeerError before closing, close
// exactly once, and leave the process serving new links.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { decodePeerFrame, peer, PEER_PROTOCOL_VERSION, type PeerFrame, type PeerFrameInit } from '../../workloads/protocol/index.js';
import { FrameDecoder } from '../../workloads/transport/framing.js';
import { PeerLink, type LinkOptions } from '../../workloads/transport/peer-link.js';
import { modelFraming, mutate, mutation, peerFrameArb } from '../support/arbitraries.js';

const OPTIONS: LinkOptions = { maxFrameBytes: 2048, highWaterBytes: 1 << 20, maxQueuedBytes: 8 << 20, heartbeatMs: 100, timeoutMs: 2000 };
const RUNS = 400;

let server: net.Server;
let port: number;
const accepted: net.Socket[] = [];
const waiting: Array<(s: net.Socket) => void> = [];

beforeAll(async () => {
  server = net.createServer((socket) => {
    const waiter = waiting.shift();
    if (waiter) waiter(socket);
    else accepted.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function nextAccepted(): Promise<net.Socket> {
  const socket = accepted.shift();
  if (socket) return Promise.resolve(socket);
  return new Promise((resolve) => waiting.push(resolve));
}

/** What a correct link does with a whole stream: the frames it passes on, and how it ends. */
function expected(stream: Uint8Array): { emitted: string[]; code: number | null; framingError: boolean; closesSilently: boolean } {
  const framing = modelFraming(stream, OPTIONS.maxFrameBytes);
  const emitted: string[] = [];
  let helloSeen = false;
  for (const bytes of framing.frames) {
    let frame: PeerFrame;
    try {
      frame = decodePeerFrame(bytes);
    } catch {
      return { emitted, code: 2, framingError: framing.error !== null, closesSilently: false };
    }
    if (!helloSeen) {
      if (frame.body !== 'hello' || !frame.hello.memberId || !frame.hello.role) return { emitted, code: 3, framingError: framing.error !== null, closesSilently: false };
      if (frame.hello.protocolVersion !== PEER_PROTOCOL_VERSION) return { emitted, code: 4, framingError: framing.error !== null, closesSilently: false };
      helloSeen = true;
      continue;
    }
    if (frame.body === 'heartbeat') continue;
    if (frame.body === 'error') return { emitted, code: null, framingError: framing.error !== null, closesSilently: true };
    if (frame.body === undefined) return { emitted, code: 5, framingError: framing.error !== null, closesSilently: false };
    emitted.push(frame.body);
  }
  return { emitted, code: framing.error ? 1 : null, framingError: framing.error !== null, closesSilently: false };
}

interface RunResult {
  emitted: string[];
  closes: number;
  received: PeerFrame[];
  clientError: Error | null;
}

/** Writes the pieces from a raw client (a turn apart), half-closes, and waits for both ends to close. */
async function drive(pieces: Uint8Array[]): Promise<RunResult> {
  const clientSocket = net.connect({ host: '127.0.0.1', port });
  const serverSocket = await nextAccepted();
  const link = new PeerLink(serverSocket, { memberId: 'fuzz-server', role: 'fuzz' }, OPTIONS);
  const result: RunResult = { emitted: [], closes: 0, received: [], clientError: null };
  link.on('frame', (f) => result.emitted.push(f.body ?? 'undefined'));
  const linkClosed = new Promise<void>((resolve) => link.on('close', () => { result.closes++; resolve(); }));
  const decoder = new FrameDecoder(1 << 20);
  clientSocket.on('data', (chunk: Buffer) => {
    for (const bytes of decoder.push(chunk)) result.received.push(decodePeerFrame(bytes));
  });
  clientSocket.on('error', (err) => { result.clientError = err; });
  const clientClosed = new Promise<void>((resolve) => clientSocket.once('close', () => resolve()));
  await new Promise<void>((resolve) => clientSocket.once('connect', () => resolve()));
  for (const piece of pieces) {
    if (clientSocket.destroyed || clientSocket.writableEnded) break;
    clientSocket.write(piece);
    await new Promise((r) => setImmediate(r));
  }
  if (!clientSocket.destroyed) clientSocket.end();
  await Promise.all([linkClosed, clientClosed]);
  // Let any second 'close' show itself.
  await new Promise((r) => setImmediate(r));
  return result;
}

const hello = (version = PEER_PROTOCOL_VERSION): PeerFrameInit => ({ hello: { memberId: 'fuzz-client', role: 'fuzz', protocolVersion: version } });
const delimited = (frame: PeerFrameInit | Record<string, unknown>) => peer.PeerFrame.encodeDelimited(frame as PeerFrameInit).finish();

/** Streams: a Hello (or not), then frames, raw garbage and damaged frames, cut into pieces. */
const streamArb = fc.tuple(
  fc.constantFrom('hello', 'hello', 'hello', 'none', 'old-version'),
  fc.array(fc.oneof(
    peerFrameArb.map(delimited),
    peerFrameArb.map(delimited),
    fc.uint8Array({ minLength: 1, maxLength: 40 }),
    fc.tuple(peerFrameArb.map(delimited), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, ms]) => mutate(b, ms)),
    fc.constant(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), // length varint too long
    fc.constant(Uint8Array.from([0x81, 0x20])), // 4097 > 2048
  ), { maxLength: 6 }),
  fc.array(fc.nat({ max: 600 }), { maxLength: 4 }),
).map(([start, parts, cuts]) => {
  const head = start === 'hello' ? [delimited(hello())] : start === 'old-version' ? [delimited(hello(PEER_PROTOCOL_VERSION + 1))] : [];
  const stream = Buffer.concat([...head, ...parts]);
  const points = [...new Set(cuts.map((c) => Math.min(c, stream.length)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, stream.length]) {
    if (p > at) pieces.push(stream.subarray(at, p));
    at = p;
  }
  return { stream, pieces };
});

describe('PeerLink on a real socket, fed arbitrary bytes', () => {
  test(`passes on exactly the valid frames, answers bad input with a PeerError, closes once (${RUNS} runs)`, async () => {
    await fc.assert(fc.asyncProperty(streamArb, async ({ stream, pieces }) => {
      const want = expected(stream);
      const got = await drive(pieces);
      expect(got.closes).toBe(1);
      // The server always speaks first with its Hello.
      expect(got.received[0]?.body).toBe('hello');
      const errors = got.received.filter((f) => f.body === 'error');
      const code = errors[0]?.body === 'error' ? errors[0].error.code : null;
      if (want.framingError) {
        // A bad length in the same read as earlier bad frames can be seen first.
        expect([want.code, 1]).toContain(code);
        expect(want.emitted.slice(0, got.emitted.length)).toEqual(got.emitted);
      } else {
        expect(code).toBe(want.code);
        expect(got.emitted).toEqual(want.emitted);
      }
      expect(errors.length).toBeLessThanOrEqual(1);
      if (code !== null) expect(got.received.at(-1)!.body).toBe('error'); // nothing after the error
    }), { numRuns: RUNS });
  });

  test('a link that got bad bytes does not stop the next link from working', async () => {
    await drive([Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
    const got = await drive([delimited(hello()), delimited({ publish: { roomId: 3 } }), delimited({ heartbeat: { nonce: 1 } }), delimited({ shareAck: {} })]);
    expect(got.emitted).toEqual(['publish', 'shareAck']);
    expect(got.received.some((f) => f.body === 'error')).toBe(false);
  });
});

describe('PeerLink error and silence cases', () => {
  async function open(options: LinkOptions = OPTIONS) {
    const clientSocket = net.connect({ host: '127.0.0.1', port });
    const serverSocket = await nextAccepted();
    const link = new PeerLink(serverSocket, { memberId: 'srv', role: 'fuzz' }, options);
    const received: PeerFrame[] = [];
    const decoder = new FrameDecoder(1 << 20);
    clientSocket.on('data', (chunk: Buffer) => { for (const b of decoder.push(chunk)) received.push(decodePeerFrame(b)); });
    clientSocket.on('error', () => undefined);
    const closed = new Promise<Error | undefined>((resolve) => link.once('close', resolve));
    const clientClosed = new Promise<void>((resolve) => clientSocket.once('close', () => resolve()));
    await new Promise<void>((resolve) => clientSocket.once('connect', () => resolve()));
    return { clientSocket, link, received, closed, clientClosed };
  }

  test('a truncated frame followed by silence is closed by the heartbeat timeout', async () => {
    const { clientSocket, closed, clientClosed, received } = await open({ ...OPTIONS, timeoutMs: 300, heartbeatMs: 50 });
    clientSocket.write(delimited(hello()));
    clientSocket.write(Uint8Array.from([100, 1, 2, 3])); // declares 100 bytes, sends 3
    const err = await closed;
    expect(err?.message).toMatch(/silent for \d+ ms/);
    await clientClosed;
    expect(received.filter((f) => f.body === 'heartbeat').length).toBeGreaterThan(0); // it was heartbeating meanwhile
  });

  test('a peer that never says Hello and sends nothing is closed by the timeout', async () => {
    const { closed } = await open({ ...OPTIONS, timeoutMs: 300, heartbeatMs: 50 });
    expect((await closed)?.message).toMatch(/silent/);
  });

  test('a peer that trickles a frame that never completes, before any Hello, is still closed', async () => {
    // Each byte resets a timer that only looks at bytes: a handshake deadline
    // must not be pushed back by a frame that never completes.
    const { clientSocket, closed, clientClosed, received } = await open({ ...OPTIONS, timeoutMs: 300, heartbeatMs: 50 });
    clientSocket.write(Uint8Array.from([0x80, 0x10])); // declares 2048 bytes
    const trickle = setInterval(() => { if (!clientSocket.destroyed) clientSocket.write(Uint8Array.from([0])); }, 100);
    try {
      const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 3000))]);
      expect(outcome).toBe('closed');
      await clientClosed;
      const error = received.find((f) => f.body === 'error');
      expect(error?.body === 'error' && error.error.code).toBe(3);
    } finally {
      clearInterval(trickle);
      clientSocket.destroy();
    }
  });

  test('a PeerError from the other side closes the link without an answer', async () => {
    const { clientSocket, closed, received, clientClosed } = await open();
    clientSocket.write(Buffer.concat([delimited(hello()), delimited({ error: { code: 9, message: 'bye' } })]));
    expect((await closed)?.message).toMatch(/reported error 9: bye/);
    await clientClosed;
    expect(received.some((f) => f.body === 'error')).toBe(false);
  });

  test('a large burst of garbage still gets its PeerError before the close', async () => {
    // More than one socket read: the rest is still unread when the link fails.
    const { clientSocket, closed, received, clientClosed } = await open();
    const garbage = Buffer.concat([Buffer.from([0x04, 0xff, 0xff, 0xff, 0xff]), Buffer.alloc(4 << 20, 0x01)]);
    clientSocket.write(garbage);
    await closed;
    await clientClosed;
    expect(received.map((f) => f.body)).toEqual(['hello', 'error']);
  });
});
