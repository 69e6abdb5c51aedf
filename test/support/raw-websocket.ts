// A hand-driven WebSocket client over a plain TCP socket, for tests that
// must control how frames meet the wire (several in one TCP write), which a
// WebSocket library decides for itself. It records the gateway's binary
// messages and its close code.
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export class RawWebSocket {
  readonly messages: Buffer[] = [];
  closeCode = 0;
  closed = false;
  private pending = Buffer.alloc(0);

  private constructor(private readonly socket: net.Socket, rest: Buffer) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => undefined); // the close that follows is what counts
    socket.on('close', () => { this.closed = true; });
    if (rest.length > 0) this.receive(rest);
  }

  /** Connects and completes the opening handshake (RFC 6455 §4.1). */
  static connect(url: string): Promise<RawWebSocket> {
    const { hostname, port, pathname } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: hostname, port: Number(port) });
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        if (!status.includes(' 101 ')) return reject(new Error(`handshake refused: ${status}`));
        resolve(new RawWebSocket(socket, head.subarray(end + 4)));
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('connect', () => socket.write([
        `GET ${pathname} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', '',
      ].join('\r\n')));
    });
  }

  /** One binary client frame, masked with a zero key: a client must mask, and a zero key leaves the bytes as they are. */
  static frame(payload: Uint8Array): Buffer {
    const length = payload.length < 126 ? Buffer.from([0x80 | payload.length])
      : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    return Buffer.concat([Buffer.from([0x82]), length, Buffer.alloc(4), payload]);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Server frames are unmasked: opcode, length (7, 16 or 64 bits), payload. */
  private receive(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      if (this.pending.length < 2) return;
      const opcode = this.pending[0]! & 0x0f;
      let length = this.pending[1]! & 0x7f;
      let start = 2;
      if (length === 126) { if (this.pending.length < 4) return; length = this.pending.readUInt16BE(2); start = 4; }
      if (length === 127) { if (this.pending.length < 10) return; length = Number(this.pending.readBigUInt64BE(2)); start = 10; }
      if (this.pending.length < start + length) return;
      const payload = this.pending.subarray(start, start + length);
      this.pending = this.pending.subarray(start + length);
      if (opcode === 0x2) this.messages.push(Buffer.from(payload));
      if (opcode === 0x8) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    }
  }
}
