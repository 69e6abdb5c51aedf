// The user half of the SDK: one WebSocket connection to a gateway speaking
// the protocol of docs/protocol.md. Requests resolve on their Reply; each
// delivered message is emitted once, however often it arrives. With
// `reconnect`, a lost connection is replaced by one to the next gateway: the
// client logs in again and rejoins its rooms from where it was, so the
// messages sequenced meanwhile arrive first (once), then live ones.
import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import WebSocket from 'ws';
import { client, messageIdKey, toNumber, type Decoded, type Delivery, type Long } from '../protocol/index.js';

export class ChatError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

export type InboxMessage = Decoded<NonNullable<Parameters<typeof client.InboxMessage.encode>[0]>>;
export type HistoryPage = Decoded<NonNullable<Parameters<typeof client.HistoryPage.encode>[0]>>;
export type RoomHead = Decoded<NonNullable<Parameters<typeof client.RoomHead.encode>[0]>>;

/** Where a member's view of a room ends: pass to join() to resume after a drop. */
export interface RoomPosition {
  sequencerId: number;
  roomSeq: number;
}

export interface ChatClientEvents {
  message: [Delivery];
  /** A one-to-one message from the inbox, in position order. */
  inbox: [InboxMessage];
  /** The gateway closed the connection for a protocol violation. */
  protocolError: [ChatError];
  /** For good: close() was called, the connection dropped without `reconnect`, or logging in again was refused. */
  close: [number, string];
  /** With `reconnect`: the connection dropped; requests fail with CLOSED until 'reconnected'. */
  reconnecting: [number, string];
  /** With `reconnect`: logged in again on url, every room rejoined. */
  reconnected: [string];
  /** A rejoined room's missed messages were not all retained (HISTORY_INCOMPLETE): some are gone for this member. */
  gap: [number];
}

export interface ConnectOptions {
  /** Replace a lost connection, trying these gateways in turn (the first one is connected first). */
  reconnect?: boolean;
  /** Longest wait between attempts (they start at 100 ms and double). Default 5 s. */
  maxBackoffMs?: number;
}

const DEDUP_ENTRIES = 10_000;

export class ChatClient extends EventEmitter<ChatClientEvents> {
  private nextRequestId = 1;
  /** Requests awaiting their answer: a Reply, or for History and RoomHeads their own frame. */
  private readonly pending = new Map<number, { resolve: (answer?: unknown) => void; reject: (err: Error) => void }>();
  private readonly seen = new LRUCache<string, true>({ max: DEDUP_ENTRIES });
  /** Duplicates the SDK dropped (a gateway already dedups; this counts what slipped past). */
  duplicatesDropped = 0;
  /** Last room position seen per room. */
  readonly positions = new Map<number, RoomPosition>();
  /** Last inbox position received. */
  inboxPosition = 0;
  /** What a reconnection replays: the accepted login and the rooms joined since. */
  private credentials: { userId: number; displayName: string; token: string } | null = null;
  private readonly joined = new Set<number>();
  private closing = false;
  private urlIndex = 0;

  private constructor(private ws: WebSocket, private readonly urls: string[], private readonly options: ConnectOptions) {
    super();
    this.attach(ws);
  }

  /** urls: one gateway, or several to reconnect through (with `reconnect`). */
  static async connect(urls: string | string[], options: ConnectOptions = {}): Promise<ChatClient> {
    const list = typeof urls === 'string' ? [urls] : urls;
    if (list.length === 0) throw new ChatError('INVALID_ARGUMENT', 'no gateway URL');
    return new ChatClient(await open(list[0]!), list, options);
  }

  private attach(ws: WebSocket): void {
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('error', () => {}); // always followed by 'close', which handles it
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('close', (code, reason) => {
      for (const { reject } of this.pending.values()) reject(new ChatError('CLOSED', `connection closed (${code} ${reason})`));
      this.pending.clear();
      if (this.options.reconnect && !this.closing) {
        this.emit('reconnecting', code, reason.toString());
        void this.reconnect();
      } else {
        this.emit('close', code, reason.toString());
      }
    });
  }

  private async reconnect(): Promise<void> {
    for (let delay = 100; !this.closing; delay = Math.min(delay * 2, this.options.maxBackoffMs ?? 5000)) {
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
      if (this.closing) return;
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      const url = this.urls[this.urlIndex]!;
      let ws: WebSocket;
      try {
        ws = await open(url);
      } catch {
        continue;
      }
      if (this.closing) return void ws.close(1000);
      this.attach(ws);
      try {
        await this.replay();
      } catch (err) {
        if (err instanceof ChatError && err.code !== 'CLOSED') {
          // Refused for good (e.g. the token expired): stop, and say why.
          this.closing = true;
          ws.close(1000);
          this.emit('close', 4000, err.message);
        }
        return; // CLOSED: this connection dropped too, and its close handler tries again
      }
      this.emit('reconnected', url);
      return;
    }
  }

