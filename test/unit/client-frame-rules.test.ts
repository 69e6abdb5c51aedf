// The rules decoding alone lets pass (workloads/protocol/client-frame-rules.ts):
// exactly one body per ClientFrame, and no uint32 field wider than 32 bits,
// wherever it sits (a scalar, a nested message's field, a packed repeated one).
import { describe, expect, test } from '@jest/globals';
import { client, decodeClientFrame } from '../../workloads/protocol/index.js';
import { varint } from '../support/raw-peer.js';

/** A length-delimited field: tag, length, bytes. */
const field = (number: number, bytes: Buffer) => Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
const uint = (number: number, value: number) => Buffer.concat([varint(number << 3), varint(value)]);

describe('decodeClientFrame refuses what protobuf would silently accept', () => {
  test('two bodies', () => {
    const two = Buffer.concat([client.ClientFrame.encode({ login: { userId: 1 } }).finish(), client.ClientFrame.encode({ leave: { roomId: 2 } }).finish()]);
    expect(() => decodeClientFrame(two)).toThrow('a ClientFrame holds exactly one body; this one holds login and leave');
  });

  test('a uint32 wider than 32 bits: request_id, a body field, a packed repeated field', () => {
    expect(() => decodeClientFrame(Buffer.concat([uint(1, 2 ** 40), field(14, Buffer.alloc(0))]))).toThrow('request_id is 1099511627776, wider than 32 bits');
    expect(() => decodeClientFrame(field(15, uint(1, 2 ** 32)))).toThrow('direct.to_user_id is 4294967296, wider than 32 bits');
    const packed = Buffer.concat([varint(1), varint(2 ** 33), varint(3)]);
    expect(() => decodeClientFrame(field(18, field(1, packed)))).toThrow('room_heads.room_ids holds 8589934592, wider than 32 bits');
  });

  test('the widest values each type allows decode as sent', () => {
    const frame = decodeClientFrame(client.ClientFrame.encode({
      requestId: 0xffffffff, roomHeads: { roomIds: [1, 0xffffffff] },
    }).finish());
    expect(frame.requestId).toBe(0xffffffff);
    expect(frame.body === 'roomHeads' && frame.roomHeads.roomIds).toEqual([1, 0xffffffff]);
    const join = decodeClientFrame(client.ClientFrame.encode({ join: { roomId: 0xffffffff, resumeAfterSeq: 2 ** 40, resumeSequencerId: 1 } }).finish());
    expect(join.body === 'join' && [join.join.roomId, join.join.resumeAfterSeq.toString()]).toEqual([0xffffffff, String(2 ** 40)]);
  });
});
