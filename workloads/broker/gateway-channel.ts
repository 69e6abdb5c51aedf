// The broker's link to one gateway, and its flow control. Deliveries wait in
// `queued` until sent and in `inflight` until the gateway's cumulative
// DeliveryAck covers them; after a reconnect everything inflight is sent
// again (the gateway drops repeats by message id), so a link that blips loses
// nothing. How eagerly it sends depends on how far behind the gateway is (the
// seed author's proposal): under 100 pending, at the end of the event-loop
// turn (the link writes all of a turn's frames at once); up to 1,000, every 10 ms; beyond, it stops pushing and sends only as acks return (the
// gateway pulls). CRITICAL deliveries skip the wait. The queue has a hard
// bound: past it a delivery is refused, and the users there recover the gap
// from the room sequence. Only a gateway that left the registry releases
// what it holds unsent.
import { Counter, Gauge } from 'prom-client';
import { Fifo } from '../collections/fifo.js';
import { metrics } from '../observability/http.js';
import { toNumber } from '../protocol/index.js';
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerClient } from '../transport/peer-client.js';

const queueHighWater = new Gauge({ name: 'groupchat_broker_gateway_queue_high_water', help: 'The most deliveries ever held for one gateway (never lowered)', registers: [metrics] });
let queuePeak = 0;

/** Counts down the acknowledgements one fan-out waits for. */
export class Obligation {
  private remaining: number;

  constructor(count: number, private readonly onDone: () => void) {
    this.remaining = count;
    if (count === 0) onDone();
  }

  complete(): void {
    if (--this.remaining === 0) this.onDone();
  }
}

interface Pending { body: Uint8Array; obligation: Obligation }

export const PUSH_BELOW = 100;
export const BATCH_BELOW = 1000;
/** In pull mode, at most this many deliveries are unacknowledged at once. */
export const PULL_WINDOW = 256;

export type FlowMode = 'push' | 'batch' | 'pull';

export function flowMode(pending: number): FlowMode {
  return pending < PUSH_BELOW ? 'push' : pending < BATCH_BELOW ? 'batch' : 'pull';
}

const modeChanges = new Counter({ name: 'groupchat_broker_flow_mode_total', help: 'Gateway links entering a flow mode', labelNames: ['mode'], registers: [metrics] });
const linksLost = new Counter({ name: 'groupchat_broker_gateway_links_lost_total', help: 'Gateway links lost (closed, failed or silent past the heartbeat timeout); deliveries wait in the queue until one is back', registers: [metrics] });

export class GatewayChannel {
  private readonly client: PeerClient;
  private readonly queued = new Fifo<Pending>();
  /** CRITICAL deliveries waiting for a link: they leave before anything queued. */
  private readonly urgent = new Fifo<Pending>();
  private readonly inflight = new Fifo<Pending>();
  private ackedOnLink = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushThisTurn = false;
  private mode: FlowMode = 'push';
  /** Deliveries refused because the queue was full. */
  refused = 0;
  /** The most deliveries ever held at once (the bound's witness). */
  private highWater = 0;

  constructor(readonly gatewayId: string, readonly address: string, self: PeerIdentity, private readonly maxQueued: number) {
    this.client = new PeerClient(address, self);
    this.client.on('up', (link) => this.onUp(link));
    this.client.on('down', () => {
      linksLost.inc();
      this.requeueInflight();
    });
  }

  get pending(): number {
    return this.urgent.length + this.queued.length + this.inflight.length;
  }

  /** False when the gateway is too far behind: the caller must not wait on it. */
  deliver(body: Uint8Array, obligation: Obligation, critical = false): boolean {
    if (this.pending >= this.maxQueued) {
      this.refused++;
      return false;
    }
    const entry = { body, obligation };
    const link = this.client.ready;
    if (critical && link) {
      this.inflight.push(entry);
      link.sendEncoded(body);
    } else if (critical) {
      this.urgent.push(entry);
    } else {
      this.queued.push(entry);
      this.schedule();
    }
    if (this.pending > this.highWater) {
      this.highWater = this.pending;
      // Set here, not sampled: a peak stays visible after its gateway (and channel) is gone.
      if (this.highWater > queuePeak) queueHighWater.set((queuePeak = this.highWater));
    }
    return true;
  }

  /** The gateway is gone: nothing more can reach its users. */
  close(): void {
    this.client.close();
    if (this.timer) clearTimeout(this.timer);
    for (const entry of [...this.inflight.drain(), ...this.urgent.drain(), ...this.queued.drain()]) entry.obligation.complete();
  }

  private schedule(): void {
    const mode = flowMode(this.pending);
    if (mode !== this.mode) {
      this.mode = mode;
      modeChanges.inc({ mode });
    }
    if (this.timer || this.flushThisTurn) return;
    if (mode === 'push') {
      // A timer here would cost a wake-up of its own per message and a millisecond of latency.
      this.flushThisTurn = true;
      setImmediate(() => { this.flushThisTurn = false; this.flush(); });
      return;
    }
    // In pull mode acks drive sending; a slow timer still covers a lost ack.
    const delay = mode === 'batch' ? 10 : 100;
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, delay);
  }

  private flush(): void {
    const link = this.client.ready;
    if (!link) return;
    for (let entry = this.urgent.shift(); entry; entry = this.urgent.shift()) {
      this.inflight.push(entry);
      link.sendEncoded(entry.body);
    }
    const limit = this.mode === 'pull' ? Math.max(0, PULL_WINDOW - this.inflight.length) : Infinity;
    for (let sent = 0; sent < limit && this.queued.length > 0; sent++) {
      const entry = this.queued.shift()!;
      this.inflight.push(entry);
      link.sendEncoded(entry.body);
    }
    if (this.queued.length > 0) this.schedule();
  }

  private requeueInflight(): void {
    this.queued.unshiftAll(this.inflight.drain());
  }

  private onUp(link: PeerLink): void {
    this.ackedOnLink = 0;
    this.requeueInflight();
    link.on('frame', (frame) => {
      if (frame.body !== 'deliveryAck') return;
      this.acknowledge(toNumber(frame.deliveryAck.deliveredCount));
    });
    this.flush();
  }

  private acknowledge(count: number): void {
    let newly = count - this.ackedOnLink;
    if (newly <= 0) return;
    this.ackedOnLink = count;
    while (newly-- > 0) {
      const entry = this.inflight.shift();
      if (!entry) break;
      entry.obligation.complete();
    }
    // Acks are the pull: in pull mode they open the window again.
    this.mode = flowMode(this.pending);
    if (this.queued.length > 0) this.flush();
  }
}
