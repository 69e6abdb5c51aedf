// Gateway: holds users' WebSocket connections. Users log in, join and leave
// rooms and send; the gateway reports room counts to routers, publishes users'
// messages through proxies, and delivers brokers' RoomDeliveries to the
// members it holds, each message id at most once (per virtual room). One-to-one
// messages and inboxes go through the relays; a member rejoining a room with
// its last sequence first gets what it missed, then live messages.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { RecentIds } from '../collections/recent-ids.js';
import { workerIdFor } from '../ids/snowflake.js';
import { metrics } from '../observability/http.js';
import { HotCounter } from '../observability/hot-metrics.js';
import {
  ALL_VROOMS, client, decodeClientFrame, isZeroId, Long, maskHas, maskIsEmpty, maskWithout, messageIdKey,
  type ClientFrame, type RoomDelivery,
} from '../protocol/index.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { Publisher } from '../sdk/publisher.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerServer } from '../transport/peer-server.js';
import { LocalRooms } from './local-rooms.js';
import { MembershipReporter } from './membership-reporter.js';
import { LatencyProbe, probeRoomOf } from './latency-probe.js';
import { RelayChannel, RelayError, type InboxPush } from './relay-channel.js';
import { binaryFrame } from './websocket-frame.js';
import { CatchUp } from './catch-up.js';
import { onReturn } from '../registry/departures.js';
import { AuthError, loadKey, mayJoin, verifyLogin, type LoginClaims } from '../auth/tokens.js';
import { limitFrom, TokenBuckets } from '../limits/token-bucket.js';
import { PublishError } from '../sdk/publisher.js';
import { answerHistory, answerRoomHeads, type RoomReadsDeps } from './room-reads.js';
import { peer, toNumber, vroomOf } from '../protocol/index.js';

export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** A ClientFrame is a payload plus a few dozen bytes of fields. */
export const MAX_CLIENT_FRAME_BYTES = MAX_PAYLOAD_BYTES + 1024;
/** Frames above this are cut off by the WebSocket layer itself (close 1009). */
const WS_MAX_PAYLOAD = 1 << 20;
/** A connection whose unsent bytes pass this is closed as OVERLOADED. */
const MAX_BUFFERED_BYTES = 8 << 20;
const DEDUP_ENTRIES = 100_000;
const MAX_DISPLAY_NAME = 64;
const MAX_ROOMS_PER_SESSION = 1000;
/** Frames held behind a pending Login before the gateway stops reading the connection. */
const EARLY_FRAMES_BEFORE_PAUSE = 64;
/** A busy gateway writes each connection at most once per this many milliseconds. */
const COALESCE_MS = 1;
/** The synthetic user's id in its probe room (no real user logs in as it: ids are > 0 and this one has no socket). */
const PROBE_USER_ID = 0xffffffff;

const ErrorCode = client.ErrorCode;

/** A ServerFrame as a WebSocket frame, ready for any number of sockets. */
function framed(frame: Parameters<typeof client.ServerFrame.encode>[0]): Buffer {
  return binaryFrame(client.ServerFrame.encode(frame).finish());
}

function toDelivery(d: RoomDelivery) {
  return {
    roomId: d.roomId, messageId: d.messageId, senderId: d.senderId, roomSeq: d.roomSeq,
    sequencerId: d.sequencerId, payload: d.payload, sentAtMs: d.sentAtMs,
  };
}

function encodeDelivery(d: RoomDelivery): Buffer {
  return framed({ delivery: toDelivery(d) });
}

/** ws keeps its net.Socket in `_socket`: the gateway writes its pre-framed frames there. */
function socketOf(ws: WebSocket): { write(data: Buffer): boolean; writableLength: number } {
  return (ws as unknown as { _socket: { write(data: Buffer): boolean; writableLength: number } })._socket;
}

function relayErrorCode(err: Error): number {
  if (!(err instanceof RelayError)) return ErrorCode.UNAVAILABLE;
  if (err.status === peer.StoreStatus.OUT_OF_RANGE) return ErrorCode.CURSOR_OUT_OF_RANGE;
  if (err.status === peer.StoreStatus.INVALID) return ErrorCode.INVALID_ARGUMENT;
  return ErrorCode.UNAVAILABLE;
}
const connections = new Gauge({ name: 'groupchat_gateway_connections', help: 'Open user connections', registers: [metrics] });
const delivered = new HotCounter({ name: 'groupchat_gateway_delivered_total', help: 'Messages written to user connections' }).cell();
const duplicates = new HotCounter({ name: 'groupchat_gateway_duplicate_total', help: 'RoomDeliveries dropped as already delivered' }).cell();
const authFailures = new Counter({ name: 'groupchat_gateway_login_refused_total', help: 'Logins refused for a missing, forged or expired token', registers: [metrics] });
const protocolErrors = new Counter({ name: 'groupchat_gateway_protocol_errors_total', help: 'Connections closed for protocol violations', labelNames: ['code'], registers: [metrics] });

