// Property-based fuzzing of every decoder that reads bytes or documents from
// outside the process: the peer framing, PeerFrame, ClientFrame, ServerFrame
// (the SDK's side) and the registry documents. Each runs at least 10,000
// cases; the only failure allowed is a clean Error the caller can catch.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { types } from 'node:util';
import { client, decodeClientFrame, decodePeerFrame, peer, Writer } from '../../workloads/protocol/index.js';
import { defaultTopology, MemberSchema, TopologySchema } from '../../workloads/registry/schema.js';
import { FrameDecoder, FrameError } from '../../workloads/transport/framing.js';
import { parseAddress } from '../../workloads/transport/peer-client.js';
import {
  bodiesOf, chunk, ClientFrameType, clientFrameArb, generatedBody, modelFraming, mutate, mutation, PeerFrameType, peerFrameArb,
  plain, ServerFrameType, serverFrameArb,
} from '../support/arbitraries.js';

/** Per decoder, as issue 7 asks. */
const RUNS = 10_000;
// From the .proto files, so new frame types are covered as they are added.
const PEER_BODIES = bodiesOf(PeerFrameType);
const CLIENT_BODIES = bodiesOf(ClientFrameType);
const SERVER_BODIES = bodiesOf(ServerFrameType);
type PeerInit = Parameters<typeof peer.PeerFrame.encode>[0];
type ClientInit = Parameters<typeof client.ClientFrame.encode>[0];
type ServerInit = Parameters<typeof client.ServerFrame.encode>[0];

/** Runs decode; returns the message, or null after checking that what it threw is a clean Error. */
function decodeOrCleanError<T>(decode: () => T): T | null {
  try {
    return decode();
  } catch (err) {
    // isNativeError: the error may come from another realm than the test's.
    if (!types.isNativeError(err)) throw new Error(`decoder threw a non-Error: ${String(err)}`);
    expect(typeof (err as Error).message).toBe('string');
    expect((err as Error).message.length).toBeGreaterThan(0);
    return null;
  }
}

/** What the roles rely on: a body names a known field, and that field is set. */
function expectConsistentBody(frame: Record<string, unknown> & { body?: unknown }, bodies: string[]): void {
  if (frame.body === undefined) return;
  expect(bodies).toContain(frame.body);
  expect(frame[frame.body as string]).not.toBeNull();
  expect(typeof frame[frame.body as string]).toBe('object');
  for (const other of bodies) if (other !== frame.body) expect(frame[other] ?? null).toBeNull();
}

/** Random bytes, and valid encodings damaged by a few byte-level mutations (which reach deeper). */
function hostile(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 256 }),
    fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([bytes, ms]) => mutate(bytes, ms)),
  );
}

describe('FrameDecoder fuzzing', () => {
  const limitArb = fc.oneof(fc.integer({ min: 0, max: 96 }), fc.constant(1 << 20));
  const streamArb = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // Mostly well-framed: frames, then possibly garbage.
    fc.tuple(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }), fc.uint8Array({ maxLength: 8 })).map(([frames, tail]) =>
      Buffer.concat([...frames.map((f) => Buffer.concat([lengthPrefix(f.length), f])), tail])),
  );

  test(`arbitrary bytes in arbitrary chunks: only FrameError is thrown, and chunking never changes the frames (${RUNS} runs)`, () => {
    fc.assert(fc.property(streamArb, limitArb, fc.array(fc.nat({ max: 320 }), { maxLength: 12 }), (stream, limit, cuts) => {
      const model = modelFraming(stream, limit);
      const decoder = new FrameDecoder(limit);
      const got: Buffer[] = [];
      let error: FrameError | null = null;
      for (const piece of chunk(stream, cuts)) {
        try {
          got.push(...decoder.push(piece).map((f) => Buffer.from(f)));
        } catch (err) {
          if (!(err instanceof FrameError)) throw new Error(`FrameDecoder threw ${String(err)}`);
          error = err;
          break;
        }
        const pending = (decoder as unknown as { pending: Buffer | null }).pending?.length ?? 0;
        expect(pending).toBeLessThanOrEqual(limit + 5);
      }
      expect(error?.code ?? null).toBe(model.error);
      if (model.error) {
        // Frames before the bad length in the same chunk are dropped with it: a prefix.
        expect(model.frames.slice(0, got.length)).toEqual(got);
      } else {
        expect(got).toEqual(model.frames);
      }
    }), { numRuns: RUNS });
  });

  test(`the same bytes pushed whole give the model's frames, or its error (${RUNS} runs)`, () => {
    fc.assert(fc.property(streamArb, limitArb, (stream, limit) => {
      const model = modelFraming(stream, limit);
      let frames: Buffer[] = [];
      let code: string | null = null;
      try {
        frames = new FrameDecoder(limit).push(Buffer.from(stream)).map((f) => Buffer.from(f));
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        code = err.code;
      }
      expect(code).toBe(model.error);
      if (!code) expect(frames).toEqual(model.frames);
    }), { numRuns: RUNS });
  });

  test(`generated PeerFrames batched as the transport writes them survive any chunking (${RUNS} runs)`, () => {
    fc.assert(fc.property(fc.array(peerFrameArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat({ max: 4000 }), { maxLength: 10 }), (frames, cuts) => {
      const writer = Writer.create();
      for (const f of frames) peer.PeerFrame.encodeDelimited(f as PeerInit, writer);
      const wire = writer.finish();
      const decoder = new FrameDecoder(1 << 20);
      const got = chunk(wire, cuts).flatMap((piece) => decoder.push(piece).map((b) => decodePeerFrame(b)));
      expect(got.map(plain)).toEqual(frames.map(plain));
      expect(got.map((f) => f.body)).toEqual(frames.map((f) => generatedBody(PeerFrameType, f)));
    }), { numRuns: RUNS });
  });
});

