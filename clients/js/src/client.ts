// The groupchat user client: one WebSocket to a gateway at a time, speaking
// the protocol of docs/protocol.md. It runs unchanged in browsers and in Node:
// the entry for each platform (browser.ts, node.ts) supplies the WebSocket.
//
// What it does for the application: requests resolve on their answer; every
// Send and Direct carries a client-chosen 63-bit id, so resending it after a
// drop or an UNAVAILABLE never delivers twice; each room message is emitted
// once, however often it arrives; a jump in a room's room_seq is recovered by
// resuming the room on the live connection; with `reconnect`, a lost
// connection is replaced by one to the next gateway (backoff with jitter), the
// client logs in again and resumes every room after the last room_seq it saw,
// so what was sent meanwhile arrives first, once, then live messages.
import type Long from 'long';
import protobuf from 'protobufjs/minimal.js';
import { groupchat } from '../generated/client.js';
import { Emitter } from './emitter.js';

const proto = groupchat.client;

/** Version of the user protocol (docs/protocol.md) this client speaks. */
export const PROTOCOL_VERSION = 1;

// protobufjs decodes fixed64/uint64 into this class when the long package is
// present, which it always is (a dependency of protobufjs, bundled in the browser build).
const LongClass = protobuf.util.Long as unknown as typeof Long;
if (!LongClass) throw new Error('@groupchat/client: protobufjs found no Long class; 64-bit ids would lose precision');

/** What decode() returns for a present message: every field set (proto3 defaults), 64-bit fields as Long. */
type DecodedField<F> = [F] extends [number | Long] ? ([Long] extends [F] ? Long : number) : Decoded<F>;
type Decoded<T> = T extends Uint8Array | string | boolean ? T
  : T extends ReadonlyArray<infer E> ? Array<DecodedField<NonNullable<E>>>
  : { [K in keyof T as K extends '$unknowns' ? never : K]-?: DecodedField<NonNullable<T[K]>> };

/** A room message (docs/protocol.md §3 Delivery). `payload` is a Buffer in Node, a Uint8Array in browsers. */
export type Delivery = Decoded<groupchat.client.IDelivery>;
/** A one-to-one message from the user's inbox. */
export type InboxMessage = Decoded<groupchat.client.IInboxMessage>;
/** A page of a room's stored messages, oldest first. */
export type HistoryPage = Decoded<groupchat.client.IHistoryPage>;
/** Where a room stands: its newest and oldest kept room_seq. */
export type RoomHead = Decoded<groupchat.client.IRoomHead>;
export type { Long };

export class ChatError extends Error {
  /** code: an ErrorCode name of docs/protocol.md §7, or CLOSED when the connection is gone. */
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ChatError';
  }
}

/** Where a member's view of a room ends: pass to join() to resume after it. */
export interface RoomPosition {
  sequencerId: number;
  roomSeq: number;
}

export interface ChatClientEvents {
  /** A room message, once per (room, sender, id), in the order the gateway sent them. */
  message: [Delivery];
  /** A one-to-one message from the inbox, in position order, each position once. */
  inbox: [InboxMessage];
  /** A room's room_seq jumped from afterSeq to seq: the client is resuming the room to fetch what is between. */
  gap: [roomId: number, afterSeq: number, seq: number];
  /** Resuming a room could not recover everything missed (HISTORY_INCOMPLETE): some messages are gone for this member. */
  incomplete: [roomId: number];
  /** The gateway closed the connection for a protocol violation. */
  protocolError: [ChatError];
  /** With `reconnect`: the connection dropped; requests wait (send, direct) or fail with CLOSED until 'reconnected'. */
  reconnecting: [code: number, reason: string];
  /** With `reconnect`: connected to url, logged in again and every room resumed. */
  reconnected: [url: string];
  /** For good: close() was called, the connection dropped without `reconnect`, or logging in again was refused. */
  close: [code: number, reason: string];
}

/** The part of the WebSocket API the client uses: the browsers' and the `ws` package's both have it. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Gateway URLs, or a function giving the current list (called before every connection attempt). */
export type Gateways = string | string[] | (() => string[] | Promise<string[]>);

