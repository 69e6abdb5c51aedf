// Continuous chat traffic with the SDK, and the ledger that checks it: users
// on the real gateways (ChatClient over WebSocket), an application backend on
// the real proxies (Publisher). Each room has one sender loop that sends one
// message at a time, alternately from the backend and from a member, so the
// room's order is defined by the acks; likewise each one-to-one pair (when
// asked for: the cluster needs relay, pi and xiu) has one loop of Directs
// from one user to another on the other gateway. A failed send is retried
// with the same message id (the SDK's idempotent retry) until it is acked,
// its attempts run out or its deadline passes. Every loop is bounded in
// messages and in time.
import { Snowflake } from '../../workloads/ids/snowflake.js';
import { toNumber, type Delivery, type Long } from '../../workloads/protocol/index.js';
import { ChatClient, type InboxMessage } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';

export interface TrafficOptions {
  gateways: string[];
  proxies: string[];
  rooms: number;
  users: number;
  roomsPerUser: number;
  /**
   * One-to-one pairs (default none): pair k is user 2k sending Directs to
   * user 2k+1, each the only sender to its recipient, so the recipient's
   * inbox holds the pair's messages in send order at positions 1, 2, 3, ...
   */
  directPairs?: number;
  /** Pause between one loop's messages (the load is bounded by it and by the ack time). */
  pauseMs: number;
  /** Upper bounds: messages per loop (room or pair), and how long the loops may run at all. */
  maxPerRoom: number;
  maxDurationMs: number;
  /** A message not acked by then (retries included), or within this many attempts, counts as failed. */
  messageDeadlineMs: number;
  maxAttempts: number;
}

/** How long one room message waited from its first attempt to its ack (or to giving up). */
interface Wait { room: number; n: number; from: number; to: number }

/** A one-to-one pair: the numbers of the Directs acked to the sender, and what the recipient's inbox pushed. */
interface DirectPair { from: UserState; to: UserState; acked: number[] }

interface UserState {
  id: number;
  client: ChatClient;
  gateway: string;
  rooms: number[];
  /** room → message numbers in arrival order */
  received: Map<number, number[]>;
  /** room → room_seq of each delivery, in arrival order */
  seqs: Map<number, number[]>;
  /** The inbox as pushed: each message's position and the number of the Direct it carries, in arrival order. */
  inbox: { position: number; n: number }[];
}

/** The one-to-one half of the audit, over every pair. */
export interface DirectReport {
  /** Directs acked to their sender. */
  sent: number;
  failed: number;
  delivered: number;
  lost: number;
  /** Directs stored twice: the same one at two inbox positions. (A position pushed twice is dropped by the SDK and counted in the report's sdkDeduplicated.) */
  duplicated: number;
  reordered: number;
  /** Inbox messages whose position is not one more than the one before (the first one: not 1). */
  positionBreaks: number;
}

export interface TrafficReport {
  sent: number;
  failed: number;
  expected: number;
  delivered: number;
  lost: number;
  /** Copies a member got twice: those it kept, and those the SDK's duplicate filter dropped (each was still delivered twice). */
  duplicated: number;
  reordered: number;
  /** Deliveries whose room_seq is not one more than the one before in the room (a gap, or numbering that restarted). */
  seqBreaks: number;
  /** Of duplicated: the copies the SDK dropped (room messages by id; inbox messages by position, which count here too). */
  sdkDeduplicated: number;
  retries: number;
  durationMs: number;
  directs: DirectReport;
}

const ROOM_BASE = 1;
const USER_BASE = 5001;
/** Snowflake worker ids of this test's own senders (client role code 0; the roles use other codes). */
const WORKER_PUBLISHER = 120;
const WORKER_USERS = 121;

const decodePayload = (payload: Uint8Array): { room: number; n: number } | undefined => {
  const match = /^room (\d+) message (\d+)$/.exec(Buffer.from(payload).toString());
  return match ? { room: Number(match[1]), n: Number(match[2]) } : undefined;
};

