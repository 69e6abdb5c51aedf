// Peer frames on TCP: each frame is a protobuf varint length followed by that
// many bytes of one PeerFrame (protobuf's "delimited" form), so a batch of
// frames is just their concatenation and one protobufjs Writer builds it.

export class FrameError extends Error {
  constructor(message: string, readonly code: 'FRAME_TOO_LARGE' | 'MALFORMED_LENGTH') {
    super(message);
  }
}

/**
 * Splits a byte stream into frames; never buffers more than one frame's bound.
 * A frame that arrives in many reads is joined once, when its last byte is in,
 * so a slow trickle of a large frame costs no more than one copy.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the buffered frame needs in all (0 while its length is not yet known). */
  private needed = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Returns the complete frames in the stream so far (views, not copies). Throws FrameError. */
  push(chunk: Buffer): Buffer[] {
    let data = chunk;
    if (this.chunks.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.needed > 0 && this.buffered < this.needed) return [];
      data = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
      this.needed = 0;
    }
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < data.length) {
      // Varint length: at most 5 bytes for a 32-bit value.
      let length = 0;
      let shift = 0;
      let cursor = offset;
      let complete = false;
      while (cursor < data.length && shift < 35) {
        const byte = data[cursor++]!;
        length += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0) { complete = true; break; }
      }
      if (!complete) {
        if (shift >= 35) throw new FrameError('frame length varint longer than 5 bytes', 'MALFORMED_LENGTH');
        break; // the length itself is split across reads
      }
      if (length > this.maxFrameBytes) {
        throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`, 'FRAME_TOO_LARGE');
      }
      if (cursor + length > data.length) {
        this.needed = cursor + length - offset;
        break;
      }
      frames.push(data.subarray(cursor, cursor + length));
      offset = cursor + length;
    }
    if (offset < data.length) {
      const tail = data.subarray(offset);
      this.chunks = [tail];
      this.buffered = tail.length;
    }
    return frames;
  }
}