export interface ConnectOptions {
  /** Replace a lost connection, trying the gateways in turn; the first connection also keeps trying. */
  reconnect?: boolean;
  /** First wait between attempts; it doubles up to maxBackoffMs, each wait 50–100 % of that (jitter). Default 100. */
  minBackoffMs?: number;
  /** Longest wait between attempts. Default 5000. */
  maxBackoffMs?: number;
  /** A connection not open after this long counts as failed. Default 10000. */
  openTimeoutMs?: number;
  /** Send a Ping this often and drop a connection whose Pong has not come by the next one (0: never). Default 0. */
  keepAliveMs?: number;
  /** With `reconnect`: times a send() or direct() is resent (same id) after CLOSED or UNAVAILABLE. Default 3. */
  /**
   * A jump in a room's room_seq not filled within this long is fetched by
   * resuming the room (a backend's critical message overtakes others for a
   * moment; they follow). Default 1000.
   */
  gapWaitMs?: number;
  retries?: number;
  /** Stops the first connection's attempts (with `reconnect` they go on until it connects). */
  signal?: AbortSignal;
  /** The WebSocket class; the platform's entry point sets the default. */
  WebSocket?: WebSocketConstructor;
}

const OPEN = 1;
const DEDUP_ENTRIES = 10_000;
let platform: { WebSocket: WebSocketConstructor; binaryType: string } | null = null;

/** Called by the platform's entry point: the WebSocket class and the binaryType that suits its decoder. */
export function useWebSocket(WebSocket: WebSocketConstructor, binaryType: string): void {
  platform = { WebSocket, binaryType };
}

/** A random 63-bit message id, never 0 (docs/protocol.md §5): unique among a user's messages without coordination. */
export function newMessageId(): Long {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2)) as unknown as [number, number];
  const top = high & 0x7fffffff;
  return LongClass.fromBits((top === 0 && low === 0 ? 1 : low) | 0, top, true);
}

/** A protocol number or Long as a JavaScript number (room_seq, positions and times fit in 53 bits). */
export function toNumber(value: number | Long | null | undefined): number {
  if (value == null) return 0;
  return typeof value === 'number' ? value : LongClass.fromBits(value.low, value.high, true).toNumber();
}

type FrameBody = Omit<groupchat.client.IClientFrame, 'requestId'>;

export class ChatClient extends Emitter<ChatClientEvents> {
  /** Last room position seen per joined room (the highest room_seq): what a resume starts after. */
  readonly positions = new Map<number, RoomPosition>();
  /** Last inbox position received. */
  inboxPosition = 0;
  /** Repeated deliveries this client dropped (a gateway dedups already; this counts what slipped past, e.g. after a resume). */
  duplicatesDropped = 0;
  /** The gateway of the current connection. */
  url = '';

  private readonly WebSocket: WebSocketConstructor;
  private readonly binaryType: string;
  /** The connection in use; null while none is (between a loss and the next connection). */
  private live: WebSocketLike | null = null;
  private nextRequestId = 1;
  /** Requests awaiting their answer: a Reply, or for History and RoomHeads their own frame. */
  private readonly pending = new Map<number, { resolve: (answer?: unknown) => void; reject: (err: Error) => void }>();
  private readonly pings = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private lastPingTime = 0;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  /** Recently delivered (room, sender, id)s, oldest first. */
  private readonly seen = new Set<string>();
  /** What a reconnection replays: the accepted login and the rooms joined since. */
  private credentials: { userId: number; displayName: string; token: string } | null = null;
  private readonly joined = new Set<number>();
  /** Per room: the room_seq up to which nothing is missing, what arrived above it, and the wait before fetching the hole. */
  private readonly sequence = new Map<number, { contiguous: number; above: Set<number>; timer?: ReturnType<typeof setTimeout> }>();
  /** Rooms with a resuming Join in flight: the repeats it brings are expected, not counted as duplicates. */
  private readonly resuming = new Set<number>();
  /** Logged in (if ever asked to) and every room resumed: requests go out now. */
  private ready = false;
  private closing = false;
  private ended = false;
  private urlIndex = 0;
  /** Failed attempts since the last connection that worked: sets the backoff. */
  private failures = 0;
  private wake: (() => void) | null = null;

  private constructor(private readonly gateways: Gateways, private readonly options: ConnectOptions) {
    super();
    const chosen = options.WebSocket ? { WebSocket: options.WebSocket, binaryType: 'arraybuffer' } : platform;
    if (!chosen) throw new ChatError('INVALID_ARGUMENT', 'no WebSocket class: import @groupchat/client (Node) or its browser build, or pass options.WebSocket');
    this.WebSocket = chosen.WebSocket;
    this.binaryType = chosen.binaryType;
  }

