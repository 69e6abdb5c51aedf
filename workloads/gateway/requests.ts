// A user's requests (docs/protocol.md §2–§4), in the order a connection sent
// them: each is checked here, at the edge, and answered with one Reply (or
// the frame it asks for); a protocol violation closes the connection.
import { Counter } from 'prom-client';
import { AuthError, mayJoin, type LoginClaims } from '../auth/tokens.js';
import { metrics } from '../observability/http.js';
import type { Logger } from '../observability/logger.js';
import { client, isZeroId, Long, messageIdKey, peer, toNumber, type ClientFrame } from '../protocol/index.js';
import { PublishError, type Publisher } from '../sdk/publisher.js';
import { RelayError, type RelayChannel } from './relay-channel.js';
import { answerHistory, answerRoomHeads, type RoomReadsDeps } from './room-reads.js';
import { encodeDelivery, framed, toDelivery } from './server-frames.js';
import type { Session } from './session.js';

export const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_DISPLAY_NAME = 64;
const MAX_ROOMS_PER_SESSION = 1000;
/** Frames held behind a pending Login before the gateway stops reading the connection. */
export const EARLY_FRAMES_BEFORE_PAUSE = 64;

const ErrorCode = client.ErrorCode;

const authFailures = new Counter({ name: 'groupchat_gateway_login_refused_total', help: 'Logins refused for a missing, forged or expired token', registers: [metrics] });

function relayErrorCode(err: Error): number {
  if (!(err instanceof RelayError)) return ErrorCode.UNAVAILABLE;
  if (err.status === peer.StoreStatus.OUT_OF_RANGE) return ErrorCode.CURSOR_OUT_OF_RANGE;
  if (err.status === peer.StoreStatus.INVALID) return ErrorCode.INVALID_ARGUMENT;
  return ErrorCode.UNAVAILABLE;
}

export interface RequestDeps {
  /** Queues a framed ServerFrame for the session (outboxes.ts). */
  send(session: Session, frame: Buffer): void;
  /** Closes the session for a protocol violation, with an Error frame. */
  fail(session: Session, code: number, message: string, closeCode: number): void;
  /** The login's verified claims (null: the gateway requires no token); rejects with AuthError. */
  verifyLogin(token: string, userId: number): Promise<LoginClaims | null>;
  /** The session is logged in: its user's inbox comes here now. */
  online(session: Session): void;
  /** Adds the session to the room; resolves once the room's brokers know (at once if it was already in). */
  joinRoom(session: Session, roomId: number): Promise<void>;
  leaveRoom(session: Session, roomId: number): void;
  /** False: the user is over its message rate (one token per accepted Send or Direct). */
  takeToken(userId: number): boolean;
  publisher: Pick<Publisher, 'publish' | 'history' | 'historySince' | 'heads' | 'newMessageId'>;
  relays: Pick<RelayChannel, 'direct' | 'ackInbox'>;
  brokerPartitions(): number;
  log: Logger;
}

export class Requests {
  constructor(private readonly deps: RequestDeps) {}

  private reply(session: Session, requestId: number, code: number = ErrorCode.OK, message = ''): void {
    this.deps.send(session, framed({ reply: { requestId, code, message } }));
  }

