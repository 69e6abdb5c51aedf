// A load worker of `groupchat bench`, forked by the coordinator so that the
// driver is not one event loop: it holds a share of the users (real WebSocket
// clients of groupchat's gateways, socket.io-client clients of Socket.IO, or
// Centrifugo's official JavaScript client), or it publishes (groupchat's
// Publisher SDK through proxies, Socket.IO emits with acks, or Centrifugo's
// server HTTP API), and it audits what its users received.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { Centrifuge } from 'centrifuge';
import { io, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';
import { Snowflake, workerIdFor } from '../ids/snowflake.js';
import { client, peer } from '../protocol/index.js';
import { PUBLISH_ACK_FRAME_TAG, scanFrame, ScannedFields } from '../protocol/wire-scan.js';
import { Publisher } from '../sdk/publisher.js';
import { PeerClient } from '../transport/peer-client.js';
import type { PeerLink } from '../transport/peer-link.js';
import {
  binaryPayload, encodeHistogram, expectedPerRoom, fillerText, messageSpace, newHistogram, nowUs, personalChannel, roomChannel, WARMUP,
  type AuditResult, type CentrifugoAccess, type DirectPlan, type FromWorker, type JsonPayload, type SystemName, type ToWorker, type UserSpec,
} from './common.js';

function post(message: FromWorker): void {
  process.send!(message);
}

/** Message numbers in arrival order for one (user, room). */
class U32List {
  data = new Uint32Array(16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): Uint32Array { return this.data.subarray(0, this.length); }
}

interface UserState {
  spec: UserSpec;
  received: Map<number, U32List>;
  warmed: Set<number>;
  close(): void;
}

const users: UserState[] = [];
const latency = newHistogram();
let delivered = 0;
let warmed = 0;
let connected = 0;
let failedConnects = 0;
let published = 0;
let acked = 0;
let lastDeliveryUs = 0;

function onDelivery(user: UserState, roomId: number, g: number, sentUs: number): void {
  if (g === WARMUP) {
    if (!user.warmed.has(roomId)) { user.warmed.add(roomId); warmed++; }
    return;
  }
  const now = nowUs();
  delivered++;
  lastDeliveryUs = now;
  latency.recordValue(Math.max(1, Math.round(now - sentUs)));
  let list = user.received.get(roomId);
  if (!list) user.received.set(roomId, (list = new U32List()));
  list.push(g);
}

// ---- users ----

/** A lean groupchat connection: the protocol of docs/protocol.md over `ws`, logged in, no SDK dedup (the audit counts duplicates). */
interface GroupchatConnection {
  request(body: Record<string, unknown>): Promise<void>;
  close(): void;
}

function openGroupchat(
  spec: UserSpec, localAddress: string | undefined, onFrame: (frame: ReturnType<typeof client.ServerFrame.decode>) => void,
): Promise<GroupchatConnection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(spec.url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    const pending = new Map<number, (code: number, message: string) => void>();
    let nextRequest = 1;
    const connection: GroupchatConnection = {
      request: (body) => new Promise<void>((ok, fail) => {
        const requestId = nextRequest++;
        pending.set(requestId, (code, message) => (code === 0 ? ok() : fail(new Error(`${client.ErrorCode[code]}: ${message}`))));
        ws.send(client.ClientFrame.encode({ requestId, ...body }).finish());
      }),
      close: () => ws.terminate(),
    };
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => {
      const frame = client.ServerFrame.decode(data);
      if (frame.reply) {
        const done = pending.get(frame.reply.requestId ?? 0);
        pending.delete(frame.reply.requestId ?? 0);
        done?.(frame.reply.code ?? 0, frame.reply.message ?? '');
      } else {
        onFrame(frame);
      }
    });
    ws.once('error', reject);
    ws.once('close', () => { for (const done of pending.values()) done(-1, 'closed'); pending.clear(); });
    ws.once('open', () => {
      connection.request({ login: { userId: spec.id, displayName: `u${spec.id}` } })
        .then(() => resolve(connection), (err: Error) => { ws.terminate(); reject(err); });
    });
  });
}