  /**
   * Connects to the first gateway. Without `reconnect`, a failure rejects; with
   * it, the client keeps trying the gateways in turn until one answers (or
   * options.signal aborts).
   */
  static async connect(gateways: Gateways, options: ConnectOptions = {}): Promise<ChatClient> {
    const chat = new ChatClient(gateways, options);
    for (;;) {
      try {
        const { ws, url } = await chat.openNext();
        chat.attach(ws, url);
        return chat;
      } catch (err) {
        if (!options.reconnect || options.signal?.aborted) throw err;
        await chat.pause();
        if (options.signal?.aborted) throw new ChatError('CLOSED', 'connecting was aborted');
      }
    }
  }

  /** token: a signed login token, required when the gateways have a key (docs/protocol.md §3). */
  async login(userId: number, displayName = '', token = ''): Promise<void> {
    await this.request({ login: { userId, displayName, token } });
    this.credentials = { userId, displayName, token };
    this.ready = true;
  }

  /**
   * Joins a room. With `resumeFrom` (a position, or the last room_seq seen),
   * first receives every stored message after it. HISTORY_INCOMPLETE still
   * joined the room (and rejects, so the caller knows some are gone).
   */
  async join(roomId: number, resumeFrom?: RoomPosition | number): Promise<void> {
    const after = typeof resumeFrom === 'number' ? resumeFrom : resumeFrom?.roomSeq;
    if (after === undefined) {
      this.forget(roomId);
    } else {
      this.resuming.add(roomId);
      if (!this.sequence.has(roomId)) this.sequence.set(roomId, { contiguous: after, above: new Set() });
    }
    try {
      await this.request({ join: { roomId, ...(after !== undefined ? { resumeAfterSeq: after, resumeSequencerId: 1 } : {}) } });
    } catch (err) {
      if (err instanceof ChatError && err.code === 'HISTORY_INCOMPLETE') {
        this.joined.add(roomId);
        this.acceptLoss(roomId);
      }
      throw err;
    } finally {
      if (after !== undefined) this.resuming.delete(roomId);
    }
    this.joined.add(roomId);
    // With reconnect, a room whose messages this client has not seen yet must still resume from somewhere:
    // from where the room stood at the join (a delivery that comes first sets it instead).
    if (after === undefined && this.options.reconnect) {
      this.roomHeads([roomId]).then(([head]) => {
        if (head && this.joined.has(roomId) && !this.sequence.has(roomId)) this.sequence.set(roomId, { contiguous: toNumber(head.headSeq), above: new Set() });
      }, () => undefined); // CLOSED: the replay rejoins without a position, as it would have
    }
  }

  async leave(roomId: number): Promise<void> {
    await this.request({ leave: { roomId } });
    this.joined.delete(roomId);
    this.forget(roomId);
  }

  /**
   * Sends to a room; resolves with the message's id once every online member
   * has it. The id (random unless given) makes resending safe: with
   * `reconnect`, a send cut off by a drop or answered UNAVAILABLE is resent
   * with the same id after reconnecting, and is delivered once.
   */
  async send(roomId: number, payload: Uint8Array, messageId: Long = newMessageId()): Promise<Long> {
    await this.retrying(() => this.request({ send: { roomId, messageId, payload } }));
    return messageId;
  }

  /** Sends a one-to-one message; resolves with its id once it is stored durably for the recipient. Retried like send(). */
  async direct(toUserId: number, payload: Uint8Array, messageId: Long = newMessageId()): Promise<Long> {
    await this.retrying(() => this.request({ direct: { toUserId, messageId, payload } }));
    return messageId;
  }

  /** Acknowledges the inbox up to position (default: the last received): later logins start after it. */
  ackInbox(position = this.inboxPosition): Promise<void> {
    return this.request({ ackInbox: { position } });
  }

  /** One page of scrollback: the newest stored messages before beforeSeq (0: up to the head), oldest first. */
  history(roomId: number, beforeSeq = 0, limit = 0): Promise<HistoryPage> {
    return this.ask({ history: { roomId, beforeSeq, limit } }) as Promise<HistoryPage>;
  }

