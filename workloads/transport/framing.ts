// Peer frames on TCP: each frame is a protobuf varint length followed by that
// many bytes of one PeerFrame (protobuf's "delimited" form), so a batch of
// frames is just their concatenation and one protobufjs Writer builds it.

export class FrameError extends Error {
  constructor(message: string, readonly code: 'FRAME_TOO_LARGE' | 'MALFORMED_LENGTH') {
    super(message);
  }
}

/** Splits a byte stream into frames; never buffers more than one frame's bound. */
export class FrameDecoder {
  private pending: Buffer | null = null;

  constructor(private readonly maxFrameBytes: number) {}

  /** Returns the complete frames in chunk (views into it where possible). Throws FrameError. */
  push(chunk: Buffer): Buffer[] {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
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
        break; // the length itself is split across chunks
      }
      if (length > this.maxFrameBytes) {
        throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`, 'FRAME_TOO_LARGE');
      }
      if (cursor + length > data.length) break;
      frames.push(data.subarray(cursor, cursor + length));
      offset = cursor + length;
    }
    if (offset < data.length) {
      // Copy the tail so the caller's chunk (and frames above) are not pinned.
      this.pending = Buffer.from(data.subarray(offset));
    }
    return frames;
  }
}
