// Fixed-width big-endian key parts, so RocksDB's byte order is numeric order.
import { Long } from '../protocol/index.js';

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export function long64(id: Long | number): Buffer {
  const v = typeof id === 'number' ? Long.fromNumber(id, true) : id;
  const b = Buffer.alloc(8);
  b.writeUInt32BE(v.high >>> 0, 0);
  b.writeUInt32BE(v.low >>> 0, 4);
  return b;
}

export function readLong64(b: Buffer, offset = 0): Long {
  return Long.fromBits(b.readUInt32BE(offset + 4), b.readUInt32BE(offset), true);
}

export function readU64(b: Buffer, offset = 0): number {
  return Number(b.readBigUInt64BE(offset));
}

export function key(prefix: string, ...parts: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from(prefix), ...parts]);
}