const directPayload = (from: number, n: number) => Buffer.from(`direct from ${from} number ${n}`);
const decodeDirect = (payload: Uint8Array): { from: number; n: number } | undefined => {
  const match = /^direct from (\d+) number (\d+)$/.exec(Buffer.from(payload).toString());
  return match ? { from: Number(match[1]), n: Number(match[2]) } : undefined;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Entries that are not one more than the entry before (with `first`, the first entry must be it). */
function breaks(numbers: readonly number[], first?: number): number {
  let n = first !== undefined && numbers.length > 0 && numbers[0] !== first ? 1 : 0;
  for (let i = 1; i < numbers.length; i++) if (numbers[i] !== numbers[i - 1]! + 1) n++;
  return n;
}

/** Entries below one seen before them: out of the order the acks defined. */
function descents(numbers: readonly number[]): number {
  let n = 0;
  let highest = 0;
  for (const x of numbers) {
    if (x < highest) n++;
    highest = Math.max(highest, x);
  }
  return n;
}

/** What a member of the rooms received, as the room audit reads it. */
export interface RoomMemberView {
  rooms: readonly number[];
  /** room → message numbers in arrival order */
  received: ReadonlyMap<number, readonly number[]>;
  /** room → room_seq of each delivery, in arrival order */
  seqs: ReadonlyMap<number, readonly number[]>;
  /** Copies the SDK dropped by message id: each was still delivered twice. */
  duplicatesDropped: number;
}

/**
 * The room ledger's verdict: every acked message with every member once, in
 * the acks' order. Copies the SDK's filter dropped count as duplicates too:
 * the filter hides them from the app, not from the contract.
 */
export function auditRooms(acked: ReadonlyMap<number, readonly number[]>, members: readonly RoomMemberView[]) {
  let lost = 0;
  let duplicated = 0;
  let reordered = 0;
  let seqBreaks = 0;
  const sdkDeduplicated = members.reduce((n, m) => n + m.duplicatesDropped, 0);
  for (const member of members) {
    for (const room of member.rooms) {
      seqBreaks += breaks(member.seqs.get(room) ?? []);
      const got = member.received.get(room) ?? [];
      const unique = new Set(got);
      duplicated += got.length - unique.size;
      for (const n of acked.get(room) ?? []) if (!unique.has(n)) lost++;
      // Acks define the room's order (one message in flight per room): a
      // member must see the numbers rising.
      reordered += descents(got);
    }
  }
  return { lost, duplicated: duplicated + sdkDeduplicated, reordered, seqBreaks, sdkDeduplicated };
}

export class ChatTraffic {
  private users: UserState[] = [];
  private publisher!: Publisher;
  private readonly userIds = new Snowflake(WORKER_USERS);
  private readonly acked = new Map<number, number[]>();
  private readonly members = new Map<number, UserState[]>();
  private pairs: DirectPair[] = [];
  private failed = 0;
  private directsFailed = 0;
  private retries = 0;
  private readonly waits: Wait[] = [];
  private stopping = false;
  private loops: Promise<void>[] = [];
  private startedAt = 0;
  private stoppedAt = 0;
  readonly errors: string[] = [];

  constructor(private readonly o: TrafficOptions) {}

  get rooms(): number[] {
    return Array.from({ length: this.o.rooms }, (_, i) => ROOM_BASE + i);
  }

  /** Connects and logs in every user, joins their rooms (each join is answered once the brokers know), and pairs users for Directs. */
  async connect(): Promise<void> {
    this.publisher = new Publisher({ proxies: this.o.proxies, workerId: WORKER_PUBLISHER, timeoutMs: 10_000 });
    for (let i = 0; i < this.o.users; i++) {
      const id = USER_BASE + i;
      const gateway = this.o.gateways[i % this.o.gateways.length]!;
      const client = await ChatClient.connect(gateway);
      // Consecutive rooms from a per-user offset: every room gets several members.
      const rooms = Array.from({ length: this.o.roomsPerUser }, (_, k) => ROOM_BASE + ((i + k * 5) % this.o.rooms));
      const user: UserState = { id, client, gateway, rooms: [...new Set(rooms)], received: new Map(), seqs: new Map(), inbox: [] };
      client.on('message', (d: Delivery) => {
        const decoded = decodePayload(d.payload);
        if (!decoded || decoded.room !== d.roomId) { this.errors.push(`user ${id}: unexpected delivery in room ${d.roomId}`); return; }
        let list = user.received.get(d.roomId);
        if (!list) user.received.set(d.roomId, (list = []));
        list.push(decoded.n);
        let seqs = user.seqs.get(d.roomId);
        if (!seqs) user.seqs.set(d.roomId, (seqs = []));
        seqs.push(toNumber(d.roomSeq));
      });
      // Before the login: the relay pushes the inbox as soon as the user is online.
      client.on('inbox', (m: InboxMessage) => this.onInbox(user, m));
      client.on('close', (code, reason) => { if (!this.stopping) this.errors.push(`user ${id} disconnected from ${gateway}: ${code} ${reason}`); });
      await client.login(id, `user-${id}`);
      for (const room of user.rooms) {
        await client.join(room);
        let list = this.members.get(room);
        if (!list) this.members.set(room, (list = []));
        list.push(user);
      }
      this.users.push(user);
    }
    for (const room of this.rooms) {
      if (!this.members.get(room)?.length) throw new Error(`room ${room} has no members; use more users or rooms per user`);
    }
    const pairs = this.o.directPairs ?? 0;
    if (2 * pairs > this.users.length) throw new Error(`${pairs} one-to-one pairs need ${2 * pairs} users, not ${this.users.length}`);
    this.pairs = Array.from({ length: pairs }, (_, k) => ({ from: this.users[2 * k]!, to: this.users[2 * k + 1]!, acked: [] }));
  }

  private onInbox(user: UserState, m: InboxMessage): void {
    const decoded = decodeDirect(m.payload);
    const pair = this.pairs.find((p) => p.to === user);
    if (!decoded || decoded.from !== pair?.from.id) {
      this.errors.push(`user ${user.id}: unexpected inbox message at position ${toNumber(m.position)} from ${m.senderId}`);
      return;
    }
    user.inbox.push({ position: toNumber(m.position), n: decoded.n });
  }

  /** Starts one sender loop per room and one per one-to-one pair. */
  start(): void {
    this.startedAt = Date.now();
    const until = this.startedAt + this.o.maxDurationMs;
    this.loops = [...this.rooms.map((room) => this.roomLoop(room, until)), ...this.pairs.map((pair) => this.directLoop(pair, until))];
  }

  /** Room messages acked so far. */
  get sent(): number {
    let n = 0;
    for (const list of this.acked.values()) n += list.length;
    return n;
  }

  /** Directs acked so far. */
  get directsSent(): number {
    return this.pairs.reduce((n, p) => n + p.acked.length, 0);
  }

  /** Lets every loop finish its message in flight, then stops them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
  }

  private going(n: number, until: number): boolean {
    return n <= this.o.maxPerRoom && !this.stopping && Date.now() < until;
  }

  /** Sends until acked (true), or until the deadline passes or the attempts run out (false, said in errors). */
  private async sendUntilAcked(what: string, send: () => Promise<unknown>): Promise<boolean> {
    const from = Date.now();
    const deadline = from + this.o.messageDeadlineMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await send();
        return true;
      } catch (err) {
        if (Date.now() > deadline || attempt >= this.o.maxAttempts) {
          this.errors.push(`${what}: not acked in ${attempt} attempts within ${Date.now() - from} ms: ${(err as Error).message}`);
          return false;
        }
        this.retries++;
        await sleep(200);
      }
    }
  }

  private async roomLoop(room: number, until: number): Promise<void> {
    const acked: number[] = [];
    this.acked.set(room, acked);
    const members = this.members.get(room)!;
    for (let n = 1; this.going(n, until); n++) {
      const payload = Buffer.from(`room ${room} message ${n}`);
      // Alternate: the backend through a proxy, then a member through its gateway.
      const user = n % 2 === 0 ? members[(n / 2) % members.length]! : undefined;
      const messageId: Long = user ? this.userIds.next() : this.publisher.newMessageId();
      const from = Date.now();
      const ok = await this.sendUntilAcked(`room ${room} message ${n}`, () => user
        ? user.client.send(room, payload, messageId)
        : this.publisher.publish({ roomId: room, payload, senderId: 9_000_000 + room, messageId }));
      if (ok) acked.push(n);
      else this.failed++;
      this.waits.push({ room, n, from, to: Date.now() });
      await sleep(this.o.pauseMs);
    }
  }

  private async directLoop(pair: DirectPair, until: number): Promise<void> {
    for (let n = 1; this.going(n, until); n++) {
      const payload = directPayload(pair.from.id, n);
      const messageId = this.userIds.next();
      if (await this.sendUntilAcked(`direct ${n} from ${pair.from.id} to ${pair.to.id}`, () => pair.from.client.direct(pair.to.id, payload, messageId))) {
        pair.acked.push(n);
      } else {
        this.directsFailed++;
      }
      await sleep(this.o.pauseMs);
    }
  }

  /** Deliveries received so far (after the SDK's dedup). */
  get delivered(): number {
    let n = 0;
    for (const user of this.users) for (const list of user.received.values()) n += list.length;
    return n;
  }

  get expected(): number {
    let n = 0;
    for (const [room, acked] of this.acked) n += acked.length * (this.members.get(room)?.length ?? 0);
    return n;
  }

  /** Waits until every acked message reached every member and every acked Direct its recipient, or the bound passes. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const missing = () => { const a = this.audit(); return a.lost + a.directs.lost; };
    while (Date.now() < deadline && missing() > 0) await sleep(250);
  }

  /** The longest a room's message waited for its ack among those in flight during [from, to]: what a user saw as an outage. */
  longestOutage(from: number, to: number): { ms: number; room: number; message: number } {
    let longest = { ms: 0, room: 0, message: 0 };
    for (const w of this.waits) {
      if (w.to < from || w.from > to || w.to - w.from <= longest.ms) continue;
      longest = { ms: w.to - w.from, room: w.room, message: w.n };
    }
    return longest;
  }

  audit(): TrafficReport {
    const rooms = auditRooms(this.acked, this.users.map((u) => ({ ...u, duplicatesDropped: u.client.duplicatesDropped })));
    return {
      sent: this.sent, failed: this.failed, expected: this.expected, delivered: this.delivered, ...rooms, retries: this.retries,
      durationMs: (this.stoppedAt || Date.now()) - this.startedAt,
      directs: this.auditDirects(),
    };
  }

  /** Per pair: each acked Direct in the recipient's inbox once, in send order, at positions 1, 2, 3, ... */
  private auditDirects(): DirectReport {
    const report: DirectReport = { sent: this.directsSent, failed: this.directsFailed, delivered: 0, lost: 0, duplicated: 0, reordered: 0, positionBreaks: 0 };
    for (const { to, acked } of this.pairs) {
      const got = to.inbox.map((m) => m.n);
      const unique = new Set(got);
      report.delivered += got.length;
      report.duplicated += got.length - unique.size;
      report.lost += acked.filter((n) => !unique.has(n)).length;
      report.reordered += descents(got);
      report.positionBreaks += breaks(to.inbox.map((m) => m.position), 1);
    }
    return report;
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.publisher?.close();
    await Promise.all(this.users.map((u) => u.client.close().catch(() => undefined)));
  }
}
