// Continuous chat traffic with the SDK, and the ledger that checks it: users
// on the real gateways (ChatClient over WebSocket), an application backend on
// the real proxies (Publisher). Each room has one sender loop that sends one
// message at a time, alternately from the backend and from a member, so the
// room's order is defined by the acks; a failed send is retried with the same
// message id (the SDK's idempotent retry) until it is acked, its attempts run
// out or its deadline passes. Every loop is bounded in messages and in time.
import { Snowflake } from '../../workloads/ids/snowflake.js';
import { toNumber, type Delivery, type Long } from '../../workloads/protocol/index.js';
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import { Publisher } from '../../workloads/sdk/publisher.js';

export interface TrafficOptions {
  gateways: string[];
  proxies: string[];
  rooms: number;
  users: number;
  roomsPerUser: number;
  /** Pause between one room's messages (the load is bounded by it and by the ack time). */
  pauseMs: number;
  /** Upper bounds: messages per room, and how long the loops may run at all. */
  maxPerRoom: number;
  maxDurationMs: number;
  /** A message not acked by then (retries included), or within this many attempts, counts as failed. */
  messageDeadlineMs: number;
  maxAttempts: number;
}

/** How long one message waited from its first attempt to its ack (or to giving up). */
interface Wait { room: number; n: number; from: number; to: number }

interface UserState {
  id: number;
  client: ChatClient;
  gateway: string;
  rooms: number[];
  /** room → message numbers in arrival order */
  received: Map<number, number[]>;
  /** room → room_seq of each delivery, in arrival order */
  seqs: Map<number, number[]>;
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
  /** Of duplicated: the copies the SDK dropped by message id. */
  sdkDeduplicated: number;
  retries: number;
  durationMs: number;
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

export class ChatTraffic {
  private users: UserState[] = [];
  private publisher!: Publisher;
  private readonly userIds = new Snowflake(WORKER_USERS);
  private readonly acked = new Map<number, number[]>();
  private readonly members = new Map<number, UserState[]>();
  private failed = 0;
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

  /** Connects and logs in every user, joins their rooms (each join is answered once the brokers know). */
  async connect(): Promise<void> {
    this.publisher = new Publisher({ proxies: this.o.proxies, workerId: WORKER_PUBLISHER, timeoutMs: 10_000 });
    for (let i = 0; i < this.o.users; i++) {
      const id = USER_BASE + i;
      const gateway = this.o.gateways[i % this.o.gateways.length]!;
      const client = await ChatClient.connect(gateway);
      await client.login(id, `user-${id}`);
      // Consecutive rooms from a per-user offset: every room gets several members.
      const rooms = Array.from({ length: this.o.roomsPerUser }, (_, k) => ROOM_BASE + ((i + k * 5) % this.o.rooms));
      const user: UserState = { id, client, gateway, rooms: [...new Set(rooms)], received: new Map(), seqs: new Map() };
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
      client.on('close', (code, reason) => { if (!this.stopping) this.errors.push(`user ${id} disconnected from ${gateway}: ${code} ${reason}`); });
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
  }

  /** Starts one sender loop per room. */
  start(): void {
    this.startedAt = Date.now();
    const until = this.startedAt + this.o.maxDurationMs;
    this.loops = this.rooms.map((room) => this.roomLoop(room, until));
  }

  /** Messages acked so far. */
  get sent(): number {
    let n = 0;
    for (const list of this.acked.values()) n += list.length;
    return n;
  }

  /** Lets every loop finish its message in flight, then stops them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
  }

  private async roomLoop(room: number, until: number): Promise<void> {
    const acked: number[] = [];
    this.acked.set(room, acked);
    const members = this.members.get(room)!;
    for (let n = 1; n <= this.o.maxPerRoom && !this.stopping && Date.now() < until; n++) {
      const payload = Buffer.from(`room ${room} message ${n}`);
      // Alternate: the backend through a proxy, then a member through its gateway.
      const user = n % 2 === 0 ? members[(n / 2) % members.length]! : undefined;
      const messageId: Long = user ? this.userIds.next() : this.publisher.newMessageId();
      const from = Date.now();
      const deadline = from + this.o.messageDeadlineMs;
      for (let attempt = 1; ; attempt++) {
        try {
          if (user) await user.client.send(room, payload, messageId);
          else await this.publisher.publish({ roomId: room, payload, senderId: 9_000_000 + room, messageId });
          acked.push(n);
          break;
        } catch (err) {
          if (Date.now() > deadline || attempt >= this.o.maxAttempts) {
            this.failed++;
            this.errors.push(`room ${room} message ${n}: not acked in ${attempt} attempts within ${Date.now() - from} ms: ${(err as Error).message}`);
            break;
          }
          this.retries++;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      this.waits.push({ room, n, from, to: Date.now() });
      await new Promise((r) => setTimeout(r, this.o.pauseMs));
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

  /** Waits until every acked message reached every member, or the bound passes. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.audit().lost > 0) await new Promise((r) => setTimeout(r, 250));
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
    let lost = 0;
    let duplicated = 0;
    let reordered = 0;
    let seqBreaks = 0;
    const sdkDeduplicated = this.users.reduce((n, u) => n + u.client.duplicatesDropped, 0);
    for (const user of this.users) {
      for (const room of user.rooms) {
        const seqs = user.seqs.get(room) ?? [];
        for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1]! + 1) seqBreaks++;
        const got = user.received.get(room) ?? [];
        const unique = new Set(got);
        duplicated += got.length - unique.size;
        for (const n of this.acked.get(room) ?? []) if (!unique.has(n)) lost++;
        // Acks define the room's order (one message in flight per room): a
        // member must see the numbers rising.
        let highest = 0;
        for (const n of got) {
          if (n < highest) reordered++;
          highest = Math.max(highest, n);
        }
      }
    }
    return {
      sent: this.sent, failed: this.failed, expected: this.expected, delivered: this.delivered,
      lost, duplicated: duplicated + sdkDeduplicated, reordered, seqBreaks, retries: this.retries, sdkDeduplicated,
      durationMs: (this.stoppedAt || Date.now()) - this.startedAt,
    };
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.publisher?.close();
    await Promise.all(this.users.map((u) => u.client.close().catch(() => undefined)));
  }
}