describe('PeerFrame decoding fuzzing', () => {
  const valid = peerFrameArb.map((f) => peer.PeerFrame.encode(f as PeerInit).finish());

  test(`arbitrary and damaged bytes: a frame with a consistent body, or a clean Error (${RUNS} runs)`, () => {
    fc.assert(fc.property(hostile(valid), (bytes) => {
      const frame = decodeOrCleanError(() => decodePeerFrame(bytes));
      if (!frame) return;
      expectConsistentBody(frame as unknown as Record<string, unknown>, PEER_BODIES);
      // What was decoded can be sent on, and reads back the same.
      const again = decodePeerFrame(peer.PeerFrame.encode(frame as PeerInit).finish());
      expect(plain(again)).toEqual(plain(frame));
      expect(again.body).toBe(frame.body);
    }), { numRuns: RUNS });
  });

  test(`encode then decode gives back every generated frame (${RUNS} runs)`, () => {
    fc.assert(fc.property(peerFrameArb, (frame) => {
      const decoded = decodePeerFrame(peer.PeerFrame.encode(frame as PeerInit).finish());
      expect(plain(decoded)).toEqual(plain(frame));
      expect(decoded.body).toBe(generatedBody(PeerFrameType, frame));
    }), { numRuns: RUNS });
  });

  test('bytes with two members of the oneof decode to the last alone (found by this fuzzing, seed -1737431412)', () => {
    // headsReply (field 29, empty), then error (field 3): protobuf's last member wins, and the first must not stay set.
    const bytes = Uint8Array.from([234, 1, 0, 26, 6, 8, 128, 128, 128, 128, 1]);
    const frame = decodePeerFrame(bytes) as unknown as Record<string, unknown>;
    expect(frame.body).toBe('error');
    expectConsistentBody(frame, PEER_BODIES);
  });

  test('pathological nesting is refused with an Error, not a stack overflow or a hang', () => {
    const cases = [
      Buffer.alloc(1 << 20, 0x4b), // unknown field 9, start-group, a million times deep
      Buffer.alloc(1 << 20, 0x0a), // field 1 length-delimited, nested lengths
      Buffer.concat(Array.from({ length: 200 }, () => Buffer.from([0xa2, 0x01, 0x80, 0x80, 0x04]))), // snapshot within snapshot, huge length
      Buffer.from([0xa2, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]), // a 4 GiB sub-message length
    ];
    for (const bytes of cases) expect(decodeOrCleanError(() => decodePeerFrame(bytes))).toBeNull();
  });
});

describe('ClientFrame decoding fuzzing (what a gateway reads from users)', () => {
  const valid = clientFrameArb.map((f) => client.ClientFrame.encode(f as ClientInit).finish());

  test(`arbitrary and damaged bytes: a frame with a consistent body, or a clean Error (${RUNS} runs)`, () => {
    fc.assert(fc.property(hostile(valid), (bytes) => {
      const frame = decodeOrCleanError(() => decodeClientFrame(bytes));
      if (!frame) return;
      expectConsistentBody(frame as unknown as Record<string, unknown>, CLIENT_BODIES);
      expect(Number.isInteger(frame.requestId) && frame.requestId >= 0 && frame.requestId <= 0xffffffff).toBe(true);
      const again = decodeClientFrame(client.ClientFrame.encode(frame as ClientInit).finish());
      expect(plain(again)).toEqual(plain(frame));
    }), { numRuns: RUNS });
  });

  test(`encode then decode gives back every generated frame (${RUNS} runs)`, () => {
    fc.assert(fc.property(clientFrameArb, (frame) => {
      const decoded = decodeClientFrame(client.ClientFrame.encode(frame as ClientInit).finish());
      expect(plain(decoded)).toEqual(plain(frame));
      expect(decoded.body).toBe(generatedBody(ClientFrameType, frame));
    }), { numRuns: RUNS });
  });
});

