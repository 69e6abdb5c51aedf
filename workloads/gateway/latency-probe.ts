// The seed's synthetic user: each gateway is a member of a probe room of its
// own and publishes into it through the proxies every few seconds; the time
// from publish to its own delivery is the cluster's end-to-end latency, as a
// metric. Probe rooms sit at the top of the room id space, one per gateway
// ordinal, so they never collide with a user room below 4,294,967,040.
import { Counter, Histogram } from 'prom-client';
import { metrics } from '../observability/http.js';
import { toNumber, type RoomDelivery } from '../protocol/index.js';
import type { Publisher } from '../sdk/publisher.js';

export const PROBE_ROOM_BASE = 0xffffff00;
const PROBE_EVERY_MS = 5000;

const probeFailures = new Counter({ name: 'groupchat_probe_failures_total', help: 'Synthetic-user publishes that failed (no latency sample for them)', registers: [metrics] });

const probeLatency = new Histogram({
  name: 'groupchat_probe_latency_seconds',
  help: 'Publish-to-delivery time of the synthetic user, through proxies, brokers and back to this gateway',
  buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [metrics],
});

export function probeRoomOf(ordinal: number): number {
  return PROBE_ROOM_BASE + ordinal;
}

export class LatencyProbe {
  private readonly timer: NodeJS.Timeout;

  constructor(readonly roomId: number, publisher: Publisher) {
    this.timer = setInterval(() => {
      void publisher.publish({ roomId, payload: new Uint8Array() }).catch(() => probeFailures.inc());
    }, PROBE_EVERY_MS);
    this.timer.unref();
  }

  /** True (and recorded) when the delivery is this probe's own. */
  observe(delivery: RoomDelivery): boolean {
    if (delivery.roomId !== this.roomId) return false;
    probeLatency.observe(Math.max(0, Date.now() - toNumber(delivery.sentAtMs)) / 1000);
    return true;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
