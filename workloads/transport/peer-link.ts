// One TCP connection between two roles. It owns the hot-path concerns of the
// internal transport: batched writes (every frame queued in one event-loop
// turn leaves in one write), heartbeats with a receive timeout (a hung peer is
// dropped within timeoutMs, without waiting for the registry), and a bounded
// outbound queue that reports back-pressure instead of growing.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { decodePeerFrame, peer, Writer, type PeerFrame, type PeerFrameInit, PEER_PROTOCOL_VERSION } from '../protocol/index.js';
import { FrameDecoder, FrameError } from './framing.js';
import { peerSecret, secretMatches } from './peer-secret.js';

export interface LinkOptions {
  /** Largest frame accepted or sent. */
  maxFrameBytes: number;
  /** Above this many queued bytes, send() returns false and 'drain' follows. */
  highWaterBytes: number;
  /** Above this many queued bytes the link is closed: the peer is not reading. */
  maxQueuedBytes: number;
  heartbeatMs: number;
  timeoutMs: number;
}

export const DEFAULT_LINK_OPTIONS: LinkOptions = {
  maxFrameBytes: 1 << 20,
  highWaterBytes: 4 << 20,
  maxQueuedBytes: 64 << 20,
  heartbeatMs: 250,
  timeoutMs: 1000,
};

export interface PeerIdentity {
  memberId: string;
  role: string;
}

