// The proxy's hot path reads a Publish and a PublishAck without decoding them
// into objects: it needs a few scalar fields, and it passes the message on as
// the bytes it received; a broker writes each PublishAck directly, and wraps
// a RoomDelivery it has encoded once (for its history) as the frame it sends. To give the message its own correlation it appends
// the field again: protobuf takes the last value of a scalar field that occurs
// more than once (a documented rule of the encoding), so the broker and the
// publisher decode the appended one. Whatever these scanners do not recognise
// as a plain, well-formed frame is left to the full decoder.

/** PeerFrame tags (field number << 3 | length-delimited) of the frames scanned here. */
export const PUBLISH_FRAME_TAG = (10 << 3) | 2; // one byte on the wire
export const PUBLISH_ACK_FRAME_TAG = (11 << 3) | 2; // one byte on the wire
export const HISTORY_REQUEST_FRAME_TAG = (25 << 3) | 2; // two bytes on the wire
export const ROOM_DELIVERY_FRAME_TAG = (12 << 3) | 2;
/** Field numbers of `correlation` in Publish, PublishAck and HistoryRequest (peer.proto). */
export const PUBLISH_CORRELATION_FIELD = 6;
export const PUBLISH_ACK_CORRELATION_FIELD = 2;
export const HISTORY_REQUEST_CORRELATION_FIELD = 1;

/** The scalar fields of a Publish or PublishAck, filled in place (no allocation per message). */
export class ScannedFields {
  /** The inner message's bytes: a view of the frame. */
  message: Uint8Array = new Uint8Array(0);
  idLow = 0;
  idHigh = 0;
  roomId = 0;
  correlation = 0;
  status = 0;
  payloadLength = 0;

  reset(): void {
    this.idLow = this.idHigh = this.roomId = this.correlation = this.status = this.payloadLength = 0;
  }
}

let at = 0;

/** A varint of at most 5 bytes (a uint32 or an enum), or -1. Longer ones go to the full decoder. */
function varint32(bytes: Uint8Array, end: number): number {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= end) return -1;
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value > 0xffffffff ? -1 : value;
  }
  return -1;
}

/** Steps over a varint of up to 10 bytes (a 64-bit field this scanner does not read). */
function skipVarint(bytes: Uint8Array, end: number): boolean {
  for (let i = 0; i < 10; i++) {
    if (at >= end) return false;
    if ((bytes[at++]! & 0x80) === 0) return true;
  }
  return false;
}

/**
 * Scans a PeerFrame that is exactly one Publish (frameTag PUBLISH_FRAME_TAG)
 * or PublishAck (PUBLISH_ACK_FRAME_TAG). False: not such a frame, or not one
 * this scanner reads; decode it instead.
 */
export function scanFrame(frame: Uint8Array, frameTag: typeof PUBLISH_FRAME_TAG | typeof PUBLISH_ACK_FRAME_TAG, out: ScannedFields): boolean {
  if (frame[0] !== frameTag) return false;
  at = 1;
  const length = varint32(frame, frame.length);
  if (length < 0 || at + length !== frame.length) return false;
  out.reset();
  out.message = frame.subarray(at);
  const publish = frameTag === PUBLISH_FRAME_TAG;
  const end = frame.length;
  while (at < end) {
    const tag = varint32(frame, end);
    const field = tag >>> 3;
    if (tag < 0 || field === 0) return false; // field number 0 is illegal
    switch (tag & 7) {
      case 0: {
        const room = publish && field === 2;
        const correlation = field === (publish ? PUBLISH_CORRELATION_FIELD : PUBLISH_ACK_CORRELATION_FIELD);
        const status = !publish && field === 3;
        if (!room && !correlation && !status) {
          if (!skipVarint(frame, end)) return false;
          break;
        }
        const value = varint32(frame, end);
        if (value < 0) return false;
        if (room) out.roomId = value;
        else if (correlation) out.correlation = value;
        else out.status = value;
        break;
      }
      case 1:
        if (at + 8 > end) return false;
        if (field === 1) {
          out.idLow = (frame[at]! | (frame[at + 1]! << 8) | (frame[at + 2]! << 16) | (frame[at + 3]! << 24)) >>> 0;
          out.idHigh = (frame[at + 4]! | (frame[at + 5]! << 8) | (frame[at + 6]! << 16) | (frame[at + 7]! << 24)) >>> 0;
        }
        at += 8;
        break;
      case 2: {
        const size = varint32(frame, end);
        if (size < 0 || at + size > end) return false;
        if (publish && field === 4) out.payloadLength = size;
        at += size;
        break;
      }
      case 5:
        if (at + 4 > end) return false;
        at += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

function writeVarint(into: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    into[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  into[offset++] = value;
  return offset;
}

/** A PeerFrame holding message, already encoded, under frameTag. */
export function framed(frameTag: number, message: Uint8Array): Uint8Array {
  const frame = Buffer.allocUnsafe(varintLength(frameTag) + varintLength(message.length) + message.length);
  const offset = writeVarint(frame, writeVarint(frame, 0, frameTag), message.length);
  frame.set(message, offset);
  return frame;
}

/** A PeerFrame holding message (under frameTag) with its correlation field set to correlation. */
export function withCorrelation(frameTag: number, message: Uint8Array, correlationField: number, correlation: number): Uint8Array {
  const inner = message.length + 1 + varintLength(correlation);
  const frame = Buffer.allocUnsafe(varintLength(frameTag) + varintLength(inner) + inner);
  let offset = writeVarint(frame, 0, frameTag);
  offset = writeVarint(frame, offset, inner);
  frame.set(message, offset);
  offset += message.length;
  frame[offset++] = correlationField << 3;
  writeVarint(frame, offset, correlation);
  return frame;
}

/** A PeerFrame holding PublishAck { message_id, correlation, status } (a zero status is left out, as proto3 does). */
export function encodePublishAck(idLow: number, idHigh: number, correlation: number, status: number): Uint8Array {
  const inner = 9 + 1 + varintLength(correlation >>> 0) + (status === 0 ? 0 : 1 + varintLength(status));
  const frame = Buffer.allocUnsafe(2 + inner);
  frame[0] = PUBLISH_ACK_FRAME_TAG;
  frame[1] = inner; // at most 9 + 1 + 5 + 1 + 5 bytes: one varint byte
  frame[2] = (1 << 3) | 1;
  frame.writeUInt32LE(idLow >>> 0, 3);
  frame.writeUInt32LE(idHigh >>> 0, 7);
  frame[11] = PUBLISH_ACK_CORRELATION_FIELD << 3;
  let offset = writeVarint(frame, 12, correlation >>> 0);
  if (status !== 0) {
    frame[offset++] = 3 << 3;
    offset = writeVarint(frame, offset, status);
  }
  return frame;
}
