// Snowflake ids: 41 bits of milliseconds since GROUPCHAT_EPOCH_MS, 10 bits of
// worker id, 12 bits of sequence. The worker id is derived from the role and
// the replica ordinal (workerIdFor), so no two processes of a cluster share one.
import { Long } from '../protocol/index.js';

export const GROUPCHAT_EPOCH_MS = Date.UTC(2026, 0, 1);
const SEQUENCE_BITS = 12;
const WORKER_BITS = 10;
const MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1;
export const MAX_WORKER_ID = (1 << WORKER_BITS) - 1;

/** Role codes occupy the top 3 bits of a worker id; the ordinal the low 7. */
const ROLE_CODES: Record<string, number> = {
  client: 0, proxy: 1, broker: 2, router: 3, gateway: 4, pi: 5, xiu: 6, relay: 7,
};
export const MAX_ORDINAL = 127;

export function workerIdFor(role: string, ordinal: number): number {
  const code = ROLE_CODES[role];
  if (code === undefined) throw new Error(`no worker id space for role "${role}"`);
  if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal > MAX_ORDINAL) {
    throw new Error(`ordinal ${ordinal} out of range 0..${MAX_ORDINAL} for a worker id`);
  }
  return (code << 7) | ordinal;
}

export class Snowflake {
  private lastMs = -1;
  private sequence = 0;

  constructor(private readonly workerId: number, private readonly now: () => number = Date.now) {
    if (!Number.isInteger(workerId) || workerId < 0 || workerId > MAX_WORKER_ID) {
      throw new Error(`worker id ${workerId} out of range 0..${MAX_WORKER_ID}`);
    }
  }

  next(): Long {
    let ms = this.now() - GROUPCHAT_EPOCH_MS;
    if (ms < this.lastMs) ms = this.lastMs; // the clock stepped back: never reuse an id
    if (ms === this.lastMs) {
      this.sequence = (this.sequence + 1) & MAX_SEQUENCE;
      if (this.sequence === 0) ms = ++this.lastMs; // 4096 ids in this ms: borrow the next one
    } else {
      this.sequence = 0;
    }
    this.lastMs = ms;
    // value = ms << 22 | worker << 12 | sequence, split into 32-bit halves.
    const high = Math.floor(ms / 1024);
    const low = (((ms % 1024) << 22) | (this.workerId << SEQUENCE_BITS) | this.sequence) >>> 0;
    return Long.fromBits(low, high >>> 0, true);
  }
}

export function decodeSnowflake(id: Long): { timestampMs: number; workerId: number; sequence: number } {
  const value = Long.fromBits(id.low, id.high, true);
  return {
    timestampMs: value.shiftRightUnsigned(22).toNumber() + GROUPCHAT_EPOCH_MS,
    workerId: value.shiftRightUnsigned(SEQUENCE_BITS).toNumber() & MAX_WORKER_ID,
    sequence: value.low & MAX_SEQUENCE,
  };
}