class Session {
  displayName = '';
  loggingIn = false;
  /** Frames that arrived while the login was being verified, handled after it. */
  readonly early: ClientFrame[] = [];
  claims: LoginClaims | null = null;
  readonly rooms = new Set<number>();
  /** Frames of this event-loop turn, written together at its end. */
  readonly outbox: Buffer[] = [];
  /** Last inbox position delivered on this connection. */
  inboxPosition = 0;
  /** Rooms being resumed: live deliveries wait here until the missed ones are sent. */
  readonly resuming = new Map<number, Array<{ key: string; frame: Buffer }>>();
  constructor(readonly ws: WebSocket, public userId = 0) {}
  get loggedIn(): boolean { return this.userId !== 0; }
}

export async function startGateway(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const rooms = new LocalRooms<Session>();
  const peerServer = new PeerServer(ctx.self);
  const peerAddress = await peerServer.listen(config.port, config.host);
  const advertisedPeer = `${ctx.advertiseHost}:${peerAddress.split(':').pop()}`;
  const reporter = new MembershipReporter(ctx.memberId, advertisedPeer, rooms, registry, ctx.self);
  const proxyAddresses = () => registry.members().filter((m) => m.role === 'proxy' && m.ready).map((m) => m.address);
  const publisher = new Publisher({ proxies: proxyAddresses(), workerId: workerIdFor('gateway', ctx.ordinal), identity: ctx.self });
  registry.on('members', () => publisher.setProxies(proxyAddresses()));
  const relays = new RelayChannel(ctx.memberId, registry, ctx.self);
  // The synthetic user: a member of this gateway's probe room, publishing into it.
  const probe = new LatencyProbe(probeRoomOf(ctx.ordinal), publisher);
  rooms.join(probe.roomId, new Session(null as unknown as WebSocket, PROBE_USER_ID));
  const authKey = config.authKeyFile ? loadKey(config.authKeyFile) : null;
  const userLimitOf = () => limitFrom(registry.topology().limits?.userMessagesPerSecond, registry.topology().limits?.userBurst);
  const userLimits = new TokenBuckets<number>(userLimitOf());
  registry.on('topology', () => userLimits.setLimit(userLimitOf()));
  const sessionsByUser = new Map<number, Set<Session>>();
  // (sender, message id) → virtual rooms already delivered here
  const seen = new RecentIds<Long>(DEDUP_ENTRIES);

  // Every frame a connection gets in one event-loop turn leaves in one write
  // at the end of the turn. Nagle's rule at event-loop scale: a gateway that
  // flushed less than a millisecond ago is busy, so it waits out that
  // millisecond and a connection's frames of several turns share a write; an
  // idle one writes at once.
  const flushing: Session[] = [];
  let lastFlushAt = 0;
  const flushAll = () => {
    lastFlushAt = performance.now();
    for (const session of flushing.splice(0)) flush(session);
  };
  const flush = (session: Session) => {
    const frames = session.outbox;
    if (frames.length === 0) return;
    const ws = session.ws;
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    frames.length = 0;
    if (ws.readyState !== ws.OPEN) return;
    const socket = socketOf(ws);
    if (socket.writableLength > MAX_BUFFERED_BYTES) {
      fail(session, ErrorCode.OVERLOADED, `more than ${MAX_BUFFERED_BYTES} bytes unsent: the client is not reading`, 1008);
      return;
    }
    socket.write(data);
  };
  const send = (session: Session, frame: Buffer) => {
    if (session.outbox.length === 0) {
      if (flushing.length === 0) {
        if (performance.now() - lastFlushAt >= COALESCE_MS) setImmediate(flushAll);
        else setTimeout(flushAll, COALESCE_MS);
      }
      flushing.push(session);
    }
    session.outbox.push(frame);
  };
  const reply = (session: Session, requestId: number, code = ErrorCode.OK, message = '') =>
    send(session, framed({ reply: { requestId, code, message } }));
  const fail = (session: Session, code: number, message: string, closeCode: number) => {
    protocolErrors.inc({ code: ErrorCode[code] ?? String(code) });
    if (session.ws.readyState === session.ws.OPEN) {
      flush(session); // what was answered before the fault still goes out, in order
      session.ws.send(client.ServerFrame.encode({ error: { code, message } }).finish());
      session.ws.close(closeCode, message.slice(0, 120));
    }
  };

  const deliver = (delivery: RoomDelivery) => {
    const { senderId, messageId } = delivery;
    const mask = Long.fromBits(delivery.vroomMask.low, delivery.vroomMask.high, true);
    const before = seen.get(delivery.roomId, senderId, messageId.high, messageId.low);
    const fresh = before ? maskWithout(mask, before) : mask;
    if (maskIsEmpty(fresh)) { duplicates.count++; return; }
    seen.set(delivery.roomId, senderId, messageId.high, messageId.low,
      before ? Long.fromBits((before.low | fresh.low) >>> 0, (before.high | fresh.high) >>> 0, true) : fresh);
    if (probe.observe(delivery)) return;
    const members = rooms.sessions(delivery.roomId);
    if (!members) {
      // A broker still thinks we have members here: report the room again.
      rooms.dirty.add(delivery.roomId);
      reporter.schedule();
      return;
    }
    const frame = encodeDelivery(delivery);
    const everyone = fresh.equals(ALL_VROOMS);
    for (const session of members) {
      if (everyone || maskHas(fresh, vroomOf(session.userId))) {
        const held = session.resuming.size > 0 ? session.resuming.get(delivery.roomId) : undefined;
        if (held) held.push({ key: `${senderId}/${messageIdKey(messageId)}`, frame });
        else send(session, frame);
        delivered.count++;
      }
    }
  };

  const catchUp = new CatchUp(deliver, (roomId, sequencerId, afterSeq) => publisher.historySince(roomId, sequencerId, afterSeq),
    (roomId) => rooms.sessions(roomId) !== undefined, log);
  onReturn(registry, ctx.memberId, () => void catchUp.returned(), () => catchUp.left());
  const leaveRoom = (roomId: number, session: Session): boolean => {
    const changed = rooms.leave(roomId, session);
    if (changed && !rooms.sessions(roomId)) catchUp.forget(roomId);
    return changed;
  };

  /** Sends what a rejoining member missed, then the live messages held meanwhile. */
  const resume = async (session: Session, requestId: number, roomId: number, sequencerId: number, afterSeq: number) => {
    const held = session.resuming.get(roomId) ?? [];
    session.resuming.set(roomId, held);
    let complete = false;
    try {
      const answer = await publisher.historySince(roomId, sequencerId, afterSeq);
      if (answer.status === peer.PublishStatus.REJECTED) {
        for (const live of held) send(session, live.frame);
        return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `joined; resume_after_seq ${afterSeq} is beyond the room's head ${answer.headSeq.toString()}`);
      }
      complete = answer.complete && answer.status === peer.PublishStatus.DELIVERED;
      if (!complete) {
        log.warn({ room: roomId, afterSeq, status: peer.PublishStatus[answer.status], head: answer.headSeq.toString(), first: answer.firstSeq.toString(), got: answer.deliveries.length },
          'a resume could not read everything after its position');
      }
      const sent = new Set<string>();
      for (const missed of answer.deliveries) {
        sent.add(`${missed.senderId}/${messageIdKey(missed.messageId)}`);
        send(session, encodeDelivery(missed));
      }
      for (const live of held) if (!sent.has(live.key)) send(session, live.frame);
    } finally {
      session.resuming.delete(roomId);
    }
    if (complete) reply(session, requestId);
    else reply(session, requestId, ErrorCode.HISTORY_INCOMPLETE, 'joined; some missed messages are no longer kept (retention), or the room could not be read now');
  };

  const roomReads = (session: Session, requestId: number): RoomReadsDeps => ({
    history: (roomId, query) => publisher.history(roomId, query),
    heads: (roomIds) => publisher.heads(roomIds),
    partitions: () => registry.topology().roles.broker.partitions,
    mayRead: (roomId) => mayJoin(session.claims, roomId),
    send: (frame) => send(session, framed(frame)),
    reply: (code, message) => reply(session, requestId, code, message),
    toDelivery,
  });

  relays.on('inbox', (push: InboxPush) => {
    for (const session of sessionsByUser.get(push.userId) ?? []) {
      for (const item of push.items) {
        const position = toNumber(item.position);
        if (position <= session.inboxPosition) continue;
        session.inboxPosition = position;
        send(session, framed({
          inbox: { position, messageId: item.msgId, senderId: item.senderId, payload: item.payload, sentAtMs: item.sentAtMs },
        }));
      }
    }
  });

  peerServer.on('link', (link: PeerLink) => {
    let count = 0;
    let ackScheduled = false;
    link.on('frame', (frame) => {
      if (frame.body !== 'roomDelivery' || !frame.roomDelivery) {
        link.fail(10, `a gateway accepts only RoomDelivery frames, got ${frame.body}`);
        return;
      }
      catchUp.receive(frame.roomDelivery);
      count++;
      if (!ackScheduled) {
        ackScheduled = true;
        setImmediate(() => { ackScheduled = false; link.send({ deliveryAck: { deliveredCount: count } }); });
      }
    });
  });

  const handle = (session: Session, frame: ClientFrame): void => {
    const requestId = frame.requestId;
    if (session.loggingIn) {
      // Pipelined after a Login still being verified: keep the session's order. Past
      // the bound the gateway stops reading (TCP backpressure) rather than refusing,
      // so how the frames were split into reads changes nothing; the frames it had
      // already read when it paused are held as well.
      session.early.push(frame);
      if (session.early.length === EARLY_FRAMES_BEFORE_PAUSE) session.ws.pause();
      return;
    }
    switch (frame.body) {
      case 'ping':
        send(session, framed({ pong: { clientTimeMs: frame.ping!.clientTimeMs, serverTimeMs: Date.now() } }));
        return;
      case 'login': {
        const { userId, displayName, token } = frame.login;
        if (session.loggedIn || session.loggingIn) return reply(session, requestId, ErrorCode.ALREADY_LOGGED_IN, `already logged in as ${session.userId}`);
        if (userId === 0) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'user_id must be between 1 and 4294967295');
        if (displayName.length > MAX_DISPLAY_NAME) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `display_name longer than ${MAX_DISPLAY_NAME}`);
        session.loggingIn = true;
        const claims = authKey ? verifyLogin(token, authKey, userId) : Promise.resolve(null);
        claims.then((verified) => {
          session.loggingIn = false;
          if (session.ws.readyState !== session.ws.OPEN) return;
          session.userId = userId;
          session.displayName = displayName;
          session.claims = verified;
          let sessions = sessionsByUser.get(userId);
          if (!sessions) sessionsByUser.set(userId, (sessions = new Set()));
          sessions.add(session);
          relays.login(userId);
          reply(session, requestId);
        }, (err: Error) => {
          session.loggingIn = false;
          authFailures.inc();
          reply(session, requestId, ErrorCode.UNAUTHENTICATED, err instanceof AuthError ? err.message : 'login refused');
        }).finally(() => {
          for (const early of session.early.splice(0)) handle(session, early);
          if (!session.loggingIn && session.ws.isPaused) session.ws.resume();
        });
        return;
      }
      case 'join': case 'leave': case 'send': case 'direct': case 'ackInbox': case 'history': case 'roomHeads':
        if (!session.loggedIn) return reply(session, requestId, ErrorCode.NOT_LOGGED_IN, 'log in first');
        break;
      default:
        return fail(session, ErrorCode.MALFORMED_FRAME, 'ClientFrame without a known body', 1007);
    }
    if (frame.body === 'join') {
      const { roomId, resumeAfterSeq, resumeSequencerId } = frame.join;
      if (roomId === 0) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'room_id must be between 1 and 4294967295');
      if (!session.rooms.has(roomId) && session.rooms.size >= MAX_ROOMS_PER_SESSION) {
        return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `at most ${MAX_ROOMS_PER_SESSION} rooms per connection`);
      }
      if (!mayJoin(session.claims, roomId)) return reply(session, requestId, ErrorCode.FORBIDDEN, `the login token does not allow room ${roomId}`);
      session.rooms.add(roomId);
      // Hold live messages from now on, so the missed ones go out first.
      if (resumeSequencerId !== 0) session.resuming.set(roomId, session.resuming.get(roomId) ?? []);
      // Answer once the brokers know: every message sequenced after the OK reaches this member.
      const known = rooms.join(roomId, session) ? (reporter.schedule(), reporter.applied(roomId)) : Promise.resolve();
      void known.then(() => {
        if (resumeSequencerId !== 0) return resume(session, requestId, roomId, resumeSequencerId, toNumber(resumeAfterSeq));
        return reply(session, requestId);
      });
      return;
    }
    if (frame.body === 'history' || frame.body === 'roomHeads') {
      const deps = roomReads(session, requestId);
      const read = frame.body === 'history' ? answerHistory(deps, requestId, frame.history) : answerRoomHeads(deps, requestId, frame.roomHeads.roomIds);
      void read.catch((err: Error) => reply(session, requestId, ErrorCode.UNAVAILABLE, err.message));
      return;
    }
    if (frame.body === 'direct') {
      const { toUserId, messageId, payload } = frame.direct;
      if (toUserId === 0) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'to_user_id must be between 1 and 4294967295');
      if (payload.length > MAX_PAYLOAD_BYTES) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`);
      if (!userLimits.take(session.userId)) return reply(session, requestId, ErrorCode.RATE_LIMITED, 'over your message rate; retry later');
      const clientMessageId = isZeroId(messageId) ? publisher.newMessageId() : Long.fromValue(messageId);
      relays.direct(session.userId, toUserId, clientMessageId, payload).then(
        () => reply(session, requestId),
        (err: Error) => reply(session, requestId, relayErrorCode(err), err.message),
      );
      return;
    }
    if (frame.body === 'ackInbox') {
      relays.ackInbox(session.userId, toNumber(frame.ackInbox.position)).then(
        () => reply(session, requestId),
        (err: Error) => reply(session, requestId, relayErrorCode(err), err.message),
      );
      return;
    }
    if (frame.body === 'leave') {
      const { roomId } = frame.leave!;
      if (!session.rooms.delete(roomId)) return reply(session, requestId, ErrorCode.NOT_A_MEMBER, `not in room ${roomId}`);
      if (leaveRoom(roomId, session)) reporter.schedule();
      return reply(session, requestId);
    }
    const { roomId, messageId, payload } = frame.send!;
    if (!session.rooms.has(roomId)) return reply(session, requestId, ErrorCode.NOT_A_MEMBER, `join room ${roomId} before sending to it`);
    if (payload.length > MAX_PAYLOAD_BYTES) return reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`);
    if (!userLimits.take(session.userId)) return reply(session, requestId, ErrorCode.RATE_LIMITED, 'over your message rate; retry later');
    publisher
      .publish({ roomId, payload, senderId: session.userId, ...(isZeroId(messageId) ? {} : { messageId: Long.fromValue(messageId) }) })
      .then(() => reply(session, requestId), (err: Error) => reply(session, requestId,
        err instanceof PublishError && err.status === 'RATE_LIMITED' ? ErrorCode.RATE_LIMITED : ErrorCode.UNAVAILABLE, err.message));
  };

  const httpServer = http.createServer((_req, res) => { res.statusCode = 426; res.end('WebSocket only\n'); });
  const wss = new WebSocketServer({ server: httpServer, maxPayload: WS_MAX_PAYLOAD });
  wss.on('connection', (ws) => {
    const session = new Session(ws);
    connections.inc();
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return fail(session, ErrorCode.TEXT_FRAME, 'text frames are not spoken; send binary ClientFrames', 1003);
      if (data.length > MAX_CLIENT_FRAME_BYTES) {
        return fail(session, ErrorCode.FRAME_TOO_LARGE, `frame of ${data.length} bytes exceeds ${MAX_CLIENT_FRAME_BYTES}`, 1009);
      }
      let frame: ClientFrame;
      try {
        frame = decodeClientFrame(data);
      } catch (err) {
        return fail(session, ErrorCode.MALFORMED_FRAME, `not a ClientFrame: ${(err as Error).message}`, 1007);
      }
      handle(session, frame);
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      connections.dec();
      for (const roomId of session.rooms) leaveRoom(roomId, session);
      session.rooms.clear();
      reporter.schedule();
      if (session.loggedIn) {
        const sessions = sessionsByUser.get(session.userId);
        sessions?.delete(session);
        if (sessions?.size === 0) sessionsByUser.delete(session.userId);
        relays.logout(session.userId);
      }
    });
  });
  await new Promise<void>((resolve) => httpServer.listen(config.wsPort, config.host, resolve));
  const wsPort = (httpServer.address() as AddressInfo).port;
  const wsUrl = `ws://${ctx.advertiseHost}:${wsPort}/`;
  log.info({ peer: peerAddress, ws: wsUrl }, 'gateway listening');

  return {
    member: { address: advertisedPeer, wsUrl },
    isReady: () => reporter.connected && publisher.connectedProxies > 0
      && (!registry.topology().roles.relay || relays.connected),
    stop: async () => {
      for (const ws of wss.clients) ws.close(1001, 'gateway stopping');
      wss.close();
      httpServer.close();
      probe.close();
      reporter.close();
      publisher.close();
      relays.close();
      await peerServer.close();
    },
  };
}
