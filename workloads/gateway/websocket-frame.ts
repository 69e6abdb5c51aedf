// The gateway frames what it sends users itself: a server's frames are never
// masked (RFC 6455 section 5.1), so a delivery is framed once and the same
// bytes go to every member, instead of `ws` framing it again per socket.

/** One final binary WebSocket frame holding body. */
export function binaryFrame(body: Uint8Array): Buffer {
  const length = body.length;
  const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x82; // FIN, opcode 2 (binary)
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.set(body, header);
  return frame;
}