async function connectGroupchatUser(spec: UserSpec, localAddress: string | undefined): Promise<UserState> {
  const user: UserState = { spec, received: new Map(), warmed: new Set(), close: () => connection.close() };
  // A one-to-one recipient has one conversation: whatever reaches its inbox belongs to it.
  const conversation = spec.inbox ? spec.rooms[0]! : 0;
  const connection = await openGroupchat(spec, localAddress, (frame) => {
    const message = frame.delivery ?? (spec.inbox ? frame.inbox : null);
    if (!message) return;
    const payload = message.payload as Buffer;
    onDelivery(user, frame.delivery ? frame.delivery.roomId! : conversation, payload.readUInt32LE(0), payload.readDoubleLE(4));
  });
  try {
    if (!spec.inbox) for (const roomId of spec.rooms) await connection.request({ join: { roomId } });
  } catch (err) {
    connection.close();
    throw err;
  }
  return user;
}

function connectSocketIoUser(spec: UserSpec, localAddress: string | undefined): Promise<UserState> {
  return new Promise((resolve, reject) => {
    const socket: IoSocket = io(spec.url, {
      transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20_000,
      ...(localAddress ? { localAddress } : {}),
    } as Parameters<typeof io>[1]);
    const user: UserState = { spec, received: new Map(), warmed: new Set(), close: () => socket.disconnect() };
    socket.on('m', (room: number, msg: JsonPayload) => onDelivery(user, room, msg[0], msg[1]));
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () => {
      void (async () => {
        await socket.timeout(20_000).emitWithAck('login', spec.id);
        if (!spec.inbox) for (const room of spec.rooms) await socket.timeout(20_000).emitWithAck('join', room);
        resolve(user);
      })().catch((err: Error) => { socket.disconnect(); reject(err); });
    });
  });
}

/** A Centrifugo connection token: an HS256 JWT whose subject is the user (no expiry: it lives for one run). */
function connectionToken(userId: number, secret: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: String(userId) })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** `ws` as the client's WebSocket, bound to a local address (the connection storm spreads source addresses). */
function websocketFrom(localAddress: string | undefined) {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    }
  };
}

/**
 * A Centrifugo user: the official client over WebSocket (JSON protocol),
 * subscribed to its rooms' channels, or, for a one-to-one recipient, to its
 * personal channel, whose publications belong to its one conversation.
 */
async function connectCentrifugoUser(spec: UserSpec, localAddress: string | undefined, access: CentrifugoAccess): Promise<UserState> {
  const centrifuge = new Centrifuge(spec.url, {
    token: connectionToken(spec.id, access.tokenSecret), websocket: websocketFrom(localAddress), timeout: 20_000,
  });
  const user: UserState = { spec, received: new Map(), warmed: new Set(), close: () => centrifuge.disconnect() };
  const channels = spec.inbox ? [{ channel: personalChannel(spec.id), room: spec.rooms[0]! }] : spec.rooms.map((room) => ({ channel: roomChannel(room), room }));
  try {
    centrifuge.connect();
    await centrifuge.ready();
    for (const { channel, room } of channels) {
      const subscription = centrifuge.newSubscription(channel);
      subscription.on('publication', (ctx) => { const msg = ctx.data as JsonPayload; onDelivery(user, room, msg[0], msg[1]); });
      subscription.subscribe();
      await subscription.ready();
    }
  } catch (err) {
    centrifuge.disconnect();
    throw new Error(`centrifugo: ${(err as { message?: string }).message ?? JSON.stringify(err)}`);
  }
  return user;
}