  handle(session: Session, frame: ClientFrame): void {
    const requestId = frame.requestId;
    if (session.loggingIn) {
      // Pipelined after a Login still being verified: keep the session's order. Past
      // the bound the gateway stops reading (TCP backpressure) rather than refusing,
      // so how the frames were split into reads changes nothing; the frames it had
      // already read when it paused are held as well.
      session.early.push(frame);
      if (session.early.length === EARLY_FRAMES_BEFORE_PAUSE) session.connection.pause();
      return;
    }
    switch (frame.body) {
      case 'ping':
        return this.deps.send(session, framed({ pong: { clientTimeMs: frame.ping.clientTimeMs, serverTimeMs: Date.now() } }));
      case 'login':
        return this.login(session, requestId, frame.login);
      case 'join': case 'leave': case 'send': case 'direct': case 'ackInbox': case 'history': case 'roomHeads':
        if (!session.loggedIn) return this.reply(session, requestId, ErrorCode.NOT_LOGGED_IN, 'log in first');
        break;
      default:
        return this.deps.fail(session, ErrorCode.MALFORMED_FRAME, 'ClientFrame without a known body', 1007);
    }
    switch (frame.body) {
      case 'join': return this.join(session, requestId, frame.join);
      case 'leave': {
        const { roomId } = frame.leave;
        if (!session.rooms.delete(roomId)) return this.reply(session, requestId, ErrorCode.NOT_A_MEMBER, `not in room ${roomId}`);
        this.deps.leaveRoom(session, roomId);
        return this.reply(session, requestId);
      }
      case 'send': return this.send(session, requestId, frame.send);
      case 'direct': return this.direct(session, requestId, frame.direct);
      case 'ackInbox':
        this.deps.relays.ackInbox(session.userId, toNumber(frame.ackInbox.position)).then(
          () => this.reply(session, requestId),
          (err: Error) => this.reply(session, requestId, relayErrorCode(err), err.message),
        );
        return;
      case 'history': case 'roomHeads': {
        const deps = this.roomReads(session, requestId);
        const read = frame.body === 'history' ? answerHistory(deps, requestId, frame.history) : answerRoomHeads(deps, requestId, frame.roomHeads.roomIds);
        void read.catch((err: Error) => this.reply(session, requestId, ErrorCode.UNAVAILABLE, err.message));
      }
    }
  }