  /** Logs in again and rejoins every room after its last position. */
  private async replay(): Promise<void> {
    if (!this.credentials) return;
    const { userId, displayName, token } = this.credentials;
    await this.request({ login: { userId, displayName, token } });
    for (const roomId of this.joined) {
      try {
        await this.join(roomId, this.positions.get(roomId));
      } catch (err) {
        if (!(err instanceof ChatError) || err.code !== 'HISTORY_INCOMPLETE') throw err;
        this.emit('gap', roomId); // joined; what was missed is only partly retained
      }
    }
  }

  /** token: a signed login token, required when the gateways have a key. */
  async login(userId: number, displayName = '', token = ''): Promise<void> {
    await this.request({ login: { userId, displayName, token } });
    this.credentials = { userId, displayName, token };
  }

  /** Joins a room; with `resumeFrom`, first receives what was missed after it. */
  async join(roomId: number, resumeFrom?: RoomPosition): Promise<void> {
    try {
      await this.request({
        join: { roomId, ...(resumeFrom ? { resumeAfterSeq: resumeFrom.roomSeq, resumeSequencerId: resumeFrom.sequencerId } : {}) },
      });
    } catch (err) {
      // HISTORY_INCOMPLETE still joined the room.
      if (err instanceof ChatError && err.code === 'HISTORY_INCOMPLETE') this.joined.add(roomId);
      throw err;
    }
    this.joined.add(roomId);
  }

  /** Sends a one-to-one message; resolves once it is stored durably for the recipient. */
  direct(toUserId: number, payload: Uint8Array, messageId?: Long): Promise<void> {
    return this.request({ direct: { toUserId, payload, ...(messageId ? { messageId } : {}) } });
  }

  /** Acknowledges the inbox up to position: later logins start after it. */
  ackInbox(position = this.inboxPosition): Promise<void> {
    return this.request({ ackInbox: { position } });
  }

  async leave(roomId: number): Promise<void> {
    await this.request({ leave: { roomId } });
    this.joined.delete(roomId);
  }

  /** Resolves once the message is delivered to every online member of the room. */
  send(roomId: number, payload: Uint8Array, messageId?: Long): Promise<void> {
    return this.request({ send: { roomId, payload, ...(messageId ? { messageId } : {}) } });
  }

  /** Scrollback: the newest stored messages before beforeSeq (0: up to the head), oldest first. */
  history(roomId: number, beforeSeq = 0, limit = 0): Promise<HistoryPage> {
    return this.ask({ history: { roomId, beforeSeq, limit } }) as Promise<HistoryPage>;
  }

  /** Where each room stands (its newest room_seq), e.g. for unread counts after a login. */
  roomHeads(roomIds: number[]): Promise<RoomHead[]> {
    return (this.ask({ roomHeads: { roomIds } }) as Promise<{ heads: RoomHead[] }>).then((r) => r.heads);
  }

  /** Sends raw bytes: for tests of the gateway's handling of bad input. */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  close(): Promise<void> {
    this.closing = true;
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }

  private request(body: Omit<Parameters<typeof client.ClientFrame.encode>[0], 'requestId'>): Promise<void> {
    return this.ask(body) as Promise<void>;
  }

  private ask(body: Omit<Parameters<typeof client.ClientFrame.encode>[0], 'requestId'>): Promise<unknown> {
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new ChatError('CLOSED', 'connection is not open'));
      this.pending.set(requestId, { resolve, reject });
      this.ws.send(client.ClientFrame.encode({ requestId, ...body }).finish());
    });
  }

  private onFrame(data: Buffer): void {
    let frame: ReturnType<typeof client.ServerFrame.decode>;
    try {
      frame = client.ServerFrame.decode(data);
    } catch (err) {
      // Not a ServerFrame: report it and close; never throw into the socket's handler.
      this.emit('protocolError', new ChatError('MALFORMED_FRAME', `not a ServerFrame: ${(err as Error).message}`));
      this.ws.close(1007, 'malformed ServerFrame');
      return;
    }
    if (frame.reply) {
      const entry = this.pending.get(frame.reply.requestId ?? 0);
      if (!entry) return;
      this.pending.delete(frame.reply.requestId ?? 0);
      const code = frame.reply.code ?? 0;
      if (code === client.ErrorCode.OK) entry.resolve();
      else entry.reject(new ChatError(client.ErrorCode[code] ?? String(code), frame.reply.message ?? ''));
    } else if (frame.delivery) {
      const delivery = frame.delivery as Delivery;
      const key = `${delivery.roomId}/${delivery.senderId}/${messageIdKey(delivery.messageId)}`;
      if (this.seen.has(key)) { this.duplicatesDropped++; return; }
      this.seen.set(key, true);
      this.positions.set(delivery.roomId, { sequencerId: delivery.sequencerId, roomSeq: toNumber(delivery.roomSeq) });
      this.emit('message', delivery);
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
    } else if (frame.error) {
      const code = frame.error.code ?? 0;
      this.emit('protocolError', new ChatError(client.ErrorCode[code] ?? String(code), frame.error.message ?? ''));
    }
  }
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}
