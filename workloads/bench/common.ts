// What the bench's coordinator and its load workers share: the clock, the
// payload layout, the message schedule and the IPC messages between them.
import hdr from 'hdr-histogram-js';

import type { PeerName } from './peers.js';

/** The peers `--compare` can put beside groupchat. */
export { PEERS, type PeerName } from './peers.js';
export type SystemName = 'groupchat' | PeerName;
export const SCENARIOS = ['fanout', 'broadcast', 'direct', 'connect', 'idle', 'ingest'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

// A monotonic clock in microseconds that agrees across processes on one
// machine (CLOCK_MONOTONIC via hrtime), read cheaply through performance.now().
const monoBaseUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
export function nowUs(): number {
  return monoBaseUs + performance.now() * 1000;
}

/** The payload's message number that marks a warm-up (membership barrier) message. */
export const WARMUP = 0xffffffff;
/** Bytes at the start of every binary payload: message number (u32 LE), send time in µs (f64 LE). */
export const PAYLOAD_HEADER = 12;

/** The groupchat payload: header, then filler to payloadBytes. */
export function binaryPayload(g: number, sentUs: number, payloadBytes: number, filler: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(Math.max(PAYLOAD_HEADER, payloadBytes));
  buf.writeUInt32LE(g >>> 0, 0);
  buf.writeDoubleLE(sentUs, 4);
  filler.copy(buf, PAYLOAD_HEADER, 0, buf.length - PAYLOAD_HEADER);
  return buf;
}

/** The Socket.IO and Centrifugo payload, in their idiomatic JSON form: [message number, send time µs, text]. */
export type JsonPayload = [number, number, string];

export function fillerText(payloadBytes: number): string {
  return 'x'.repeat(Math.max(0, payloadBytes - PAYLOAD_HEADER));
}

/**
 * The schedule: publisher worker w of P sends message numbers g = k * P + w
 * for k = 0, 1, ...; message g goes to rooms[g % rooms.length]. Knowing each
 * worker's count is then enough to know what every room should have got.
 */
export interface PublishedSummary {
  publishers: number;
  /** Messages each publisher worker sent (k < counts[w]). */
  counts: number[];
  /** Message numbers that were sent but never acknowledged (not expected). */
  failed: number[];
  rooms: number[];
}

export function messageSpace(s: PublishedSummary): number {
  let max = 0;
  s.counts.forEach((n, w) => { if (n > 0) max = Math.max(max, (n - 1) * s.publishers + w + 1); });
  return max;
}

/** Acknowledged messages per room id. */
export function expectedPerRoom(s: PublishedSummary): Map<number, number> {
  const byIndex = new Float64Array(s.rooms.length);
  s.counts.forEach((n, w) => {
    for (let k = 0; k < n; k++) byIndex[(k * s.publishers + w) % s.rooms.length]!++;
  });
  for (const g of s.failed) byIndex[g % s.rooms.length]!--;
  const result = new Map<number, number>();
  s.rooms.forEach((room, i) => result.set(room, (result.get(room) ?? 0) + byIndex[i]!));
  return result;
}

export function newHistogram() {
  // Microseconds, from 1 µs to 10 minutes, 3 significant digits.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}
export type Histogram = ReturnType<typeof newHistogram>;

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s, 32, false) as Histogram;
}

export interface LatencySummary { p50: number; p99: number; max: number; count: number }

export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  return h.totalCount === 0
    ? { p50: 0, p99: 0, max: 0, count: 0 }
    : { p50: ms(h.getValueAtPercentile(50)), p99: ms(h.getValueAtPercentile(99)), max: ms(h.maxValue), count: h.totalCount };
}

// ---- the Centrifugo peer's names and credentials ----

/**
 * What the Centrifugo peer's clients need: the HMAC secret its connection
 * tokens are signed with, and the key of its server HTTP API (made anew for
 * each run).
 */
export interface CentrifugoAccess { tokenSecret: string; apiKey: string }

/** The Centrifugo channel of a room. */
export function roomChannel(room: number): string {
  return `r${room}`;
}

/** A user's personal channel: user-limited (`#`), so only that user may subscribe to it. */
export function personalChannel(userId: number): string {
  return `u#${userId}`;
}

// ---- IPC between the coordinator and a load worker ----

/** inbox: rooms are one-to-one conversations (audit labels), not joined; messages come one-to-one. */
export interface UserSpec { id: number; url: string; rooms: number[]; inbox?: boolean }

/** One-to-one sending: conversation rooms[i] is written by senders[i] to recipients[i]. */
export interface DirectPlan { senders: UserSpec[]; recipients: number[] }

export type ToWorker =
  | { type: 'users'; system: SystemName; access: CentrifugoAccess | null; users: UserSpec[]; concurrency: number; localAddresses: string[]; storm: boolean }
  | { type: 'warmup'; system: SystemName; access: CentrifugoAccess | null; targets: string[]; rooms: number[]; direct: DirectPlan | null }
  | {
    type: 'publish'; system: SystemName; access: CentrifugoAccess | null; targets: string[]; rooms: number[]; worker: number; publishers: number;
    durationMs: number; rate: number | null; window: number; maxMessages: number; payloadBytes: number; raw: boolean;
    direct: DirectPlan | null;
  }
  | { type: 'refs'; rooms: Array<{ room: number; user: number }> }
  | { type: 'audit'; refs: Array<[number, Uint32Array]>; summary: PublishedSummary }
  | { type: 'closeUsers' }
  | { type: 'exit' };

export interface AuditResult {
  delivered: number; uniqueExpected: number; lost: number; duplicated: number; reordered: number; unexpected: number;
  /** (user, room) pairs that missed something, and a few of the missed message numbers. */
  pairsWithLoss: number; lostSample: number[];
}

export type FromWorker =
  | { type: 'progress'; connected: number; failedConnects: number; delivered: number; warmed: number; published: number; acked: number; lastDeliveryUs: number }
  | { type: 'usersReady'; connected: number; failedConnects: number; firstStartUs: number; lastDoneUs: number; connectHistogram: string; errors: string[] }
  | { type: 'published'; worker: number; count: number; failed: number[]; startUs: number; endUs: number; ackHistogram: string; errors: string[] }
  | { type: 'refs'; refs: Array<[number, Uint32Array]> }
  | { type: 'audited'; result: AuditResult; histogram: string; lastDeliveryUs: number }
  | { type: 'closed' }
  | { type: 'error'; message: string };
