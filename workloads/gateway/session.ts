// A user's connection to this gateway and what the gateway keeps for it.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { LoginClaims } from '../auth/tokens.js';
import type { ClientFrame } from '../protocol/index.js';

/** What the gateway needs of a user's connection; WsConnection is the real one. */
export interface ClientConnection {
  readonly open: boolean;
  /** Bytes handed to the TCP socket and not yet sent. */
  readonly unsentBytes: number;
  /** Writes bytes that are already WebSocket frames (websocket-frame.ts). */
  writeFramed(data: Buffer): void;
  /** Sends one last binary message (an Error frame), then the close. */
  sendAndClose(message: Uint8Array, closeCode: number, reason: string): void;
  /** Stops reading the connection (TCP backpressure) until resume(). */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
}

/**
 * A ws WebSocket with the TCP socket under it. The gateway frames a delivery
 * once for all its members and writes those bytes to each socket (ws's send()
 * would frame them again per member). The socket is the one the HTTP
 * server's 'upgrade' event handed over: ws keeps its own only in a private field.
 */
export class WsConnection implements ClientConnection {
  constructor(private readonly ws: WebSocket, private readonly socket: Socket) {}
  get open(): boolean { return this.ws.readyState === this.ws.OPEN; }
  get unsentBytes(): number { return this.socket.writableLength; }
  writeFramed(data: Buffer): void { this.socket.write(data); }
  sendAndClose(message: Uint8Array, closeCode: number, reason: string): void {
    this.ws.send(message);
    this.ws.close(closeCode, reason);
  }
  pause(): void { this.ws.pause(); }
  resume(): void { this.ws.resume(); }
  get paused(): boolean { return this.ws.isPaused; }
}

export class Session {
  displayName = '';
  loggingIn = false;
  /** Frames that arrived while the login was being verified, handled after it. */
  readonly early: ClientFrame[] = [];
  claims: LoginClaims | null = null;
  readonly rooms = new Set<number>();
  /** Frames of this event-loop turn, written together at its end (outboxes.ts). */
  readonly outbox: Buffer[] = [];
  /** Last inbox position delivered on this connection. */
  inboxPosition = 0;
  /** Rooms being resumed: live deliveries wait here until the missed ones are sent. */
  readonly resuming = new Map<number, Array<{ key: string; frame: Buffer }>>();
  constructor(readonly connection: ClientConnection, public userId = 0) {}
  get loggedIn(): boolean { return this.userId !== 0; }
}
