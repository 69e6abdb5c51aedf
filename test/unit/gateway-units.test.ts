// The gateway's units driven directly, without a process or a socket: request
// handling (Requests), the per-connection write batching (Outboxes) and room
// delivery to members (RoomDeliveries). A TestConnection stands in for the
// user's WebSocket and records the bytes the gateway writes to it.
import { describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { LocalRooms, type Member } from '../../workloads/gateway/local-rooms.js';
import { Outboxes, type OutboxDeps } from '../../workloads/gateway/outboxes.js';
import { EARLY_FRAMES_BEFORE_PAUSE, Requests, type RequestDeps } from '../../workloads/gateway/requests.js';
import { RoomDeliveries } from '../../workloads/gateway/room-deliveries.js';
import { Session, type ClientConnection } from '../../workloads/gateway/session.js';
import { TokenBuckets } from '../../workloads/limits/token-bucket.js';
import { ALL_VROOMS, client, Long, type ClientFrame, type RoomDelivery } from '../../workloads/protocol/index.js';
import type { PublishResult } from '../../workloads/sdk/publisher.js';

const ErrorCode = client.ErrorCode;

class TestConnection implements ClientConnection {
  open = true;
  unsentBytes = 0;
  paused = false;
  readonly written: Buffer[] = [];
  closedWith: number | null = null;
  writeFramed(data: Buffer): void { this.written.push(data); }
  sendAndClose(_message: Uint8Array, closeCode: number): void { this.closedWith = closeCode; this.open = false; }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }

  /** The ServerFrames written so far, each WebSocket frame (unmasked, as a server sends) decoded. */
  frames(): Array<ReturnType<typeof client.ServerFrame.decode>> {
    const bytes = Buffer.concat(this.written);
    const out = [];
    for (let at = 0; at < bytes.length;) {
      let length = bytes[at + 1]!;
      let start = at + 2;
      if (length === 126) { length = bytes.readUInt16BE(at + 2); start = at + 4; }
      out.push(client.ServerFrame.decode(bytes.subarray(start, start + length)));
      at = start + length;
    }
    return out;
  }

  replies(): string[] {
    return this.frames().filter((f) => f.reply).map((f) => `${f.reply!.requestId} ${ErrorCode[f.reply!.code ?? 0]}`);
  }
}

/** Outboxes that write when flush() is called (the test plays the event loop). */
function manualOutboxes(overrides: Partial<OutboxDeps> = {}) {
  const due: Array<() => void> = [];
  const outboxes = new Outboxes({
    now: () => 0, soon: (run) => due.push(run), after: (run) => due.push(run), overflow: () => undefined, ...overrides,
  }, 1000);
  return { outboxes, runDue: () => { for (const run of due.splice(0)) run(); } };
}

function frame(init: Parameters<typeof client.ClientFrame.encode>[0]): ClientFrame {
  return client.ClientFrame.decode(client.ClientFrame.encode(init).finish()) as unknown as ClientFrame;
}

/** Requests over a TestConnection; the login's verdict is settled by the test. */
function requestsFor(overrides: Partial<RequestDeps> = {}) {
  const { outboxes, runDue } = manualOutboxes();
  let settleLogin: { accept(): void; refuse(err: Error): void } | undefined;
  const published: number[] = [];
  const deps: RequestDeps = {
    send: (session, bytes) => outboxes.send(session, bytes),
    fail: (session, _code, _message, closeCode) => session.connection.sendAndClose(new Uint8Array(), closeCode, ''),
    verifyLogin: () => new Promise((resolve, reject) => { settleLogin = { accept: () => resolve(null), refuse: reject }; }),
    online: () => undefined,
    joinRoom: () => Promise.resolve(),
    leaveRoom: () => undefined,
    takeToken: () => true,
    publisher: {
      publish: async (request) => { published.push(request.roomId); return {} as PublishResult; },
      history: () => Promise.reject(new Error('not in this test')),
      historySince: () => Promise.reject(new Error('not in this test')),
      heads: () => Promise.reject(new Error('not in this test')),
      newMessageId: () => Long.UONE,
    },
    relays: { direct: () => Promise.resolve(1), ackInbox: () => Promise.resolve(1) },
    brokerPartitions: () => 1,
    log: pino({ level: 'silent' }),
    ...overrides,
  };
  const connection = new TestConnection();
  const session = new Session(connection);
  const requests = new Requests(deps);
  /** Lets the promise callbacks run, then writes what they queued. */
  const settle = async () => { await new Promise((resolve) => setImmediate(resolve)); runDue(); };
  return { requests, session, connection, settle, published, login: () => settleLogin! };
}