  private login(session: Session, requestId: number, login: Extract<ClientFrame, { body: 'login' }>['login']): void {
    const { userId, displayName, token } = login;
    if (session.loggedIn) return this.reply(session, requestId, ErrorCode.ALREADY_LOGGED_IN, `already logged in as ${session.userId}`);
    if (userId === 0) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'user_id must be between 1 and 4294967295');
    if (displayName.length > MAX_DISPLAY_NAME) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `display_name longer than ${MAX_DISPLAY_NAME}`);
    session.loggingIn = true;
    this.deps.verifyLogin(token, userId).then((verified) => {
      session.loggingIn = false;
      if (!session.connection.open) return;
      session.userId = userId;
      session.displayName = displayName;
      session.claims = verified;
      this.deps.online(session);
      this.reply(session, requestId);
    }, (err: Error) => {
      session.loggingIn = false;
      authFailures.inc();
      this.reply(session, requestId, ErrorCode.UNAUTHENTICATED, err instanceof AuthError ? err.message : 'login refused');
    }).finally(() => {
      for (const early of session.early.splice(0)) this.handle(session, early);
      if (!session.loggingIn && session.connection.paused) session.connection.resume();
    });
  }

  private join(session: Session, requestId: number, join: Extract<ClientFrame, { body: 'join' }>['join']): void {
    const { roomId, resumeAfterSeq, resumeSequencerId } = join;
    if (roomId === 0) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'room_id must be between 1 and 4294967295');
    if (!session.rooms.has(roomId) && session.rooms.size >= MAX_ROOMS_PER_SESSION) {
      return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `at most ${MAX_ROOMS_PER_SESSION} rooms per connection`);
    }
    if (!mayJoin(session.claims, roomId)) return this.reply(session, requestId, ErrorCode.FORBIDDEN, `the login token does not allow room ${roomId}`);
    session.rooms.add(roomId);
    // Hold live messages from now on, so the missed ones go out first.
    if (resumeSequencerId !== 0) session.resuming.set(roomId, session.resuming.get(roomId) ?? []);
    // Answer once the brokers know: every message sequenced after the OK reaches this member.
    void this.deps.joinRoom(session, roomId).then(() => {
      if (resumeSequencerId !== 0) return this.resume(session, requestId, roomId, resumeSequencerId, toNumber(resumeAfterSeq));
      return this.reply(session, requestId);
    });
  }

  /** Sends what a rejoining member missed, then the live messages held meanwhile. */
  private async resume(session: Session, requestId: number, roomId: number, sequencerId: number, afterSeq: number): Promise<void> {
    const held = session.resuming.get(roomId) ?? [];
    session.resuming.set(roomId, held);
    let complete = false;
    try {
      const answer = await this.deps.publisher.historySince(roomId, sequencerId, afterSeq);
      if (answer.status === peer.PublishStatus.REJECTED) {
        for (const live of held) this.deps.send(session, live.frame);
        return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `joined; resume_after_seq ${afterSeq} is beyond the room's head ${answer.headSeq.toString()}`);
      }
      complete = answer.complete && answer.status === peer.PublishStatus.DELIVERED;
      if (!complete) {
        this.deps.log.warn({ room: roomId, afterSeq, status: peer.PublishStatus[answer.status], head: answer.headSeq.toString(), first: answer.firstSeq.toString(), got: answer.deliveries.length },
          'a resume could not read everything after its position');
      }
      const sent = new Set<string>();
      for (const missed of answer.deliveries) {
        sent.add(`${missed.senderId}/${messageIdKey(missed.messageId)}`);
        this.deps.send(session, encodeDelivery(missed));
      }
      for (const live of held) if (!sent.has(live.key)) this.deps.send(session, live.frame);
    } finally {
      session.resuming.delete(roomId);
    }
    if (complete) this.reply(session, requestId);
    else this.reply(session, requestId, ErrorCode.HISTORY_INCOMPLETE, 'joined; some missed messages are no longer kept (retention), or the room could not be read now');
  }

  private send(session: Session, requestId: number, send: Extract<ClientFrame, { body: 'send' }>['send']): void {
    const { roomId, messageId, payload } = send;
    if (!session.rooms.has(roomId)) return this.reply(session, requestId, ErrorCode.NOT_A_MEMBER, `join room ${roomId} before sending to it`);
    if (payload.length > MAX_PAYLOAD_BYTES) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`);
    // The rate last: a request refused by the checks above costs no token (docs/protocol.md §7).
    if (!this.deps.takeToken(session.userId)) return this.reply(session, requestId, ErrorCode.RATE_LIMITED, 'over your message rate; retry later');
    this.deps.publisher
      .publish({ roomId, payload, senderId: session.userId, ...(isZeroId(messageId) ? {} : { messageId: Long.fromValue(messageId) }) })
      .then(() => this.reply(session, requestId), (err: Error) => this.reply(session, requestId,
        err instanceof PublishError && err.status === 'RATE_LIMITED' ? ErrorCode.RATE_LIMITED : ErrorCode.UNAVAILABLE, err.message));
  }

  private direct(session: Session, requestId: number, direct: Extract<ClientFrame, { body: 'direct' }>['direct']): void {
    const { toUserId, messageId, payload } = direct;
    if (toUserId === 0) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, 'to_user_id must be between 1 and 4294967295');
    if (payload.length > MAX_PAYLOAD_BYTES) return this.reply(session, requestId, ErrorCode.INVALID_ARGUMENT, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`);
    if (!this.deps.takeToken(session.userId)) return this.reply(session, requestId, ErrorCode.RATE_LIMITED, 'over your message rate; retry later');
    const clientMessageId = isZeroId(messageId) ? this.deps.publisher.newMessageId() : Long.fromValue(messageId);
    this.deps.relays.direct(session.userId, toUserId, clientMessageId, payload).then(
      () => this.reply(session, requestId),
      (err: Error) => this.reply(session, requestId, relayErrorCode(err), err.message),
    );
  }

  private roomReads(session: Session, requestId: number): RoomReadsDeps {
    return {
      history: (roomId, query) => this.deps.publisher.history(roomId, query),
      heads: (roomIds) => this.deps.publisher.heads(roomIds),
      partitions: () => this.deps.brokerPartitions(),
      mayRead: (roomId) => mayJoin(session.claims, roomId),
      send: (frame) => this.deps.send(session, framed(frame)),
      reply: (code, message) => this.reply(session, requestId, code, message),
      toDelivery,
    };
  }
}
