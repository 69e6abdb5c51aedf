// Users and publishers for delivery tests, and the ledger that checks the
// delivery contract: every member gets every message of its rooms exactly
// once, and all members of a room see one order.
import { ChatClient } from '../../workloads/sdk/chat-client.js';
import type { Publisher } from '../../workloads/sdk/publisher.js';
import { messageIdKey, type Delivery } from '../../workloads/protocol/index.js';
import { eventually } from './cluster.js';

export interface User {
  id: number;
  client: ChatClient;
  rooms: Set<number>;
  /** room → message keys in arrival order */
  received: Map<number, string[]>;
}

export async function connectUser(url: string, id: number, rooms: number[]): Promise<User> {
  const client = await ChatClient.connect(url);
  await client.login(id, `user-${id}`);
  const user: User = { id, client, rooms: new Set(rooms), received: new Map() };
  client.on('message', (d: Delivery) => {
    let list = user.received.get(d.roomId);
    if (!list) user.received.set(d.roomId, (list = []));
    list.push(messageIdKey(d.messageId));
  });
  for (const room of rooms) await client.join(room);
  return user;
}

export interface Violations {
  lost: number;
  duplicated: number;
  reordered: number;
  /** Deliveries the SDK itself had to drop (the gateway should have). */
  sdkDropped: number;
}

/** Compares what users got with what was acked per room. */
export function audit(users: User[], ackedByRoom: Map<number, Set<string>>): Violations {
  const result: Violations = { lost: 0, duplicated: 0, reordered: 0, sdkDropped: 0 };
  const orderByRoom = new Map<number, string[]>();
  for (const user of users) {
    result.sdkDropped += user.client.duplicatesDropped;
    for (const room of user.rooms) {
      const got = user.received.get(room) ?? [];
      const acked = ackedByRoom.get(room) ?? new Set();
      const unique = new Set(got);
      result.duplicated += got.length - unique.size;
      for (const key of acked) if (!unique.has(key)) result.lost++;
      // Same order as the first member seen: compare the common messages.
      const reference = orderByRoom.get(room);
      if (!reference) { orderByRoom.set(room, got); continue; }
      const position = new Map(reference.map((k, i) => [k, i]));
      let last = -1;
      for (const key of got) {
        const at = position.get(key);
        if (at === undefined) continue;
        if (at < last) result.reordered++;
        last = Math.max(last, at);
      }
    }
  }
  return result;
}

export function totalExpected(users: User[], ackedByRoom: Map<number, Set<string>>): number {
  let n = 0;
  for (const user of users) for (const room of user.rooms) n += ackedByRoom.get(room)?.size ?? 0;
  return n;
}

export function totalReceived(users: User[]): number {
  let n = 0;
  for (const user of users) for (const list of user.received.values()) n += list.length;
  return n;
}

/**
 * Before counting, an event instead of a pause: one more message in each
 * room, and every member has it. A room's messages reach a member in order,
 * so whatever was on its way before the marker has arrived too. The markers
 * are then taken out of what the users received.
 */
export async function settle(users: User[], publisher: Publisher): Promise<void> {
  const rooms = [...new Set(users.flatMap((u) => [...u.rooms]))];
  const markers = new Map<number, string>();
  await Promise.all(rooms.map(async (roomId) => {
    markers.set(roomId, messageIdKey((await publisher.publish({ roomId, payload: Buffer.from('end of test') })).messageId));
  }));
  await eventually(() => users.every((u) => [...u.rooms].every((r) => (u.received.get(r) ?? []).includes(markers.get(r)!))),
    'every member to get the end-of-test marker of each of its rooms');
  for (const u of users) {
    for (const [roomId, key] of markers) {
      const list = u.received.get(roomId);
      if (list) u.received.set(roomId, list.filter((k) => k !== key));
    }
  }
}