async function connectUsers(cmd: Extract<ToWorker, { type: 'users' }>): Promise<void> {
  const connect = cmd.system === 'groupchat' ? connectGroupchatUser
    : cmd.system === 'socketio' ? connectSocketIoUser
    : (spec: UserSpec, local: string | undefined) => connectCentrifugoUser(spec, local, cmd.access!);
  const hist = newHistogram();
  const errors: string[] = [];
  let next = 0;
  const firstStartUs = nowUs();
  let lastDoneUs = firstStartUs;
  const lane = async () => {
    while (next < cmd.users.length) {
      const i = next++;
      const spec = cmd.users[i]!;
      const local = cmd.localAddresses.length ? cmd.localAddresses[i % cmd.localAddresses.length] : undefined;
      const started = nowUs();
      try {
        const user = await connect(spec, local);
        lastDoneUs = nowUs();
        hist.recordValue(Math.max(1, Math.round(lastDoneUs - started)));
        users.push(user);
        connected++;
      } catch (err) {
        failedConnects++;
        if (errors.length < 5) errors.push(`user ${spec.id}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.users.length) }, lane));
  post({ type: 'usersReady', connected, failedConnects, firstStartUs, lastDoneUs, connectHistogram: encodeHistogram(hist), errors });
}

// ---- publishers ----

interface Sender {
  ready(): Promise<void>;
  /** Sends message g and calls done(ok) once acknowledged or failed; false: not sent (no live link), wait for ready(). */
  send(g: number, roomId: number, done: (ok: boolean) => void): boolean;
  close(): void;
}

function groupchatSdkSender(targets: string[], worker: number, payloadBytes: number): Sender {
  const publisher = new Publisher({ proxies: targets, workerId: workerIdFor('client', 64 + worker), maxInFlight: 1 << 20, timeoutMs: 30_000 });
  const filler = Buffer.from(fillerText(payloadBytes));
  return {
    async ready() {
      const deadline = Date.now() + 20_000;
      while (publisher.connectedProxies < targets.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    },
    send(g, roomId, done) {
      publisher.publish({ roomId, payload: binaryPayload(g, nowUs(), payloadBytes, filler), senderId: 1 })
        .then(() => done(true), () => done(false));
      return true;
    },
    close: () => publisher.close(),
  };
}

/** Pipelined Publish frames straight on proxy links: what the proxy can ingest, without the SDK's per-message bookkeeping. */
function groupchatRawSender(targets: string[], worker: number, payloadBytes: number): Sender {
  const ids = new Snowflake(workerIdFor('client', 96 + worker));
  const filler = Buffer.from(fillerText(payloadBytes));
  const clients = targets.map((address) => new PeerClient(address, { memberId: `bench-${process.pid}-${worker}`, role: 'client' }));
  const waiting = new Map<number, (ok: boolean) => void>();
  let correlation = 1;
  let rotation = 0;
  const settle = (correlation: number, status: number) => {
    const done = waiting.get(correlation);
    if (!done) return;
    waiting.delete(correlation);
    done(status === peer.PublishStatus.DELIVERED);
  };
  const ack = new ScannedFields();
  for (const c of clients) {
    c.on('up', (link: PeerLink) => {
      link.rawFrames = (bytes) => scanFrame(bytes, PUBLISH_ACK_FRAME_TAG, ack) && (settle(ack.correlation, ack.status), true);
      link.on('frame', (frame) => { if (frame.body === 'publishAck') settle(frame.publishAck.correlation, frame.publishAck.status); });
    });
    c.on('down', () => { for (const done of waiting.values()) done(false); waiting.clear(); });
  }
  return {
    async ready() {
      const deadline = Date.now() + 20_000;
      while (clients.some((c) => !c.ready) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    },
    send(g, roomId, done) {
      const link = clients[rotation++ % clients.length]!.ready;
      if (!link) return false;
      const c = correlation++;
      waiting.set(c, done);
      link.send({ publish: { messageId: ids.next(), roomId, senderId: 1, payload: binaryPayload(g, nowUs(), payloadBytes, filler), sentAtMs: Date.now(), correlation: c } });
      return true;
    },
    close: () => { for (const c of clients) c.close(); },
  };
}

function socketIoSender(targets: string[], payloadBytes: number): Sender {
  const sockets = targets.map((url) => io(url, { transports: ['websocket'], forceNew: true, reconnection: true }));
  const text = fillerText(payloadBytes);
  let rotation = 0;
  return {
    async ready() {
      const deadline = Date.now() + 20_000;
      while (sockets.some((s) => !s.connected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    },
    send(g, roomId, done) {
      const socket = sockets[rotation++ % sockets.length]!;
      if (!socket.connected) return false;
      const msg: JsonPayload = [g, nowUs(), text];
      socket.timeout(30_000).emit('publish', roomId, msg, (err: Error | null) => done(!err));
      return true;
    },
    close: () => { for (const s of sockets) s.disconnect(); },
  };
}

/** An API error comes back as 200 with an "error" object instead of "result". */
function publishSucceeded(reply: string): boolean {
  try {
    return (JSON.parse(reply) as { result?: unknown }).result !== undefined;
  } catch {
    return false;
  }
}

/**
 * Centrifugo's publishers are a backend calling its server HTTP API: one
 * `publish` request per message over keep-alive connections, spread over both
 * nodes, acknowledged once the node has published into Redis. channelOf maps
 * the schedule's room to the channel it goes to.
 */
function centrifugoSender(targets: string[], payloadBytes: number, access: CentrifugoAccess, channelOf: (roomId: number) => string): Sender {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const text = fillerText(payloadBytes);
  const headers = { 'content-type': 'application/json', 'x-api-key': access.apiKey };
  const publishUrls = targets.map((api) => new URL(`${api}/publish`));
  let rotation = 0;
  return {
    ready: async () => {},
    send(g, roomId, done) {
      const body = JSON.stringify({ channel: channelOf(roomId), data: [g, nowUs(), text] satisfies JsonPayload });
      const request = http.request(publishUrls[rotation++ % publishUrls.length]!, { method: 'POST', agent, headers, timeout: 30_000 }, (response) => {
        let reply = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => { reply += chunk; });
        response.on('end', () => done(response.statusCode === 200 && publishSucceeded(reply)));
      });
      request.on('timeout', () => request.destroy(new Error('timed out')));
      request.on('error', () => done(false));
      request.end(body);
      return true;
    },
    close: () => agent.destroy(),
  };
}

/**
 * One-to-one: each conversation's sender is a user connection of its own
 * (groupchat: a Direct request, answered once stored; Socket.IO: an emit to the
 * recipient's own room, acked once emitted), or on Centrifugo the backend's
 * API publish into the recipient's personal channel. Conversation rooms[i] is
 * written by direct.senders[i] to direct.recipients[i].
 */
function directSender(system: SystemName, direct: DirectPlan, rooms: number[], payloadBytes: number, targets: string[], access: CentrifugoAccess | null): Sender {
  const byRoom = new Map(rooms.map((room, i) => [room, i]));
  if (system === 'centrifugo') return centrifugoSender(targets, payloadBytes, access!, (room) => personalChannel(direct.recipients[byRoom.get(room)!]!));
  const filler = Buffer.from(fillerText(payloadBytes));
  const text = fillerText(payloadBytes);
  const send: Array<(g: number, done: (ok: boolean) => void) => void> = [];
  const closers: Array<() => void> = [];
  const opening = (async () => {
    let next = 0;
    const lane = async () => {
      while (next < direct.senders.length) {
        const i = next++;
        const spec = direct.senders[i]!;
        const toUserId = direct.recipients[i]!;
        if (system === 'groupchat') {
          const connection = await openGroupchat(spec, undefined, () => {});
          closers.push(() => connection.close());
          send[i] = (g, done) => void connection.request({ direct: { toUserId, payload: binaryPayload(g, nowUs(), payloadBytes, filler) } })
            .then(() => done(true), () => done(false));
        } else {
          const socket: IoSocket = io(spec.url, { transports: ['websocket'], forceNew: true, reconnection: false });
          closers.push(() => socket.disconnect());
          await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject); });
          await socket.timeout(20_000).emitWithAck('login', spec.id);
          send[i] = (g, done) => socket.timeout(30_000).emit('direct', toUserId, rooms[i], [g, nowUs(), text] satisfies JsonPayload,
            (err: Error | null) => done(!err));
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, lane));
  })();
  return {
    ready: () => opening,
    send(g, roomId, done) {
      const i = byRoom.get(roomId);
      const sendOne = i === undefined ? undefined : send[i];
      if (!sendOne) return false;
      sendOne(g, done);
      return true;
    },
    close: () => { for (const close of closers) close(); },
  };
}

/** The direct senders stay connected from the warm-up to the end of publishing. */
let openDirect: Sender | null = null;

function makeSender(cmd: Extract<ToWorker, { type: 'publish' }> | (Extract<ToWorker, { type: 'warmup' }> & { worker: number; payloadBytes: number; raw: false })): Sender {
  if (cmd.direct) return (openDirect ??= directSender(cmd.system, cmd.direct, cmd.rooms, cmd.payloadBytes, cmd.targets, cmd.access));
  if (cmd.system === 'socketio') return socketIoSender(cmd.targets, cmd.payloadBytes);
  if (cmd.system === 'centrifugo') return centrifugoSender(cmd.targets, cmd.payloadBytes, cmd.access!, roomChannel);
  return cmd.raw ? groupchatRawSender(cmd.targets, cmd.worker, cmd.payloadBytes) : groupchatSdkSender(cmd.targets, cmd.worker, cmd.payloadBytes);
}

const tick = () => new Promise<void>((r) => setImmediate(r));

async function publish(cmd: Extract<ToWorker, { type: 'publish' }>): Promise<void> {
  const sender = makeSender(cmd);
  await sender.ready();
  const acks = newHistogram();
  const failed: number[] = [];
  const errors: string[] = [];
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const startUs = nowUs();
  const endBy = startUs + cmd.durationMs * 1000;
  const perWorkerRate = cmd.rate ? cmd.rate / cmd.publishers : 0;
  let k = 0;
  let failuresSeen = 0;
  let linkWaits = 0;
  while (k < cmd.maxMessages) {
    const now = nowUs();
    if (now >= endBy) break;
    if (perWorkerRate && k >= ((now - startUs) / 1e6) * perWorkerRate) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    if (inFlight >= cmd.window) {
      await new Promise<void>((r) => { wake = r; });
      continue;
    }
    if (failed.length > failuresSeen) {
      // Failed publishes come back fast (no route): pause rather than spin through the schedule.
      failuresSeen = failed.length;
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const g = k * cmd.publishers + cmd.worker;
    const sentUs = now;
    const sent = sender.send(g, cmd.rooms[g % cmd.rooms.length]!, (ok) => {
      inFlight--;
      if (ok) { acked++; acks.recordValue(Math.max(1, Math.round(nowUs() - sentUs))); } else failed.push(g);
      if (wake) { const w = wake; wake = null; w(); }
    });
    if (!sent) {
      linkWaits++;
      await sender.ready();
      continue;
    }
    inFlight++;
    published++;
    k++;
    if ((k & 63) === 0) await tick();
  }
  const publishEndUs = nowUs();
  // Every message is acknowledged or failed before the count is final (bounded by the senders' timeouts).
  const drainBy = Date.now() + 35_000;
  while (inFlight > 0 && Date.now() < drainBy) await new Promise((r) => setTimeout(r, 10));
  if (inFlight > 0) errors.push(`${inFlight} publishes still unacknowledged after 35 s`);
  if (linkWaits) errors.push(`publisher ${cmd.worker} waited ${linkWaits} times for a link to come back up`);
  if (failed.length) errors.push(`publisher ${cmd.worker}: ${failed.length} publishes failed (not acknowledged as delivered)`);
  sender.close();
  openDirect = null;
  post({ type: 'published', worker: cmd.worker, count: k, failed, startUs, endUs: publishEndUs, ackHistogram: encodeHistogram(acks), errors });
}

async function warmup(cmd: Extract<ToWorker, { type: 'warmup' }>): Promise<void> {
  const sender = makeSender({ ...cmd, worker: 31, payloadBytes: 64, raw: false });
  await sender.ready();
  await Promise.all(cmd.rooms.map((roomId) => new Promise<void>((resolve) => { if (!sender.send(WARMUP, roomId, () => resolve())) resolve(); })));
  if (!cmd.direct) sender.close();
}

// ---- audit ----

function audit(refs: Map<number, Uint32Array>, summary: Extract<ToWorker, { type: 'audit' }>['summary']): AuditResult {
  const expected = expectedPerRoom(summary);
  const space = messageSpace(summary);
  const failed = new Set(summary.failed);
  const R = summary.rooms.length;
  const isExpected = (g: number, room: number) => {
    if (g >= space) return false;
    const w = g % summary.publishers;
    const k = (g - w) / summary.publishers;
    return k < summary.counts[w]! && summary.rooms[g % R] === room && !failed.has(g);
  };
  const marks = new Uint8Array(space + 1);
  const position = new Int32Array(space + 1).fill(-1);
  const result: AuditResult = { delivered: 0, uniqueExpected: 0, lost: 0, duplicated: 0, reordered: 0, unexpected: 0, pairsWithLoss: 0, lostSample: [] };
  // Group (user, room) pairs by room so each room's reference order is laid out once.
  const byRoom = new Map<number, UserState[]>();
  for (const user of users) for (const room of user.spec.rooms) {
    let list = byRoom.get(room);
    if (!list) byRoom.set(room, (list = []));
    list.push(user);
  }
  for (const [room, members] of byRoom) {
    const ref = refs.get(room);
    if (ref) ref.forEach((g, i) => { if (g < space && position[g] === -1) position[g] = i; });
    for (const user of members) {
      const got = user.received.get(room)?.view() ?? new Uint32Array(0);
      let expectedGot = 0;
      let last = -1;
      for (const g of got) {
        result.delivered++;
        const slot = g < space ? g : space;
        if (marks[slot]) { result.duplicated++; continue; }
        marks[slot] = 1;
        if (isExpected(g, room)) expectedGot++; else result.unexpected++;
        if (ref && g < space) {
          const at = position[g]!;
          if (at !== -1) {
            if (at < last) result.reordered++;
            last = Math.max(last, at);
          }
        }
      }
      if (expectedGot < (expected.get(room) ?? 0)) {
        result.pairsWithLoss++;
        for (let g = 0; g < space && result.lostSample.length < 10; g++) if (!marks[g] && isExpected(g, room)) result.lostSample.push(g);
      }
      for (const g of got) marks[g < space ? g : space] = 0;
      result.uniqueExpected += expectedGot;
      result.lost += Math.max(0, (expected.get(room) ?? 0) - expectedGot);
    }
    if (ref) for (const g of ref) if (g < space) position[g] = -1;
  }
  return result;
}

// ---- the command loop ----

const progress = setInterval(() => post({ type: 'progress', connected, failedConnects, delivered, warmed, published, acked, lastDeliveryUs }), 200);

process.on('message', (cmd: ToWorker) => {
  const run = async () => {
    switch (cmd.type) {
      case 'users': return connectUsers(cmd);
      case 'warmup': return warmup(cmd);
      case 'publish': return publish(cmd);
      case 'refs': {
        const byId = new Map(users.map((u) => [u.spec.id, u]));
        const refs: Array<[number, Uint32Array]> = cmd.rooms.map(({ room, user }) =>
          [room, byId.get(user)?.received.get(room)?.view().slice() ?? new Uint32Array(0)]);
        return post({ type: 'refs', refs });
      }
      case 'audit': {
        const result = audit(new Map(cmd.refs), cmd.summary);
        return post({ type: 'audited', result, histogram: encodeHistogram(latency), lastDeliveryUs });
      }
      case 'closeUsers':
        for (const user of users) user.close();
        users.length = 0;
        return post({ type: 'closed' });
      case 'exit':
        clearInterval(progress);
        process.exit(0);
    }
  };
  run().catch((err: Error) => post({ type: 'error', message: `${cmd.type}: ${err.stack ?? err.message}` }));
});
process.on('disconnect', () => process.exit(0));
