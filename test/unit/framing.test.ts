// FrameDecoder: the varint-length-delimited framing of every peer link.
import { describe, expect, test } from '@jest/globals';
import { peer, Writer } from '../../workloads/protocol/index.js';
import { FrameDecoder, FrameError } from '../../workloads/transport/framing.js';
import { varint } from '../support/raw-peer.js';

const LIMIT = 1 << 20;

function frame(body: Uint8Array): Buffer {
  return Buffer.concat([varint(body.length), body]);
}

function bodies(): Buffer[] {
  return [
    Buffer.alloc(0),
    Buffer.from([1]),
    Buffer.from('hello, peer'),
    Buffer.alloc(127, 7), // the last length with a one-byte varint
    Buffer.alloc(128, 8), // the first with two
    Buffer.alloc(300, 9),
    Buffer.alloc(16_384, 10), // three-byte varint
  ];
}

/** The decoder's buffered tail, to check it stays bounded. */
function pendingBytes(decoder: FrameDecoder): number {
  return decoder.bufferedBytes;
}

describe('FrameDecoder', () => {
  test('one chunk holding many frames gives them all, in order', () => {
    const all = bodies();
    const decoder = new FrameDecoder(LIMIT);
    const frames = decoder.push(Buffer.concat(all.map(frame)));
    expect(frames.map((f) => Buffer.from(f))).toEqual(all);
    expect(pendingBytes(decoder)).toBe(0);
  });

  test('a stream split at every byte boundary gives the same frames', () => {
    const all = bodies().slice(0, 6);
    const stream = Buffer.concat(all.map(frame));
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder(LIMIT);
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      expect(frames.map((f) => Buffer.from(f))).toEqual(all);
      expect(pendingBytes(decoder)).toBe(0);
    }
  });

  test('a stream fed one byte at a time gives the same frames', () => {
    const all = bodies().slice(0, 6);
    const stream = Buffer.concat(all.map(frame));
    const decoder = new FrameDecoder(LIMIT);
    const frames: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) frames.push(...decoder.push(stream.subarray(i, i + 1)).map((f) => Buffer.from(f)));
    expect(frames).toEqual(all);
  });

  test('frames returned are not changed by later pushes', () => {
    const decoder = new FrameDecoder(LIMIT);
    const first = decoder.push(Buffer.concat([frame(Buffer.from('abc')), Buffer.from([5, 1, 2])]));
    expect(first.map((f) => f.toString())).toEqual(['abc']);
    const second = decoder.push(Buffer.from([3, 4, 5]));
    expect(second.map((f) => [...f])).toEqual([[1, 2, 3, 4, 5]]);
    expect(first[0]!.toString()).toBe('abc');
  });

  test('an incomplete frame is held, not returned, and completes later', () => {
    const decoder = new FrameDecoder(LIMIT);
    const body = Buffer.alloc(1000, 1);
    const wire = frame(body);
    expect(decoder.push(wire.subarray(0, 500))).toEqual([]);
    expect(pendingBytes(decoder)).toBe(500);
    const frames = decoder.push(wire.subarray(500));
    expect(frames).toHaveLength(1);
    expect(Buffer.from(frames[0]!)).toEqual(body);
  });

  test('a frame of exactly the limit is accepted; one byte more is FRAME_TOO_LARGE', () => {
    const limit = 1000;
    const ok = new FrameDecoder(limit).push(frame(Buffer.alloc(limit, 3)));
    expect(ok).toHaveLength(1);
    expect(ok[0]!.length).toBe(limit);
    const decoder = new FrameDecoder(limit);
    // Only the length is needed to refuse it: the body never has to arrive.
    expect(() => decoder.push(varint(limit + 1))).toThrow(FrameError);
    try {
      new FrameDecoder(limit).push(varint(limit + 1));
    } catch (err) {
      expect((err as FrameError).code).toBe('FRAME_TOO_LARGE');
      expect((err as FrameError).message).toMatch(/1001 bytes exceeds the limit of 1000/);
    }
  });

  test('the largest lengths a 5-byte varint holds are refused as too large, not overflowed', () => {
    for (const length of [2 ** 31, 2 ** 32 - 1, 2 ** 35 - 1]) {
      expect(() => new FrameDecoder(LIMIT).push(varint(length))).toThrow(/exceeds the limit/);
    }
  });

  test('a length varint that never ends is MALFORMED_LENGTH, even split across chunks', () => {
    const endless = Buffer.alloc(10, 0x80);
    let caught: unknown;
    try {
      new FrameDecoder(LIMIT).push(endless);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FrameError);
    expect((caught as FrameError).code).toBe('MALFORMED_LENGTH');

    const decoder = new FrameDecoder(LIMIT);
    for (let i = 0; i < 4; i++) expect(decoder.push(Buffer.from([0x80]))).toEqual([]);
    expect(() => decoder.push(Buffer.from([0x80]))).toThrow(/varint longer than 5 bytes/);
  });

  test('a split length varint waits for its end', () => {
    const body = Buffer.alloc(20_000, 4);
    const wire = frame(body); // three-byte length
    const decoder = new FrameDecoder(LIMIT);
    expect(decoder.push(wire.subarray(0, 1))).toEqual([]);
    expect(decoder.push(wire.subarray(1, 2))).toEqual([]);
    const frames = decoder.push(wire.subarray(2));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBe(20_000);
  });

  test('it never holds more than one frame bound plus a length prefix', () => {
    const limit = 4096;
    const decoder = new FrameDecoder(limit);
    const wire = Buffer.concat([frame(Buffer.alloc(limit, 1)), frame(Buffer.alloc(limit, 2)), frame(Buffer.alloc(10, 3))]);
    for (let i = 0; i < wire.length; i += 333) {
      decoder.push(wire.subarray(i, i + 333));
      expect(pendingBytes(decoder)).toBeLessThanOrEqual(limit + 5);
    }
    expect(pendingBytes(decoder)).toBe(0);
  });

  test('decodes what the transport writes: protobufjs delimited PeerFrames batched in one Writer', () => {
    const writer = Writer.create();
    peer.PeerFrame.encodeDelimited({ hello: { memberId: 'm-1', role: 'broker', protocolVersion: 1 } }, writer);
    peer.PeerFrame.encodeDelimited({ heartbeat: { nonce: 7 } }, writer);
    peer.PeerFrame.encodeDelimited({ publish: { roomId: 5, payload: Buffer.alloc(200, 1), correlation: 9 } }, writer);
    const frames = new FrameDecoder(LIMIT).push(Buffer.from(writer.finish()));
    const decoded = frames.map((f) => peer.PeerFrame.decode(f));
    expect(decoded.map((f) => f.body)).toEqual(['hello', 'heartbeat', 'publish']);
    expect(decoded[0]!.hello!.memberId).toBe('m-1');
    expect(decoded[1]!.heartbeat!.nonce).toBe(7);
    expect(decoded[2]!.publish!.payload!.length).toBe(200);
  });
});
