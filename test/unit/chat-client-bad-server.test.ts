// The SDK's user client against a real WebSocket server that sends what is
// not a ServerFrame: the application gets a protocolError and a close, and
// its process is not brought down by an exception thrown inside ws.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { client } from '../../workloads/protocol/index.js';
import { ChatClient, type ChatError } from '../../workloads/sdk/chat-client.js';
import { mutate, mutation, serverFrameArb } from '../support/arbitraries.js';

let wss: WebSocketServer;
let url: string;
/** What the server sends to the next connection. */
let script: (ws: WebSocket) => void = () => undefined;

beforeAll(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  wss.on('connection', (ws) => script(ws));
});

afterAll(async () => {
  for (const ws of wss.clients) ws.terminate();
  await new Promise<void>((resolve) => wss.close(() => resolve()));
});

/**
 * The server answers the client's first request with these frames, then with
 * the Reply to it; so once that request settles, the client has handled them all.
 */
async function receive(frames: Uint8Array[]): Promise<{ errors: ChatError[]; closeCode: number | null }> {
  script = (ws) => ws.once('message', (data: Buffer) => {
    const request = client.ClientFrame.decode(data);
    for (const f of frames) ws.send(f);
    ws.send(client.ServerFrame.encode({ reply: { requestId: request.requestId } }).finish());
  });
  const chat = await ChatClient.connect(url);
  const errors: ChatError[] = [];
  let closeCode: number | null = null;
  chat.on('protocolError', (e) => errors.push(e));
  chat.on('close', (code) => { closeCode = code; });
  await chat.login(1).catch(() => undefined);
  await chat.close();
  return { errors, closeCode };
}

describe('ChatClient given bad bytes by its server', () => {
  test('garbage gets a MALFORMED_FRAME protocolError and a 1007 close', async () => {
    const { errors, closeCode } = await receive([Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
    expect(errors.map((e) => e.code)).toEqual(['MALFORMED_FRAME']);
    expect(closeCode).toBe(1007);
  });

  test('a truncated Delivery is refused the same way', async () => {
    const whole = client.ServerFrame.encode({ delivery: { roomId: 1, payload: Buffer.from('hello there') } }).finish();
    const { errors, closeCode } = await receive([whole.subarray(0, whole.length - 3)]);
    expect(errors.map((e) => e.code)).toEqual(['MALFORMED_FRAME']);
    expect(closeCode).toBe(1007);
  });

  test('an Error frame from the server is reported with its code', async () => {
    const { errors } = await receive([client.ServerFrame.encode({ error: { code: client.ErrorCode.OVERLOADED, message: 'slow' } }).finish()]);
    expect(errors.map((e) => e.message)).toEqual(['OVERLOADED: slow']);
  });

  test('damaged ServerFrames never throw out of the client (200 runs)', async () => {
    const damaged = fc.tuple(serverFrameArb.map((f) => client.ServerFrame.encode(f as Parameters<typeof client.ServerFrame.encode>[0]).finish()),
      fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, ms]) => mutate(b, ms));
    await fc.assert(fc.asyncProperty(fc.array(damaged, { minLength: 1, maxLength: 3 }), async (frames) => {
      const { errors, closeCode } = await receive(frames);
      // Either every frame decoded, or the first that did not was reported and closed the connection.
      const bad = frames.findIndex((f) => { try { client.ServerFrame.decode(f); return false; } catch { return true; } });
      if (bad >= 0) {
        expect(errors.some((e) => e.code === 'MALFORMED_FRAME')).toBe(true);
        expect(closeCode).toBe(1007);
      }
    }), { numRuns: 200 });
  });
});
