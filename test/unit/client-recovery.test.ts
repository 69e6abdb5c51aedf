// The client package's recovery logic against scripted gateways (real
// WebSocket servers that answer as the test says), where each case can be
// made to happen on cue: a jump in room_seq is fetched by resuming the room on
// the live connection; a Send answered UNAVAILABLE is resent with the same
// message_id; a gateway that stops answering Pings is left for the next one,
// where the client logs in again and resumes its room after the last
// room_seq it saw.
import { afterEach, describe, expect, test } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { client, decodeClientFrame, type ClientFrame } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { eventually } from '../support/cluster.js';

type Script = (frame: ClientFrame, ws: WebSocket) => void;

const servers: WebSocketServer[] = [];
const clients: ChatClient[] = [];

/** A gateway whose every received frame is logged and handed to script. */
async function gateway(script: Script): Promise<{ url: string; frames: ClientFrame[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const frames: ClientFrame[] = [];
  wss.on('connection', (ws) => ws.on('message', (data: Buffer) => {
    const frame = decodeClientFrame(data);
    frames.push(frame);
    script(frame, ws);
  }));
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, frames };
}

/** The promise's value, or an error naming what did not happen within 10 s (the bound only keeps a broken run short). */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), 10_000); });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

const ok = (ws: WebSocket, frame: ClientFrame, code = 0) => ws.send(client.ServerFrame.encode({ reply: { requestId: frame.requestId, code } }).finish());
const delivery = (ws: WebSocket, roomSeq: number, messageId: number) =>
  ws.send(client.ServerFrame.encode({ delivery: { roomId: 9, roomSeq, sequencerId: 1, messageId, senderId: 2, payload: Buffer.from(`m${roomSeq}`) } }).finish());

afterEach(async () => {
  for (const chat of clients.splice(0)) await chat.close();
  for (const wss of servers.splice(0)) {
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
});

/** A client logged in as user 1 and joined to room 9, recording the room_seq of each delivery and each gap. */
async function joinedWatching(url: string, options?: Parameters<typeof ChatClient.connect>[1]) {
  const chat = await ChatClient.connect(url, options);
  clients.push(chat);
  const got: number[] = [];
  const gaps: number[][] = [];
  chat.on('message', (d) => got.push(Number(d.roomSeq)));
  chat.on('gap', (roomId, afterSeq, seq) => gaps.push([roomId, afterSeq, seq]));
  await chat.login(1);
  await chat.join(9);
  return { chat, got, gaps };
}

describe('@groupchat/client recovers', () => {
  test('a jump in room_seq: it resumes the room after the last one it saw and gets the missing message once', async () => {
    const gw = await gateway((frame, ws) => {
      if (frame.body === 'join' && frame.join.resumeSequencerId === 1) {
        delivery(ws, 2, 102); // what the jump skipped
        delivery(ws, 3, 103); // and again what the client had: a resume is not deduplicated by the gateway
      }
      if (frame.body !== 'ping') ok(ws, frame);
    });
    const { chat, got, gaps } = await joinedWatching(gw.url);
    const [ws] = servers[0]!.clients;
    delivery(ws!, 1, 101);
    delivery(ws!, 3, 103);
    await eventually(() => got.length === 3, 'the missing message');
    expect(gaps).toEqual([[9, 1, 3]]);
    expect(got).toEqual([1, 3, 2]);
    const resume = gw.frames.find((f) => f.body === 'join' && f.join.resumeSequencerId === 1);
    expect(resume).toMatchObject({ join: { roomId: 9, resumeSequencerId: 1 } });
    expect(Number((resume as Extract<ClientFrame, { body: 'join' }>).join.resumeAfterSeq)).toBe(1);
    expect(chat.positions.get(9)).toEqual({ sequencerId: 1, roomSeq: 3 });
  });

  test('a hole filled within gapWaitMs (a critical message overtook) starts no resume; the next one still open does', async () => {
    const gw = await gateway((frame, ws) => {
      if (frame.body === 'join' && frame.join.resumeSequencerId === 1) delivery(ws, 4, 104);
      if (frame.body !== 'ping') ok(ws, frame);
    });
    const { got, gaps } = await joinedWatching(gw.url, { gapWaitMs: 300 });
    const [ws] = servers[0]!.clients;
    for (const seq of [1, 3, 2, 5]) delivery(ws!, seq, 100 + seq);
    await eventually(() => got.length === 5, 'the message after the second hole');
    expect(got).toEqual([1, 3, 2, 5, 4]);
    // One resume, for the hole after 3: the one after 1 was filled before it was due.
    expect(gaps).toEqual([[9, 3, 5]]);
    const resumes = gw.frames.filter((f) => f.body === 'join' && f.join.resumeSequencerId === 1);
    expect(resumes.map((f) => Number((f as Extract<ClientFrame, { body: 'join' }>).join.resumeAfterSeq))).toEqual([3]);
  });

  test('a Send answered UNAVAILABLE: resent with the same message_id, resolved once', async () => {
    let sends = 0;
    const gw = await gateway((frame, ws) => {
      if (frame.body === 'send') ok(ws, frame, ++sends === 1 ? client.ErrorCode.UNAVAILABLE : client.ErrorCode.OK);
      else ok(ws, frame);
    });
    const chat = await ChatClient.connect(gw.url, { reconnect: true });
    clients.push(chat);
    await chat.login(1);
    await chat.join(9);
    const id = await chat.send(9, Buffer.from('hello'));
    const sent = gw.frames.filter((f) => f.body === 'send').map((f) => (f as Extract<ClientFrame, { body: 'send' }>).send.messageId.toString());
    expect(sent).toEqual([id.toString(), id.toString()]);
    expect(id.isZero()).toBe(false);
  });

  test('a gateway that stops answering Pings: the next one, logged in again, the room resumed after the last room_seq', async () => {
    let answering = true;
    const first = await gateway((frame, ws) => {
      if (frame.body === 'ping') {
        if (answering) ws.send(client.ServerFrame.encode({ pong: { clientTimeMs: frame.ping.clientTimeMs } }).finish());
      } else {
        ok(ws, frame);
      }
    });
    const second = await gateway((frame, ws) => {
      if (frame.body === 'ping') ws.send(client.ServerFrame.encode({ pong: { clientTimeMs: frame.ping.clientTimeMs } }).finish());
      else ok(ws, frame);
    });
    const chat = await ChatClient.connect([first.url, second.url], { reconnect: true, keepAliveMs: 100, maxBackoffMs: 100 });
    clients.push(chat);
    const reconnected = new Promise<string>((resolve) => chat.once('reconnected', resolve));
    await chat.login(5, 'ada');
    await chat.join(9);
    delivery([...servers[0]!.clients][0]!, 41, 141);
    await eventually(() => chat.positions.get(9)?.roomSeq === 41, 'the delivery');
    answering = false; // the first gateway goes silent, its connection stays open
    expect(await within(reconnected, 'the client to leave the silent gateway')).toBe(second.url);
    const replayed = second.frames.filter((f) => f.body !== 'ping');
    expect(replayed.map((f) => f.body)).toEqual(['login', 'join']);
    expect(replayed[0]).toMatchObject({ login: { userId: 5, displayName: 'ada' } });
    const join = (replayed[1] as Extract<ClientFrame, { body: 'join' }>).join;
    expect([join.roomId, Number(join.resumeAfterSeq), join.resumeSequencerId]).toEqual([9, 41, 1]);
  });
});