export interface PeerLinkEvents {
  frame: [PeerFrame];
  hello: [PeerIdentity];
  drain: [];
  close: [Error | undefined];
}

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  remote: PeerIdentity | null = null;
  closed = false;
  /**
   * A role's hot path may take frames as bytes (after the Hello): it returns
   * true for a frame it handled, false to have the link decode it as usual.
   */
  rawFrames: ((bytes: Buffer) => boolean) | null = null;
  private readonly decoder: FrameDecoder;
  private batch: ReturnType<typeof Writer.create> | null = null;
  private batchBytes = 0;
  private flushScheduled = false;
  private lastReceived = Date.now();
  /** The Hello must complete by then, however many bytes arrive before it. */
  private readonly helloDeadline: number;
  private lastSent = Date.now();
  private readonly timer: NodeJS.Timeout;
  private wantDrain = false;
  private heartbeatNonce = 0;

  constructor(
    readonly socket: Socket,
    private readonly self: PeerIdentity,
    readonly options: LinkOptions = DEFAULT_LINK_OPTIONS,
    /** True on the dialing side (PeerClient), false where a server accepted the socket. */
    private readonly initiator = true,
  ) {
    super();
    this.decoder = new FrameDecoder(options.maxFrameBytes);
    this.helloDeadline = Date.now() + options.timeoutMs;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.maybeDrain());
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close());
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(options.heartbeatMs / 2)));
    this.timer.unref();
    // The dialing side speaks first; the accepting side answers only a Hello
    // that proved the secret, so it never hands the secret to a stranger.
    if (initiator) this.sayHello();
  }

  private sayHello(): void {
    const { memberId, role } = this.self;
    this.send({ hello: { memberId, role, protocolVersion: PEER_PROTOCOL_VERSION, secret: peerSecret() ?? new Uint8Array() } });
  }

  /** Queues a frame; false means the queue is above its high-water mark (wait for 'drain'). */
  send(frame: PeerFrameInit): boolean {
    if (this.closed) return false;
    const writer = this.writer();
    const before = writer.len;
    peer.PeerFrame.encodeDelimited(frame, writer);
    return this.queued(writer.len - before);
  }

  /** Queues a frame already encoded with PeerFrame.encode (encode once, send to many). */
  sendEncoded(body: Uint8Array): boolean {
    if (this.closed) return false;
    if (body.length > this.options.maxFrameBytes) {
      throw new FrameError(`frame of ${body.length} bytes exceeds the limit of ${this.options.maxFrameBytes}`, 'FRAME_TOO_LARGE');
    }
    const writer = this.writer();
    const before = writer.len;
    writer.bytes(body);
    return this.queued(writer.len - before);
  }

  get queuedBytes(): number {
    return this.batchBytes + this.socket.writableLength;
  }

  get congested(): boolean {
    return this.queuedBytes > this.options.highWaterBytes;
  }

  /** Sends a PeerError, then closes once it is written. */
  fail(code: number, message: string): void {
    if (this.closed) return;
    this.send({ error: { code, message } });
    this.flush();
    this.finish(new Error(message), true);
  }

  close(err?: Error): void {
    this.finish(err, false);
  }

  /**
   * linger: half-close and keep reading (and discarding) until the peer closes
   * or the timeout, so the PeerError is not lost to a reset by unread input.
   */
  private finish(err: Error | undefined, linger: boolean): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.batch = null;
    if (linger) {
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), this.options.timeoutMs);
      timer.unref();
      this.socket.once('close', () => clearTimeout(timer));
    } else {
      this.socket.destroy();
    }
    this.emit('close', err);
  }

  private writer(): ReturnType<typeof Writer.create> {
    if (!this.batch) this.batch = Writer.create();
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return this.batch;
  }

  private queued(bytes: number): boolean {
    this.batchBytes += bytes;
    const total = this.queuedBytes;
    if (total > this.options.maxQueuedBytes) {
      this.close(new Error(`peer ${this.describe()} is not reading: ${total} bytes queued`));
      return false;
    }
    if (total > this.options.highWaterBytes) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    if (!batch || this.closed) return;
    this.batch = null;
    this.batchBytes = 0;
    this.lastSent = Date.now();
    this.socket.write(batch.finish());
    this.maybeDrain();
  }

  private maybeDrain(): void {
    if (this.wantDrain && this.queuedBytes <= this.options.highWaterBytes) {
      this.wantDrain = false;
      this.emit('drain');
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return; // a failed link drains its input unread
    this.lastReceived = Date.now();
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(1, (err as Error).message);
      return;
    }
    for (const bytes of frames) {
      if (this.closed) return;
      if (this.remote && this.rawFrames?.(bytes)) continue;
      let frame: PeerFrame;
      try {
        frame = decodePeerFrame(bytes);
      } catch (err) {
        this.fail(2, `malformed peer frame: ${(err as Error).message}`);
        return;
      }
      if (!this.remote) {
        if (frame.body !== 'hello' || !frame.hello?.memberId || !frame.hello.role) {
          this.fail(3, 'the first frame on a link must be a Hello with member id and role');
          return;
        }
        if (frame.hello.protocolVersion !== PEER_PROTOCOL_VERSION) {
          this.fail(4, `peer protocol version ${frame.hello.protocolVersion} is not ${PEER_PROTOCOL_VERSION}`);
          return;
        }
        if (!secretMatches(frame.hello.secret ?? new Uint8Array())) {
          this.fail(6, 'the Hello does not carry this cluster\'s peer secret');
          return;
        }
        this.remote = { memberId: frame.hello.memberId, role: frame.hello.role };
        if (!this.initiator) this.sayHello();
        this.emit('hello', this.remote);
        continue;
      }
      if (frame.body === 'heartbeat') continue;
      if (frame.body === 'error') {
        this.close(new Error(`peer ${this.describe()} reported error ${frame.error?.code}: ${frame.error?.message}`));
        return;
      }
      if (frame.body === undefined) {
        this.fail(5, 'peer frame without a body (unknown or wrong-type frame)');
        return;
      }
      this.emit('frame', frame);
    }
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastReceived > this.options.timeoutMs) {
      this.close(new Error(`peer ${this.describe()} silent for ${now - this.lastReceived} ms`));
      return;
    }
    if (!this.remote && now > this.helloDeadline) {
      this.fail(3, `no Hello within ${this.options.timeoutMs} ms`);
      return;
    }
    if (now - this.lastSent >= this.options.heartbeatMs && (this.initiator || this.remote)) {
      this.send({ heartbeat: { nonce: ++this.heartbeatNonce } });
    }
  }

  describe(): string {
    return this.remote ? `${this.remote.role}/${this.remote.memberId}` : `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }
}
