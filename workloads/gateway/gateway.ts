// Gateway: holds users' WebSocket connections. Users log in, join and leave
// rooms and send; the gateway reports room counts to routers, publishes users'
// messages through proxies, and delivers brokers' RoomDeliveries to the
// members it holds, each message id at most once (per virtual room). One-to-one
// messages and inboxes go through the relays; a member rejoining a room with
// its last sequence first gets what it missed, then live messages.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Counter, Gauge } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadKey, verifyLogin } from '../auth/tokens.js';
import { workerIdFor } from '../ids/snowflake.js';
import { limitFrom, TokenBuckets } from '../limits/token-bucket.js';
import { metrics } from '../observability/http.js';
import { client, decodeClientFrame, toNumber, type ClientFrame } from '../protocol/index.js';
import { onReturn } from '../registry/departures.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { Publisher } from '../sdk/publisher.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerServer } from '../transport/peer-server.js';
import { CatchUp } from './catch-up.js';
import { LatencyProbe, probeRoomOf } from './latency-probe.js';
import { LocalRooms, type Member } from './local-rooms.js';
import { MembershipReporter } from './membership-reporter.js';
import { Outboxes } from './outboxes.js';
import { RelayChannel, type InboxPush } from './relay-channel.js';
import { MAX_PAYLOAD_BYTES, Requests } from './requests.js';
import { RoomDeliveries } from './room-deliveries.js';
import { framed } from './server-frames.js';
import { Session, WsConnection } from './session.js';

export { MAX_PAYLOAD_BYTES };
/** A ClientFrame is a payload plus a few dozen bytes of fields. */
export const MAX_CLIENT_FRAME_BYTES = MAX_PAYLOAD_BYTES + 1024;
/** Frames above this are cut off by the WebSocket layer itself (close 1009). */
const WS_MAX_PAYLOAD = 1 << 20;
/** A connection whose unsent bytes pass this is closed as OVERLOADED. */
const MAX_BUFFERED_BYTES = 8 << 20;
/** A busy gateway writes each connection at most once per this many milliseconds. */
const COALESCE_MS = 1;
/** The synthetic user's id in its probe room (no real user logs in as it: ids are > 0 and this one has no connection). */
const PROBE_USER_ID = 0xffffffff;

const ErrorCode = client.ErrorCode;

const connections = new Gauge({ name: 'groupchat_gateway_connections', help: 'Open user connections', registers: [metrics] });
const protocolErrors = new Counter({ name: 'groupchat_gateway_protocol_errors_total', help: 'Connections closed for protocol violations', labelNames: ['code'], registers: [metrics] });

export async function startGateway(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const rooms = new LocalRooms<Session | Member>();
  const peerServer = new PeerServer(ctx.self);
  const peerAddress = await peerServer.listen(config.port, config.host);
  const advertisedPeer = `${ctx.advertiseHost}:${peerAddress.split(':').pop()}`;
  const reporter = new MembershipReporter(ctx.memberId, advertisedPeer, rooms, registry, ctx.self);
  const proxyAddresses = () => registry.members().filter((m) => m.role === 'proxy' && m.ready).map((m) => m.address);
  const publisher = new Publisher({ proxies: proxyAddresses(), workerId: workerIdFor('gateway', ctx.ordinal), identity: ctx.self });
  registry.on('members', () => publisher.setProxies(proxyAddresses()));
  const relays = new RelayChannel(ctx.memberId, registry, ctx.self);
  // The synthetic user: a member of this gateway's probe room (so the room is
  // reported and delivered here), publishing into it; it has no connection.
  const probe = new LatencyProbe(probeRoomOf(ctx.ordinal), publisher);
  rooms.join(probe.roomId, { userId: PROBE_USER_ID });
  const authKey = config.authKeyFile ? loadKey(config.authKeyFile) : null;
  const userLimitOf = () => limitFrom(registry.topology().limits?.userMessagesPerSecond, registry.topology().limits?.userBurst);
  const userLimits = new TokenBuckets<number>(userLimitOf());
  registry.on('topology', () => userLimits.setLimit(userLimitOf()));
  const sessionsByUser = new Map<number, Set<Session>>();

  const fail = (session: Session, code: number, message: string, closeCode: number) => {
    protocolErrors.inc({ code: ErrorCode[code] ?? String(code) });
    if (!session.connection.open) return;
    outboxes.flush(session); // what was answered before the fault still goes out, in order
    session.connection.sendAndClose(client.ServerFrame.encode({ error: { code, message } }).finish(), closeCode, message.slice(0, 120));
  };
  const outboxes: Outboxes = new Outboxes({
    now: () => performance.now(),
    soon: (run) => setImmediate(run),
    after: (run, delayMs) => setTimeout(run, delayMs),
    overflow: (session) => fail(session, ErrorCode.OVERLOADED, `more than ${MAX_BUFFERED_BYTES} bytes unsent: the client is not reading`, 1008),
  }, MAX_BUFFERED_BYTES, COALESCE_MS);
  const send = (session: Session, frame: Buffer) => outboxes.send(session, frame);

  const deliveries = new RoomDeliveries({
    rooms,
    isProbe: (delivery) => probe.observe(delivery),
    reportAgain: (roomId) => {
      // A broker still thinks we have members here: report the room again.
      rooms.dirty.add(roomId);
      reporter.schedule();
    },
    send,
  });
  const catchUp = new CatchUp(deliveries.deliver, (roomId, sequencerId, afterSeq) => publisher.historySince(roomId, sequencerId, afterSeq),
    (roomId) => rooms.sessions(roomId) !== undefined, log);
  onReturn(registry, ctx.memberId, () => void catchUp.returned(), () => catchUp.left());
  const leaveRoom = (roomId: number, session: Session): boolean => {
    const changed = rooms.leave(roomId, session);
    if (changed && !rooms.sessions(roomId)) catchUp.forget(roomId);
    return changed;
  };

  const requests = new Requests({
    send,
    fail,
    verifyLogin: (token, userId) => (authKey ? verifyLogin(token, authKey, userId) : Promise.resolve(null)),
    online: (session) => {
      let sessions = sessionsByUser.get(session.userId);
      if (!sessions) sessionsByUser.set(session.userId, (sessions = new Set()));
      sessions.add(session);
      relays.login(session.userId);
    },
    joinRoom: (session, roomId) => (rooms.join(roomId, session) ? (reporter.schedule(), reporter.applied(roomId)) : Promise.resolve()),
    leaveRoom: (session, roomId) => { if (leaveRoom(roomId, session)) reporter.schedule(); },
    takeToken: (userId) => userLimits.take(userId),
    publisher,
    relays,
    brokerPartitions: () => registry.topology().roles.broker.partitions,
    log,
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

  const onConnection = (ws: WebSocket, socket: Socket) => {
    const session = new Session(new WsConnection(ws, socket));
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
      requests.handle(session, frame);
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
  };

  const httpServer = http.createServer((_req, res) => { res.statusCode = 426; res.end('WebSocket only\n'); });
  // The upgrade is taken here rather than by ws, to keep the TCP socket it hands over (session.ts).
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  httpServer.on('upgrade', (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket as Socket));
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