describe('Requests', () => {
  test('frames behind a pending Login wait for it, in order; past 64 the connection is paused, and resumed after', async () => {
    const { requests, session, connection, settle, login } = requestsFor();
    requests.handle(session, frame({ requestId: 1, login: { userId: 5 } }));
    for (let i = 0; i < 100; i++) requests.handle(session, frame({ ping: { clientTimeMs: i + 1 } }));
    requests.handle(session, frame({ requestId: 2, join: { roomId: 9 } }));
    expect(session.early.length).toBe(101);
    expect(connection.paused).toBe(true);
    login().accept();
    await settle();
    const answers = connection.frames().map((f) => (f.reply ? `reply ${f.reply.requestId}` : `pong ${String(f.pong!.clientTimeMs)}`));
    expect(answers).toEqual(['reply 1', ...Array.from({ length: 100 }, (_, i) => `pong ${i + 1}`), 'reply 2']);
    expect(connection.paused).toBe(false);
    expect(connection.closedWith).toBeNull();
  });

  test(`${EARLY_FRAMES_BEFORE_PAUSE - 1} held frames do not pause; a refused Login answers them NOT_LOGGED_IN`, async () => {
    const { requests, session, connection, settle, login } = requestsFor();
    requests.handle(session, frame({ requestId: 1, login: { userId: 5 } }));
    for (let i = 0; i < EARLY_FRAMES_BEFORE_PAUSE - 2; i++) requests.handle(session, frame({ ping: {} }));
    requests.handle(session, frame({ requestId: 2, join: { roomId: 9 } }));
    expect(connection.paused).toBe(false);
    login().refuse(new Error('bad token'));
    await settle();
    expect(connection.replies()).toEqual(['1 UNAUTHENTICATED', '2 NOT_LOGGED_IN']);
    expect(session.loggedIn).toBe(false);
  });

  test("a request refused by the gateway's own checks takes no token; the rate is checked last", async () => {
    const buckets = new TokenBuckets<number>({ rate: 1, burst: 2 }, () => 0);
    const { requests, session, connection, settle, login, published } = requestsFor({ takeToken: (userId) => buckets.take(userId) });
    requests.handle(session, frame({ requestId: 1, login: { userId: 5 } }));
    login().accept();
    await settle();
    requests.handle(session, frame({ requestId: 2, join: { roomId: 9 } }));
    for (let i = 0; i < 10; i++) {
      requests.handle(session, frame({ requestId: 10 + i, send: { roomId: 8, payload: Buffer.from('not joined') } }));
      requests.handle(session, frame({ requestId: 30 + i, direct: { toUserId: 0, payload: Buffer.from('to nobody') } }));
    }
    for (let i = 0; i < 3; i++) requests.handle(session, frame({ requestId: 50 + i, send: { roomId: 9, payload: Buffer.from(`m${i}`) } }));
    await settle();
    const replies = connection.replies();
    expect(replies.filter((r) => r.endsWith('NOT_A_MEMBER')).length).toBe(10);
    expect(replies.filter((r) => r.endsWith('INVALID_ARGUMENT')).length).toBe(10);
    expect(['50', '51', '52'].map((id) => replies.find((r) => r.startsWith(`${id} `)))).toEqual(['50 OK', '51 OK', '52 RATE_LIMITED']);
    expect(published).toEqual([9, 9]);
  });
});

