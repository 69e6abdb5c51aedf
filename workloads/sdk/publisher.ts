// The publishing half of the SDK, used by application backends and by the
// gateway for its users' messages. Each message gets a Snowflake id and goes
// to one proxy, or with redundancy k to k different proxies at once (the
// seed's send-to-three for critical messages); the first DELIVERED ack
// resolves it, and the id makes every copy and every retry harmless.
import { EventEmitter } from 'node:events';
import { Fifo } from '../collections/fifo.js';
import { Snowflake } from '../ids/snowflake.js';
import { Long, peer, type PeerFrame, type PeerFrameInit } from '../protocol/index.js';
import type { LinkOptions, PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { DEFAULT_LINK_OPTIONS } from '../transport/peer-link.js';
import { PeerPool, type Dialable } from '../transport/peer-pool.js';

export interface PublisherOptions {
  proxies: string[];
  /** Worker id for message ids; see workerIdFor(). */
  workerId: number;
  /** Copies sent to distinct proxies (1 = none). */
  redundancy?: number;
  /** Give up on a message after this long. */
  timeoutMs?: number;
  /** At most this many unacknowledged messages; publish() waits beyond it. */
  maxInFlight?: number;
  identity?: PeerIdentity;
  linkOptions?: LinkOptions;
}

export interface PublishRequest {
  roomId: number;
  payload: Uint8Array;
  senderId?: number;
  /** Supply to make a retry of your own idempotent; otherwise one is made. */
  messageId?: Long;
  /** Critical messages overtake queued chat traffic on the way to gateways. */
  critical?: boolean;
}

export interface PublishResult {
  messageId: Long;
  status: 'delivered';
}

export type HistoryReply = Extract<PeerFrame, { body: 'historyReply' }>['historyReply'];
export type HeadsReply = Extract<PeerFrame, { body: 'headsReply' }>['headsReply'];

/** One page of a room's history: after a position (oldest first), or backwards before one. */
export interface HistoryQuery {
  afterSeq?: number;
  /** Non-zero: the newest messages before this room_seq instead. */
  beforeSeq?: number;
  /** At most this many (the broker's maximum is 1000). */
  limit?: number;
  /** The sequencer_id the position came from (1 for every durable room; 0: unknown). */
  sequencerId?: number;
}

type Reply = HistoryReply | HeadsReply;

export class PublishError extends Error {
  constructor(message: string, readonly status: string, readonly messageId: Long) {
    super(message);
  }
}

interface InFlight {
  frame: PeerFrameInit;
  copiesOn: Set<string>;
  resolve: (result: PublishResult) => void;
  reject: (err: Error) => void;
  messageId: Long;
  deadline: number;
  lastStatus: string;
}

const RETRY_MS = 100;

export class Publisher extends EventEmitter {
  private readonly pool: PeerPool<Dialable>;
  private readonly ids: Snowflake;
  private readonly inFlight = new Map<number, InFlight>();
  /** History and heads requests awaiting their reply, by correlation. */
  private readonly requests = new Map<number, { frame: PeerFrameInit; proxyId: string | null; resolve: (reply: Reply) => void }>();
  private readonly waiting = new Fifo<() => void>();
  private nextCorrelation = 1;
  private rotation = 0;
  /** Proxies whose link is up, in the order they came up. */
  private live: string[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private readonly redundancy: number;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;

  constructor(options: PublisherOptions) {
    super();
    this.redundancy = Math.max(1, options.redundancy ?? 1);
    this.timeoutMs = options.timeoutMs ?? 15000;
    this.maxInFlight = options.maxInFlight ?? 10000;
    this.ids = new Snowflake(options.workerId);
    this.pool = new PeerPool<Dialable>(options.identity ?? { memberId: `publisher-${process.pid}-${options.workerId}`, role: 'client' }, options.linkOptions ?? DEFAULT_LINK_OPTIONS);
    this.pool.on('up', (proxy, link) => {
      this.live = [...this.live.filter((id) => id !== proxy.id), proxy.id];
      this.onUp(proxy, link);
    });
    this.pool.on('down', (proxy) => {
      this.live = this.live.filter((id) => id !== proxy.id);
      this.onDown(proxy.id);
    });
    this.pool.on('removed', (proxy) => { this.live = this.live.filter((id) => id !== proxy.id); });
    // One sweep for every deadline, rather than a timer per message.
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [correlation, entry] of this.inFlight) {
        if (entry.deadline <= now) {
          this.settle(correlation, new PublishError(`message not acknowledged within ${this.timeoutMs} ms (last status: ${entry.lastStatus})`, 'TIMEOUT', entry.messageId));
        }
      }
    }, Math.min(250, this.timeoutMs));
    this.sweeper.unref();
    this.setProxies(options.proxies);
  }

  /** Replaces the proxies (e.g. when the registry changes). */
  setProxies(addresses: readonly string[]): void {
    this.pool.sync(addresses.map((address) => ({ id: address, address })));
  }

  get connectedProxies(): number {
    return this.live.length;
  }

  get pending(): number {
    return this.inFlight.size;
  }

  newMessageId(): Long {
    return this.ids.next();
  }

  async publish(request: PublishRequest): Promise<PublishResult> {
    while (this.inFlight.size >= this.maxInFlight) await new Promise<void>((resolve) => this.waiting.push(resolve));
    const messageId = request.messageId ?? this.ids.next();
    const correlation = this.nextCorrelation;
    this.nextCorrelation = this.nextCorrelation >= 0xffffffff ? 1 : this.nextCorrelation + 1;
    return new Promise<PublishResult>((resolve, reject) => {
      const frame: PeerFrameInit = {
        publish: {
          messageId, roomId: request.roomId, senderId: request.senderId ?? 0,
          payload: request.payload, sentAtMs: Date.now(), correlation,
          priority: request.critical ? peer.Priority.CRITICAL : peer.Priority.NORMAL,
        },
      };
      const entry: InFlight = { frame, copiesOn: new Set(), resolve, reject, messageId, deadline: Date.now() + this.timeoutMs, lastStatus: 'none' };
      this.inFlight.set(correlation, entry);
      this.dispatch(correlation, entry);
    });
  }

  /**
   * One page of a room's stored history, from the leader of its partition.
   * Past the publisher's timeout it answers NO_ROUTE and empty rather than hang.
   */
  history(roomId: number, query: HistoryQuery = {}): Promise<HistoryReply> {
    return this.request((correlation) => ({
      historyRequest: {
        correlation, roomId, sequencerId: query.sequencerId ?? 0, afterSeq: query.afterSeq ?? 0,
        beforeSeq: query.beforeSeq ?? 0, limit: query.limit ?? 0,
      },
    }), (correlation) => ({ correlation, complete: false, deliveries: [], status: peer.PublishStatus.NO_ROUTE, headSeq: Long.UZERO, firstSeq: Long.UZERO })) as Promise<HistoryReply>;
  }

  /**
   * Everything a room stored after afterSeq, page by page, up to max messages
   * (complete is false when retention removed some, or more than max are there).
   */
  async historySince(roomId: number, sequencerId: number, afterSeq: number, max = 10_000): Promise<HistoryReply> {
    let reply = await this.history(roomId, { sequencerId, afterSeq });
    const deliveries = [...reply.deliveries];
    let complete = reply.complete;
    while (reply.status === peer.PublishStatus.DELIVERED && deliveries.length > 0 && deliveries.length < max) {
      const last = deliveries[deliveries.length - 1]!.roomSeq.toNumber();
      if (last >= reply.headSeq.toNumber()) break;
      reply = await this.history(roomId, { sequencerId: 1, afterSeq: last, limit: Math.min(1000, max - deliveries.length) });
      deliveries.push(...reply.deliveries);
      complete &&= reply.complete;
    }
    const reachedHead = deliveries.length === 0 || deliveries[deliveries.length - 1]!.roomSeq.toNumber() >= reply.headSeq.toNumber();
    // Spelled out: a decoded message keeps its default-valued fields on its prototype, where a spread does not look.
    return { correlation: reply.correlation, status: reply.status, headSeq: reply.headSeq, firstSeq: reply.firstSeq, deliveries, complete: complete && reachedHead };
  }

  /** The head and first kept room_seq of rooms that share one broker partition (at most 1000). */
  heads(roomIds: number[]): Promise<HeadsReply> {
    return this.request((correlation) => ({ headsRequest: { correlation, roomIds } }),
      (correlation) => ({ correlation, status: peer.PublishStatus.NO_ROUTE, heads: [] })) as Promise<HeadsReply>;
  }

  private request(frameOf: (correlation: number) => PeerFrameInit, timedOut: (correlation: number) => Reply): Promise<Reply> {
    const correlation = this.nextCorrelation;
    this.nextCorrelation = this.nextCorrelation >= 0xffffffff ? 1 : this.nextCorrelation + 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.requests.delete(correlation);
        resolve(timedOut(correlation));
      }, this.timeoutMs);
      this.requests.set(correlation, {
        frame: frameOf(correlation), proxyId: null,
        resolve: (reply: Reply) => { clearTimeout(timer); resolve(reply); },
      });
      this.sendRequest(correlation);
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const [correlation] of this.inFlight) this.settle(correlation, new Error('publisher closed'));
    this.pool.close();
  }

  private sendRequest(correlation: number): void {
    const request = this.requests.get(correlation);
    if (!request) return;
    const proxy = this.pool.members().find((p) => this.pool.isUp(p.id));
    if (!proxy) {
      request.proxyId = null;
      setTimeout(() => this.sendRequest(correlation), RETRY_MS).unref();
      return;
    }
    request.proxyId = proxy.id;
    this.pool.link(proxy.id)!.send(request.frame);
  }

  /** Tops the message up to `redundancy` copies on distinct live proxies. */
  private dispatch(correlation: number, entry: InFlight): void {
    if (!this.inFlight.has(correlation)) return;
    const live = entry.copiesOn.size === 0 ? this.live : this.live.filter((id) => !entry.copiesOn.has(id));
    const wanted = Math.min(this.redundancy - entry.copiesOn.size, live.length);
    for (let i = 0; i < wanted; i++) {
      const proxyId = live[(this.rotation + i) % live.length]!;
      entry.copiesOn.add(proxyId);
      this.pool.link(proxyId)!.send(entry.frame);
    }
    this.rotation++;
    if (entry.copiesOn.size === 0) setTimeout(() => this.dispatch(correlation, entry), RETRY_MS).unref();
  }

  private onUp(_proxy: Dialable, link: PeerLink): void {
    link.on('frame', (frame) => {
      if (frame.body === 'historyReply' || frame.body === 'headsReply') {
        const reply = frame.body === 'historyReply' ? frame.historyReply : frame.headsReply;
        const request = this.requests.get(reply.correlation);
        this.requests.delete(reply.correlation);
        request?.resolve(reply);
        return;
      }
      if (frame.body !== 'publishAck') return;
      const { correlation, status } = frame.publishAck;
      const entry = this.inFlight.get(correlation);
      if (!entry) return;
      if (status === peer.PublishStatus.DELIVERED) {
        this.settle(correlation, { messageId: entry.messageId, status: 'delivered' });
        return;
      }
      entry.lastStatus = peer.PublishStatus[status] ?? String(status);
      if (status === peer.PublishStatus.REJECTED) {
        this.settle(correlation, new PublishError('the message was rejected (room 0 or payload too large)', 'REJECTED', entry.messageId));
        return;
      }
      if (status === peer.PublishStatus.RATE_LIMITED) {
        this.settle(correlation, new PublishError('the room is over its message rate; retry later', 'RATE_LIMITED', entry.messageId));
        return;
      }
      // NO_ROUTE: try again (on any proxy) until the deadline.
      entry.copiesOn.clear();
      setTimeout(() => this.dispatch(correlation, entry), RETRY_MS).unref();
    });
  }

  private onDown(proxyId: string): void {
    for (const [correlation, entry] of this.inFlight) {
      if (entry.copiesOn.delete(proxyId)) this.dispatch(correlation, entry);
    }
    for (const [correlation, request] of this.requests) if (request.proxyId === proxyId) this.sendRequest(correlation);
  }

  private settle(correlation: number, outcome: PublishResult | Error): void {
    const entry = this.inFlight.get(correlation);
    if (!entry) return;
    this.inFlight.delete(correlation);

    if (outcome instanceof Error) entry.reject(outcome);
    else entry.resolve(outcome);
    this.waiting.shift()?.();
  }
}
