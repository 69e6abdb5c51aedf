// The proxy's units driven directly: its table of partition leaders, and its
// pending requests (routing, re-routing, NO_ROUTE at the deadline) on an
// injected clock and timer, with recording stand-ins for brokers and publishers.
import { describe, expect, test } from '@jest/globals';
import { PartitionLeaders } from '../../workloads/proxy/partition-leaders.js';
import { PendingRoutes, PUBLISH, ROUTE_DEADLINE_MS, type Origin } from '../../workloads/proxy/pending-routes.js';
import { peer, type PeerFrameInit } from '../../workloads/protocol/index.js';
import { ScannedFields } from '../../workloads/protocol/wire-scan.js';

const Status = peer.PublishStatus;

describe('PartitionLeaders', () => {
  test('the newest term wins; a stale or unknown announcement changes nothing; losing a follower keeps the leader', () => {
    const leaders = new PartitionLeaders();
    expect(leaders.learn({ partition: 0, replica: 1, term: 3, known: true })).toBe(true);
    expect(leaders.learn({ partition: 0, replica: 2, term: 2, known: true })).toBe(false); // older term
    expect(leaders.learn({ partition: 0, replica: 2, term: 4, known: false })).toBe(false); // not known
    expect(leaders.learn({ partition: 0, replica: 1, term: 3, known: true })).toBe(false); // the same again
    expect(leaders.replicaOf(0)).toBe(1);
    leaders.lost(0, 2);
    expect(leaders.replicaOf(0)).toBe(1);
    leaders.lost(0, 1);
    expect(leaders.replicaOf(0)).toBeUndefined();
  });
});

describe('PendingRoutes', () => {
  function setup() {
    let now = 0;
    let target: string | undefined;
    let full = false;
    const timers: Array<() => void> = [];
    const sent: Array<{ broker: string; bytes: Uint8Array }> = [];
    const answered: number[] = [];
    const paused: Origin[] = [];
    const routes = new PendingRoutes<Origin>({
      target: () => target,
      sendTo: (broker, bytes) => { sent.push({ broker, bytes }); return !full; },
      now: () => now,
      later: (run) => timers.push(run),
      backpressure: (origin) => paused.push(origin),
      answered: (status) => answered.push(status),
    });
    const toOrigin: PeerFrameInit[] = [];
    const origin: Origin = { send: (frame) => { toOrigin.push(frame); return true; }, sendEncoded: () => true };
    const fields = Object.assign(new ScannedFields(), { roomId: 7, correlation: 41, idLow: 9 });
    return {
      routes, origin, fields, sent, answered, paused, toOrigin, timers,
      set: (o: { now?: number; target?: string | undefined; full?: boolean }) => {
        if ('now' in o) now = o.now!;
        if ('target' in o) target = o.target;
        if ('full' in o) full = o.full!;
      },
      runTimers: () => { for (const run of timers.splice(0)) run(); },
    };
  }

  test('without a broker it retries until the deadline, then answers NO_ROUTE once', () => {
    const t = setup();
    t.routes.accept(t.origin, PUBLISH, new Uint8Array([1]), t.fields);
    expect([t.sent.length, t.timers.length]).toEqual([0, 1]);
    t.set({ now: ROUTE_DEADLINE_MS - 1 });
    t.runTimers();
    expect([t.toOrigin.length, t.timers.length]).toEqual([0, 1]);
    t.set({ now: ROUTE_DEADLINE_MS + 1 });
    t.runTimers();
    expect(t.toOrigin).toEqual([{ publishAck: expect.objectContaining({ correlation: 41, status: Status.NO_ROUTE }) }]);
    expect(t.answered).toEqual([Status.NO_ROUTE]);
    expect(t.routes.size).toBe(0);
  });

  test('NOT_LEADER re-routes to the new target; the final answer settles it once', () => {
    const t = setup();
    t.set({ target: 'b1' });
    t.routes.accept(t.origin, PUBLISH, new Uint8Array([1]), t.fields);
    expect(t.sent.map((s) => s.broker)).toEqual(['b1']);
    expect(t.routes.settle(1, Status.NOT_LEADER)).toBeNull();
    t.set({ target: 'b2' });
    t.runTimers();
    expect(t.sent.map((s) => s.broker)).toEqual(['b1', 'b2']);
    expect(t.routes.settle(1, Status.DELIVERED)?.originCorrelation).toBe(41);
    expect(t.routes.settle(1, Status.DELIVERED)).toBeNull();
    expect(t.answered).toEqual([Status.DELIVERED]);
  });

  test("a broker going down re-routes what it left unanswered; a full link pauses the origin; a closed origin's requests are dropped", () => {
    const t = setup();
    t.set({ target: 'b1', full: true });
    t.routes.accept(t.origin, PUBLISH, new Uint8Array([1]), t.fields);
    expect(t.paused).toEqual([t.origin]);
    t.set({ target: 'b2', full: false });
    expect(t.routes.brokerDown('b3')).toBe(0);
    expect(t.routes.brokerDown('b1')).toBe(1);
    expect(t.sent.map((s) => s.broker)).toEqual(['b1', 'b2']);
    t.routes.originClosed(t.origin);
    expect(t.routes.size).toBe(0);
  });
});
