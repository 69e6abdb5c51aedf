// A hand-driven peer for tests of bad input: a plain TCP socket that writes
// whatever bytes a test gives it and records, decoded, every PeerFrame the
// other side sends back until the connection closes.
import net from 'node:net';
import { decodePeerFrame, peer, PEER_PROTOCOL_VERSION, type PeerFrame, type PeerFrameInit } from '../../workloads/protocol/index.js';
import { FrameDecoder, FrameError } from '../../workloads/transport/framing.js';

export interface RawPeerOutcome {
  /** Every frame received, in order (the remote's Hello first). */
  frames: PeerFrame[];
  /** The PeerError frame received, if any. */
  peerError: { code: number; message: string } | null;
  /** The socket error, if the connection ended with one (e.g. ECONNRESET). */
  socketError: Error | null;
  /** What the remote sent that is not valid framing (should never happen). */
  undecodable: Error | null;
}

/** Encodes one PeerFrame in its on-the-wire (delimited) form. */
export function encodeFrame(frame: PeerFrameInit): Buffer {
  return Buffer.from(peer.PeerFrame.encodeDelimited(frame).finish());
}

/** A protobuf varint, as the framing's length prefix. */
export function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

export function helloFrame(role = 'test', memberId = `raw-${process.pid}-${Math.random().toString(16).slice(2, 8)}`): Buffer {
  return encodeFrame({ hello: { memberId, role, protocolVersion: PEER_PROTOCOL_VERSION } });
}

export class RawPeer {
  readonly frames: PeerFrame[] = [];
  private readonly decoder = new FrameDecoder(16 << 20);
  private undecodable: Error | null = null;
  private socketError: Error | null = null;
  private readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const bytes of this.decoder.push(chunk)) this.frames.push(decodePeerFrame(bytes));
      } catch (err) {
        this.undecodable ??= err instanceof FrameError || err instanceof Error ? err : new Error(String(err));
      }
    });
    socket.on('error', (err) => { this.socketError ??= err; });
    this.closed = new Promise((resolve) => socket.once('close', () => { this.isClosed = true; resolve(); }));
  }

  static connect(address: string): Promise<RawPeer> {
    const at = address.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
      socket.once('connect', () => { socket.off('error', reject); resolve(new RawPeer(socket)); });
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Waits for the remote to close; rejects if it has not within boundMs (a hang). */
  async outcome(boundMs = 10_000): Promise<RawPeerOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection still open after ${boundMs} ms; frames: ${this.frames.map((f) => f.body).join(',')}`)), boundMs);
    });
    try {
      await Promise.race([this.closed, bound]);
    } finally {
      clearTimeout(timer);
      this.socket.destroy();
    }
    const error = this.frames.find((f) => f.body === 'error');
    return {
      frames: this.frames,
      peerError: error?.body === 'error' ? { code: error.error.code, message: error.error.message } : null,
      socketError: this.socketError,
      undecodable: this.undecodable,
    };
  }

  destroy(): void {
    this.socket.destroy();
  }
}
