// binaryFrame against ws's own Receiver (the parser every ws client runs), at
// each of the three header sizes and their edges.
import { describe, expect, test } from '@jest/globals';
import { EventEmitter } from 'node:events';
import * as ws from 'ws';
import { binaryFrame } from '../../workloads/gateway/websocket-frame.js';

// ws exports its Receiver; @types/ws does not declare it.
type ReceiverLike = EventEmitter & { write(chunk: Buffer): void };
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => ReceiverLike };

function parse(frame: Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false, maxPayload: 1 << 20 });
    receiver.on('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }));
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

describe('binaryFrame', () => {
  test.each([0, 1, 125, 126, 127, 0xffff, 0x10000, 70_000])('a %i-byte body is one binary message to ws', async (size) => {
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 31 + 7) & 0xff;
    const { data, isBinary } = await parse(binaryFrame(body));
    expect(isBinary).toBe(true);
    expect(data.equals(body)).toBe(true);
  });
});