describe('Outboxes', () => {
  test("a turn's frames leave in one write per connection, in order; a busy gateway waits out the coalescing window", () => {
    let now = 0;
    const soon: Array<() => void> = [];
    const later: Array<{ run: () => void; delayMs: number }> = [];
    const outboxes = new Outboxes({ now: () => now, soon: (run) => soon.push(run), after: (run, delayMs) => later.push({ run, delayMs }), overflow: () => undefined }, 1000, 1);
    const [a, b] = [new TestConnection(), new TestConnection()];
    const [sa, sb] = [new Session(a), new Session(b)];
    outboxes.send(sa, Buffer.from('a1'));
    outboxes.send(sb, Buffer.from('b1'));
    outboxes.send(sa, Buffer.from('a2'));
    expect([soon.length, later.length]).toEqual([1, 0]); // one flush scheduled for the turn
    soon.shift()!();
    expect(a.written.map(String)).toEqual(['a1a2']);
    expect(b.written.map(String)).toEqual(['b1']);
    now = 0.5; // within the window of that flush
    outboxes.send(sa, Buffer.from('a3'));
    expect([soon.length, later.length, later[0]?.delayMs]).toEqual([0, 1, 1]);
    later.shift()!.run();
    expect(a.written.map(String)).toEqual(['a1a2', 'a3']);
  });

  test('a connection with more than the bound unsent gets nothing more written and is reported once per flush', () => {
    const overflowed: number[] = [];
    const { outboxes, runDue } = manualOutboxes({ overflow: (_session, unsent) => overflowed.push(unsent) });
    const connection = new TestConnection();
    const session = new Session(connection);
    connection.unsentBytes = 1001;
    outboxes.send(session, Buffer.from('x'));
    runDue();
    expect(connection.written).toEqual([]);
    expect(overflowed).toEqual([1001]);
  });
});

describe('RoomDeliveries', () => {
  const delivery = (roomId: number, senderId: number, id: number, mask: Long = ALL_VROOMS): RoomDelivery => ({
    roomId, senderId, messageId: Long.fromNumber(id, true), vroomMask: mask, roomSeq: Long.fromNumber(id, true),
    sequencerId: 1, payload: Buffer.from(`m${id}`), sentAtMs: Long.UZERO, critical: false,
  } as unknown as RoomDelivery);

  function setup() {
    const rooms = new LocalRooms<Session | Member>();
    const { outboxes, runDue } = manualOutboxes();
    const reported: number[] = [];
    const deliveries = new RoomDeliveries({
      rooms, isProbe: (d) => d.roomId === 999, reportAgain: (roomId) => reported.push(roomId), send: (s, f) => outboxes.send(s, f),
    });
    const member = (userId: number, ...roomIds: number[]) => {
      const connection = new TestConnection();
      const session = new Session(connection, userId);
      for (const roomId of roomIds) rooms.join(roomId, session);
      return connection;
    };
    rooms.join(999, { userId: 0xffffffff }); // the probe's member: no connection
    return { deliveries, member, runDue, reported };
  }
  const ids = (c: TestConnection) => c.frames().map((f) => `${f.delivery!.roomId}:${Number(f.delivery!.messageId)}`);

  test('each (room, sender, id) once per member; the same id in another room or from another sender is another message', () => {
    const { deliveries, member, runDue } = setup();
    const alice = member(1, 10, 11);
    deliveries.deliver(delivery(10, 7, 100));
    deliveries.deliver(delivery(10, 7, 100)); // a redundant copy
    deliveries.deliver(delivery(11, 7, 100)); // the same id in another room
    deliveries.deliver(delivery(10, 8, 100)); // from another sender
    runDue();
    expect(ids(alice)).toEqual(['10:100', '11:100', '10:100']);
  });

  test("a split room's message reaches the members of the virtual rooms it names, each part once", () => {
    const { deliveries, member, runDue } = setup();
    const v1 = member(1, 10); // virtual room 1
    const v2 = member(2, 10); // virtual room 2
    deliveries.deliver(delivery(10, 7, 100, Long.fromNumber(1 << 1, true)));
    deliveries.deliver(delivery(10, 7, 100, Long.fromNumber((1 << 1) | (1 << 2), true))); // vroom 1 again, and vroom 2
    runDue();
    expect([ids(v1), ids(v2)]).toEqual([['10:100'], ['10:100']]);
  });

  test('the probe room is observed, never written; a room with no member here is reported again', () => {
    const { deliveries, member, runDue, reported } = setup();
    const alice = member(1, 10);
    deliveries.deliver(delivery(999, 7, 1));
    deliveries.deliver(delivery(12, 7, 2));
    runDue();
    expect(alice.written).toEqual([]);
    expect(reported).toEqual([12]);
  });
});