describe('ServerFrame decoding fuzzing (what the SDK reads from a gateway)', () => {
  const valid = serverFrameArb.map((f) => client.ServerFrame.encode(f as ServerInit).finish());

  test(`arbitrary and damaged bytes: a frame with a consistent body, or a clean Error (${RUNS} runs)`, () => {
    fc.assert(fc.property(hostile(valid), (bytes) => {
      const frame = decodeOrCleanError(() => client.ServerFrame.decode(bytes));
      if (!frame) return;
      expectConsistentBody(frame as unknown as Record<string, unknown>, SERVER_BODIES);
      const again = client.ServerFrame.decode(client.ServerFrame.encode(frame as ServerInit).finish());
      expect(plain(again)).toEqual(plain(frame));
    }), { numRuns: RUNS });
  });

  test(`encode then decode gives back every generated frame (${RUNS} runs)`, () => {
    fc.assert(fc.property(serverFrameArb, (frame) => {
      const decoded = client.ServerFrame.decode(client.ServerFrame.encode(frame as ServerInit).finish());
      expect(plain(decoded)).toEqual(plain(frame));
      expect(decoded.body).toBe(generatedBody(ServerFrameType, frame));
    }), { numRuns: RUNS });
  });
});

describe('registry document decoding fuzzing', () => {
  /** Mostly the valid value, sometimes anything: documents one field away from valid. */
  const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: fc.anything() });
  const nearMember = fc.record({
    id: mostly(fc.string({ minLength: 1, maxLength: 20 })),
    role: mostly(fc.constantFrom('proxy', 'broker', 'router', 'gateway', 'pi', 'xiu', 'relay')),
    partition: mostly(fc.nat({ max: 8 })),
    replica: mostly(fc.nat({ max: 8 })),
    address: mostly(fc.oneof(
      fc.tuple(fc.constantFrom('127.0.0.1', 'broker-0.svc', 'h'), fc.integer({ min: 0, max: 99_999 })).map(([h, p]) => `${h}:${p}`),
      fc.string(),
    )),
    httpAddress: mostly(fc.constantFrom('127.0.0.1:9000', 'x:0')),
    wsUrl: mostly(fc.oneof(fc.constant('ws://127.0.0.1:8081/'), fc.webUrl())),
    ready: mostly(fc.boolean()),
  }, { requiredKeys: ['id', 'role', 'partition', 'replica', 'address', 'ready'] });

  test(`MemberSchema: anything is parsed or refused, never thrown on (${RUNS} runs)`, () => {
    let accepted = 0;
    fc.assert(fc.property(fc.oneof({ weight: 1, arbitrary: fc.anything() }, { weight: 3, arbitrary: nearMember }), (input) => {
      const result = MemberSchema.safeParse(input);
      if (result.success) accepted++;
      if (result.success) {
        // What passes is what the roles dial: PeerClient must accept it, or
        // one bad registration would throw inside every role's members handler.
        expect(() => parseAddress(result.data.address)).not.toThrow();
        expect(['proxy', 'broker', 'router', 'gateway', 'pi', 'xiu', 'relay']).toContain(result.data.role);
      }
    }), { numRuns: RUNS });
    expect(accepted).toBeGreaterThan(RUNS / 50); // the generator does reach valid documents
  });

  test(`TopologySchema: anything is parsed or refused, never thrown on (${RUNS} runs)`, () => {
    const roleTopology = fc.record({ partitions: fc.oneof(fc.integer(), fc.anything()), replicas: fc.oneof(fc.integer({ min: -2, max: 20 }), fc.anything()) }, { requiredKeys: [] });
    const nearTopology = fc.record({
      epoch: fc.oneof(fc.integer(), fc.anything()),
      phase: fc.oneof(fc.constantFrom('Stable', 'Expanding', 'Switching', 'stable'), fc.anything()),
      roles: fc.oneof(fc.record({ broker: roleTopology, router: roleTopology }, { requiredKeys: [] }), fc.anything()),
      splitThreshold: fc.oneof(fc.integer(), fc.anything()),
    }, { requiredKeys: [] });
    fc.assert(fc.property(fc.oneof(fc.anything(), nearTopology, fc.constant(defaultTopology())), (input) => {
      const result = TopologySchema.safeParse(input);
      if (result.success) {
        expect(Number.isInteger(result.data.roles.broker.partitions) && result.data.roles.broker.partitions >= 1).toBe(true);
        expect(Number.isInteger(result.data.roles.router.replicas) && result.data.roles.router.replicas >= 1).toBe(true);
      }
    }), { numRuns: RUNS });
  });
});

function lengthPrefix(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v >>>= 7; }
  out.push(v);
  return Buffer.from(out);
}