  /** Pages back through a room's history, newest page first, until the oldest message kept. */
  async *scrollback(roomId: number, pageSize = 50, beforeSeq = 0): AsyncGenerator<HistoryPage> {
    for (;;) {
      const page = await this.history(roomId, beforeSeq, pageSize);
      yield page;
      const oldest = page.messages[0];
      if (!oldest || toNumber(oldest.roomSeq) <= toNumber(page.firstSeq)) return;
      beforeSeq = toNumber(oldest.roomSeq);
    }
  }

  /** Where each room stands (newest room_seq), e.g. for unread counts: head minus the last room_seq seen. */
  async roomHeads(roomIds: number[]): Promise<RoomHead[]> {
    return ((await this.ask({ roomHeads: { roomIds } })) as { heads: RoomHead[] }).heads;
  }

  /** Round trip to the gateway, in ms. */
  ping(): Promise<number> {
    const ws = this.live;
    if (!ws || ws.readyState !== OPEN) return Promise.reject(new ChatError('CLOSED', 'connection is not open'));
    // The Pong echoes the value: a distinct one per Ping in flight.
    const sentAt = Math.max(Date.now(), this.lastPingTime + 1);
    this.lastPingTime = sentAt;
    return new Promise((resolve, reject) => {
      this.pings.set(sentAt, { resolve: () => resolve(Date.now() - sentAt), reject });
      ws.send(proto.ClientFrame.encode({ ping: { clientTimeMs: sentAt } }).finish());
    });
  }

  /** Sends raw bytes: for tests of a gateway's handling of bad input. */
  sendRaw(data: Uint8Array | string): void {
    this.live?.send(data);
  }

