// The user half of the SDK: one WebSocket connection to a gateway speaking
// the protocol of docs/protocol.md. Requests resolve on their Reply; each
// delivered message is emitted once, however often it arrives.
import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import WebSocket from 'ws';
import { client, messageIdKey, type Delivery, type Long } from '../protocol/index.js';

export class ChatError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

export interface ChatClientEvents {
  message: [Delivery];
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

  login(userId: number, displayName = ''): Promise<void> {
    return this.request({ login: { userId, displayName } });
  }

  join(roomId: number): Promise<void> {
    return this.request({ join: { roomId } });
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
    const frame = client.ServerFrame.decode(data);
    if (frame.reply) {
      const entry = this.pending.get(frame.reply.requestId ?? 0);
      if (!entry) return;
      this.pending.delete(frame.reply.requestId ?? 0);
      const code = frame.reply.code ?? 0;
      if (code === client.ErrorCode.OK) entry.resolve();
      else entry.reject(new ChatError(client.ErrorCode[code] ?? String(code), frame.reply.message ?? ''));
    } else if (frame.delivery) {
      const delivery = frame.delivery as Delivery;
      const key = `${delivery.roomId}/${messageIdKey(delivery.messageId)}`;
      if (this.seen.has(key)) { this.duplicatesDropped++; return; }
      this.seen.set(key, true);
      this.emit('message', delivery);
    } else if (frame.error) {
      const code = frame.error.code ?? 0;
      this.emit('protocolError', new ChatError(client.ErrorCode[code] ?? String(code), frame.error.message ?? ''));
    }
  }
}
