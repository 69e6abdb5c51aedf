// The requests a proxy has sent on and not yet answered, by the correlation
// it gave each: routed to a broker of the room's partition, re-routed when
// the broker says to ask elsewhere or its link goes down, answered NO_ROUTE
// when no broker could take it before its deadline.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { sampledGauge } from '../observability/hot-metrics.js';
import { Long, peer, type PeerFrameInit } from '../protocol/index.js';
import {
  HISTORY_REQUEST_CORRELATION_FIELD, HISTORY_REQUEST_FRAME_TAG, PUBLISH_CORRELATION_FIELD, PUBLISH_FRAME_TAG,
  withCorrelation, type ScannedFields,
} from '../protocol/wire-scan.js';

const ROUTE_RETRY_MS = 50;
/** How long a request may wait for a live broker before NO_ROUTE. */
export const ROUTE_DEADLINE_MS = 5000;

const rerouted = new Counter({ name: 'groupchat_proxy_reroute_total', help: 'Publishes re-sent to another broker replica', registers: [metrics] });
const pendingGauge = sampledGauge({ name: 'groupchat_proxy_pending', help: 'Publishes awaiting a broker ack' });

/** How each kind of request travels: its PeerFrame tag and where its correlation is. */
export const PUBLISH = { frameTag: PUBLISH_FRAME_TAG, correlationField: PUBLISH_CORRELATION_FIELD } as const;
export const HISTORY = { frameTag: HISTORY_REQUEST_FRAME_TAG, correlationField: HISTORY_REQUEST_CORRELATION_FIELD } as const;
export const HEADS = { frameTag: (28 << 3) | 2, correlationField: 1 } as const;

/** Answers that mean "ask again, maybe elsewhere": the partition's leader moved or is being elected. */
const RETRY_STATUSES = new Set<number>([peer.PublishStatus.WRONG_PARTITION, peer.PublishStatus.NOT_LEADER, peer.PublishStatus.UNAVAILABLE]);

/** Where a request came from: a publisher's link. */
export interface Origin {
  send(frame: PeerFrameInit): boolean;
  sendEncoded(bytes: Uint8Array): boolean;
}

export interface Pending<O extends Origin = Origin> {
  origin: O;
  originCorrelation: number;
  roomId: number;
  kind: typeof PUBLISH | typeof HISTORY | typeof HEADS;
  /** The request's message bytes, as the origin sent them; the correlation is appended per hop. */
  request: Uint8Array;
  /** A publish's message id, for a NO_ROUTE answer. */
  idLow: number;
  idHigh: number;
  brokerId: string | null;
  deadline: number;
}

export interface RouteDeps<O extends Origin> {
  /** The broker to send a room's request to now (its partition's leader, else any live replica). */
  target(roomId: number): string | undefined;
  /** Writes a request to that broker's link; false when the link is full. */
  sendTo(brokerId: string, bytes: Uint8Array): boolean;
  now(): number;
  later(run: () => void, delayMs: number): void;
  /** The broker's link is full: stop reading this origin until it drains. */
  backpressure(origin: O): void;
  /** A request is answered with this status (the broker's, or NO_ROUTE). */
  answered(status: number): void;
}

export class PendingRoutes<O extends Origin> {
  private readonly pending = new Map<number, Pending<O>>();
  private nextCorrelation = 1;

  constructor(private readonly deps: RouteDeps<O>) {
    pendingGauge.source = () => this.pending.size;
  }

  get size(): number {
    return this.pending.size;
  }

  accept(origin: O, kind: Pending['kind'], request: Uint8Array, fields: ScannedFields): void {
    const correlation = this.nextCorrelation;
    this.nextCorrelation = this.nextCorrelation >= 0xffffffff ? 1 : this.nextCorrelation + 1;
    const entry: Pending<O> = {
      origin, originCorrelation: fields.correlation, roomId: fields.roomId, kind, request, idLow: fields.idLow, idHigh: fields.idHigh,
      brokerId: null, deadline: this.deps.now() + ROUTE_DEADLINE_MS,
    };
    this.pending.set(correlation, entry);
    this.route(correlation, entry);
  }

  /** The broker's answer for correlation: the entry to answer, or null when it was re-routed (or is unknown). */
  settle(correlation: number, status: number): Pending<O> | null {
    const entry = this.pending.get(correlation);
    if (!entry) return null;
    if (RETRY_STATUSES.has(status) && this.deps.now() < entry.deadline) {
      rerouted.inc();
      this.routeLater(correlation, entry);
      return null;
    }
    this.pending.delete(correlation);
    this.deps.answered(status);
    return entry;
  }

  /** A broker's link went down: what it left unanswered goes to the partition's next target. How many. */
  brokerDown(brokerId: string): number {
    let count = 0;
    for (const [correlation, entry] of this.pending) {
      if (entry.brokerId !== brokerId) continue;
      rerouted.inc();
      count++;
      this.route(correlation, entry);
    }
    return count;
  }

  /** The origin is gone: its answers have nowhere to go. */
  originClosed(origin: O): void {
    for (const [correlation, entry] of this.pending) if (entry.origin === origin) this.pending.delete(correlation);
  }

  private routeLater(correlation: number, entry: Pending<O>): void {
    this.deps.later(() => { if (this.pending.get(correlation) === entry) this.route(correlation, entry); }, ROUTE_RETRY_MS);
  }

  private route(correlation: number, entry: Pending<O>): void {
    const target = this.deps.target(entry.roomId);
    if (target === undefined) {
      entry.brokerId = null;
      if (this.deps.now() > entry.deadline) {
        this.pending.delete(correlation);
        this.deps.answered(peer.PublishStatus.NO_ROUTE);
        entry.origin.send(noRoute(entry));
        return;
      }
      this.routeLater(correlation, entry);
      return;
    }
    entry.brokerId = target;
    if (!this.deps.sendTo(target, withCorrelation(entry.kind.frameTag, entry.request, entry.kind.correlationField, correlation))) {
      this.deps.backpressure(entry.origin);
    }
  }
}

function noRoute(entry: Pending): PeerFrameInit {
  const status = peer.PublishStatus.NO_ROUTE;
  if (entry.kind === PUBLISH) return { publishAck: { messageId: Long.fromBits(entry.idLow, entry.idHigh, true), correlation: entry.originCorrelation, status } };
  if (entry.kind === HEADS) return { headsReply: { correlation: entry.originCorrelation, status } };
  return { historyReply: { correlation: entry.originCorrelation, complete: false, deliveries: [], status } };
}