  /** Closes for good; resolves once the connection is closed. */
  close(): Promise<void> {
    this.closing = true;
    this.ready = false;
    this.wake?.();
    for (const state of this.sequence.values()) clearTimeout(state.timer);
    const ws = this.live;
    if (!ws) {
      this.end(1000, 'closed by the client');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      ws.addEventListener('close', () => resolve());
      ws.close(1000);
    });
  }

  private openNext(): Promise<{ ws: WebSocketLike; url: string }> {
    return (async () => {
      const list = typeof this.gateways === 'function' ? await this.gateways() : typeof this.gateways === 'string' ? [this.gateways] : this.gateways;
      if (list.length === 0) throw new ChatError('UNAVAILABLE', 'no gateway to connect to');
      // The next attempt, and the next reconnection, go to the next gateway.
      const url = list[this.urlIndex++ % list.length]!;
      return { ws: await this.open(url), url };
    })();
  }

  private open(url: string): Promise<WebSocketLike> {
    return new Promise((resolve, reject) => {
      const ws = new this.WebSocket(url);
      ws.binaryType = this.binaryType;
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new ChatError('UNAVAILABLE', `${url}: ${why}`));
      };
      // A gateway host that drops packets would leave the socket connecting for minutes.
      const timer = setTimeout(() => { fail('no answer'); ws.close(); }, this.options.openTimeoutMs ?? 10_000);
      ws.addEventListener('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(ws);
      });
      ws.addEventListener('close', (e) => fail(`closed ${e.code ?? ''} ${e.reason ?? ''}`.trim()));
      // An error before open is followed by a close; listening keeps Node's ws from throwing it.
      ws.addEventListener('error', () => fail('connection failed'));
    });
  }

  private attach(ws: WebSocketLike, url: string): void {
    this.live = ws;
    this.url = url;
    ws.addEventListener('message', (e) => { if (ws === this.live) this.onFrame(e.data); });
    ws.addEventListener('close', (e) => this.lost(ws, e.code ?? 1006, e.reason ?? ''));
    const every = this.options.keepAliveMs ?? 0;
    if (every > 0) {
      let waiting = false;
      clearInterval(this.keepAlive);
      this.keepAlive = setInterval(() => {
        if (waiting) return this.drop(`no Pong within ${every} ms`);
        waiting = true;
        this.ping().then(() => { waiting = false; }, () => undefined);
      }, every);
    }
  }

  /** Gives up on the current connection at once (it may take long to close by itself). */
  private drop(why: string): void {
    const ws = this.live;
    if (!ws) return;
    this.lost(ws, 4000, why);
    ws.close();
  }

  /** The connection ws is gone: fail what waited on it, then reconnect or end. */
  private lost(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.live) return;
    this.live = null;
    this.ready = false;
    clearInterval(this.keepAlive);
    const err = new ChatError('CLOSED', `connection closed (${code} ${reason})`.trim());
    for (const { reject } of [...this.pending.values(), ...this.pings.values()]) reject(err);
    this.pending.clear();
    this.pings.clear();
    if (this.options.reconnect && !this.closing) {
      this.emit('reconnecting', code, reason);
      void this.reconnect();
    } else {
      this.end(code, reason);
    }
  }

  private end(code: number, reason: string): void {
    this.closing = true;
    if (this.ended) return;
    this.ended = true;
    this.emit('close', code, reason);
  }

  /** Waits before the next attempt: exponential backoff with jitter; close() cuts it short. */
  private pause(): Promise<void> {
    const min = this.options.minBackoffMs ?? 100;
    const ceiling = Math.min(min * 2 ** Math.min(this.failures++, 30), this.options.maxBackoffMs ?? 5000);
    return new Promise((resolve) => {
      const timer = setTimeout(done, ceiling * (0.5 + Math.random() / 2));
      function done() { clearTimeout(timer); resolve(); }
      this.wake = done;
    });
  }

  private async reconnect(): Promise<void> {
    while (!this.closing) {
      await this.pause();
      if (this.closing) return;
      let next: { ws: WebSocketLike; url: string };
      try {
        next = await this.openNext();
      } catch {
        continue;
      }
      if (this.closing) return void next.ws.close(1000);
      this.attach(next.ws, next.url);
      try {
        await this.replay();
      } catch (err) {
        if (err instanceof ChatError && err.code !== 'CLOSED') {
          // Refused for good (e.g. the token expired): stop, and say why.
          this.live = null;
          clearInterval(this.keepAlive);
          next.ws.close(1000);
          this.end(4000, err.message);
        }
        return; // CLOSED: this connection dropped too, and its loss tries again
      }
      this.failures = 0;
      this.ready = true;
      this.emit('reconnected', next.url);
      return;
    }
  }

  /** Logs in again and resumes every room after its last position. */
  private async replay(): Promise<void> {
    if (!this.credentials) return;
    const { userId, displayName, token } = this.credentials;
    await this.request({ login: { userId, displayName, token } });
    for (const roomId of this.joined) {
      try {
        await this.join(roomId, this.sequence.get(roomId)?.contiguous);
      } catch (err) {
        if (!(err instanceof ChatError) || err.code !== 'HISTORY_INCOMPLETE') throw err;
        this.emit('incomplete', roomId); // joined; what was missed is only partly kept
      }
    }
  }

  /** Runs a Send or Direct; with `reconnect`, again (same id) after CLOSED or UNAVAILABLE, once reconnected. */
  private async retrying(attempt: () => Promise<void>): Promise<void> {
    for (let tries = 0; ; tries++) {
      if (this.options.reconnect && !this.ready && this.credentials && !this.closing) await this.reconnected();
      try {
        return await attempt();
      } catch (err) {
        const retry = this.options.reconnect && !this.closing && tries < (this.options.retries ?? 3)
          && err instanceof ChatError && (err.code === 'CLOSED' || err.code === 'UNAVAILABLE');
        if (!retry) throw err;
      }
    }
  }

  private reconnected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ok = () => { this.off('close', fail); resolve(); };
      const fail = (code: number, reason: string) => { this.off('reconnected', ok); reject(new ChatError('CLOSED', `client closed (${code} ${reason})`)); };
      this.once('reconnected', ok);
      this.once('close', fail);
    });
  }

  private request(body: FrameBody): Promise<void> {
    return this.ask(body) as Promise<void>;
  }

  private ask(body: FrameBody): Promise<unknown> {
    const ws = this.live;
    if (!ws || ws.readyState !== OPEN) return Promise.reject(new ChatError('CLOSED', 'connection is not open'));
    const requestId = this.nextRequestId;
    this.nextRequestId = requestId >= 0xffffffff ? 1 : requestId + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      ws.send(proto.ClientFrame.encode({ requestId, ...body }).finish());
    });
  }

  private onFrame(data: unknown): void {
    let frame: groupchat.client.ServerFrame;
    try {
      if (typeof data === 'string') throw new Error('a text message');
      frame = proto.ServerFrame.decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data as Uint8Array);
    } catch (err) {
      // Not a ServerFrame: report it and close; never throw into the socket's handler.
      this.emit('protocolError', new ChatError('MALFORMED_FRAME', `not a ServerFrame: ${(err as Error).message}`));
      this.live?.close(1007, 'malformed ServerFrame');
      return;
    }
    if (frame.reply) {
      const requestId = frame.reply.requestId ?? 0;
      const entry = this.pending.get(requestId);
      if (!entry) return;
      this.pending.delete(requestId);
      const code = frame.reply.code ?? 0;
      if (code === proto.ErrorCode.OK) entry.resolve();
      else entry.reject(new ChatError(proto.ErrorCode[code] ?? String(code), frame.reply.message ?? ''));
    } else if (frame.delivery) {
      this.onDelivery(frame.delivery as Delivery);
    } else if (frame.history || frame.roomHeads) {
      // The answer to a History or RoomHeads request: it settles that request.
      const answer = (frame.history ?? frame.roomHeads)!;
      const entry = this.pending.get(answer.requestId ?? 0);
      this.pending.delete(answer.requestId ?? 0);
      entry?.resolve(answer);
    } else if (frame.inbox) {
      const item = frame.inbox as InboxMessage;
      const position = toNumber(item.position);
      if (position <= this.inboxPosition) { this.duplicatesDropped++; return; }
      this.inboxPosition = position;
      this.emit('inbox', item);
    } else if (frame.pong) {
      const key = toNumber(frame.pong.clientTimeMs);
      this.pings.get(key)?.resolve();
      this.pings.delete(key);
    } else if (frame.error) {
      const code = frame.error.code ?? 0;
      this.emit('protocolError', new ChatError(proto.ErrorCode[code] ?? String(code), frame.error.message ?? ''));
    }
  }

  private onDelivery(delivery: Delivery): void {
    const key = `${delivery.roomId}/${delivery.senderId}/${delivery.messageId.high >>> 0}.${delivery.messageId.low >>> 0}`;
    if (this.seen.has(key)) {
      if (!this.resuming.has(delivery.roomId)) this.duplicatesDropped++;
      return;
    }
    this.seen.add(key);
    if (this.seen.size > DEDUP_ENTRIES) this.seen.delete(this.seen.values().next().value!);
    const roomId = delivery.roomId;
    const seq = toNumber(delivery.roomSeq);
    const last = this.positions.get(roomId);
    if (!last || seq > last.roomSeq) this.positions.set(roomId, { sequencerId: delivery.sequencerId, roomSeq: seq });
    this.emit('message', delivery);
    this.track(roomId, seq);
  }

  /** Follows a room's room_seq; a hole still open after gapWaitMs is fetched by resuming the room. */
  private track(roomId: number, seq: number): void {
    const state = this.sequence.get(roomId);
    if (!state) return void this.sequence.set(roomId, { contiguous: seq, above: new Set() });
    if (seq <= state.contiguous) return;
    if (seq === state.contiguous + 1) {
      state.contiguous = seq;
      while (state.above.delete(state.contiguous + 1)) state.contiguous++;
      if (state.above.size === 0) {
        clearTimeout(state.timer);
        state.timer = undefined;
      }
      return;
    }
    state.above.add(seq);
    state.timer ??= setTimeout(() => {
      state.timer = undefined;
      if (state.above.size === 0 || this.sequence.get(roomId) !== state) return;
      // Not connected or already resuming: the reconnection or that resume fetches it.
      if (!this.ready || !this.joined.has(roomId) || this.resuming.has(roomId)) return;
      this.emit('gap', roomId, state.contiguous, Math.min(...state.above));
      this.join(roomId, state.contiguous).catch((err: unknown) => {
        if (err instanceof ChatError && err.code === 'HISTORY_INCOMPLETE') this.emit('incomplete', roomId);
        // CLOSED: the reconnection resumes the room anyway.
      });
    }, this.options.gapWaitMs ?? 1000);
  }

  /** What a resume could not recover is gone: stop waiting for it. */
  private acceptLoss(roomId: number): void {
    const state = this.sequence.get(roomId);
    if (!state || state.above.size === 0) return;
    state.contiguous = Math.max(...state.above);
    state.above.clear();
    clearTimeout(state.timer);
    state.timer = undefined;
  }

  private forget(roomId: number): void {
    clearTimeout(this.sequence.get(roomId)?.timer);
    this.sequence.delete(roomId);
    this.positions.delete(roomId);
  }
}
