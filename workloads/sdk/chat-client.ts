// The user half of the SDK: one WebSocket connection to a gateway speaking
// the protocol of docs/protocol.md. Requests resolve on their Reply; each
// delivered message is emitted once, however often it arrives.
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
  close: [number, string];
}

const DEDUP_ENTRIES = 10_000;

export class ChatClient extends EventEmitter<ChatClientEvents> {
  private nextRequestId = 1;
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private readonly seen = new LRUCache<string, true>({ max: DEDUP_ENTRIES });
  /** Duplicates the SDK dropped (a gateway already dedups; this counts what slipped past). */
  duplicatesDropped = 0;
  /** Last room position seen per room. */
  readonly positions = new Map<number, RoomPosition>();
  /** Last inbox position received. */
  inboxPosition = 0;

  private constructor(private readonly ws: WebSocket) {
    super();
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('close', (code, reason) => {
      for (const { reject } of this.pending.values()) reject(new ChatError('CLOSED', `connection closed (${code} ${reason})`));
      this.pending.clear();
      this.emit('close', code, reason.toString());
    });
  }

  static connect(url: string): Promise<ChatClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('open', () => resolve(new ChatClient(ws)));
      ws.once('error', reject);
    });
  }

  /** token: a signed login token, required when the gateways have a key. */
  login(userId: number, displayName = '', token = ''): Promise<void> {
    return this.request({ login: { userId, displayName, token } });
  }

  /** Joins a room; with `resumeFrom`, first receives what was missed after it. */
  join(roomId: number, resumeFrom?: RoomPosition): Promise<void> {
    return this.request({
      join: { roomId, ...(resumeFrom ? { resumeAfterSeq: resumeFrom.roomSeq, resumeSequencerId: resumeFrom.sequencerId } : {}) },
    });
  }

  /** Sends a one-to-one message; resolves once it is stored durably for the recipient. */
  direct(toUserId: number, payload: Uint8Array, messageId?: Long): Promise<void> {
    return this.request({ direct: { toUserId, payload, ...(messageId ? { messageId } : {}) } });
  }

  /** Acknowledges the inbox up to position: later logins start after it. */
  ackInbox(position = this.inboxPosition): Promise<void> {
    return this.request({ ackInbox: { position } });
  }

  leave(roomId: number): Promise<void> {
    return this.request({ leave: { roomId } });
  }

  /** Resolves once the message is delivered to every online member of the room. */
  send(roomId: number, payload: Uint8Array, messageId?: Long): Promise<void> {
    return this.request({ send: { roomId, payload, ...(messageId ? { messageId } : {}) } });
  }

  /** Sends raw bytes: for tests of the gateway's handling of bad input. */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }

  private request(body: Omit<Parameters<typeof client.ClientFrame.encode>[0], 'requestId'>): Promise<void> {
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
