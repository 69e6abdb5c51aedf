// The workloads of `groupchat bench`: who connects where, which rooms they
// join, and which rooms the publishers send to. The same plan drives both
// systems, so they see the same clients, rooms, payloads and rates.
import type { ScenarioName } from './common.js';

/** inbox: its rooms are one-to-one conversations (labels for the audit), not joined; messages reach it one-to-one. */
export interface PlannedUser { id: number; rooms: number[]; gateway: number; inbox?: boolean }

export interface Plan {
  scenario: ScenarioName;
  users: PlannedUser[];
  /** Message g goes to publishRooms[g % length]. */
  publishRooms: number[];
  splitThreshold: number;
  /** Users kept apart from the measured ones (idle: the warm-up connections). */
  warmupUsers: PlannedUser[];
  /** direct: the user who sends conversation publishRooms[i] is senders[i], to recipients[i]. */
  direct: { senders: PlannedUser[]; recipients: number[] } | null;
  describe: string;
}

export interface PlanOptions {
  users: number;
  roomSize: number;
  gateways: number;
  splitThreshold?: number;
}

export const DEFAULT_USERS: Record<ScenarioName, number> = {
  fanout: 4000, broadcast: 2000, direct: 2000, connect: 5000, idle: 10000, ingest: 0,
};

const USER_BASE = 1_000_000;
const ROOM_BASE = 1_000;

export function plan(scenario: ScenarioName, o: PlanOptions): Plan {
  const users: PlannedUser[] = [];
  const idOf = (i: number) => USER_BASE + i;
  switch (scenario) {
    case 'fanout': {
      // Many small rooms: room r holds users r*S .. r*S+S-1, spread over the gateways.
      const size = Math.max(2, o.roomSize);
      const rooms = Math.max(1, Math.floor(o.users / size));
      for (let i = 0; i < rooms * size; i++) users.push({ id: idOf(i), rooms: [ROOM_BASE + Math.floor(i / size)], gateway: i % o.gateways });
      return {
        scenario, users, publishRooms: range(ROOM_BASE, rooms), splitThreshold: o.splitThreshold ?? 1000, warmupUsers: [], direct: null,
        describe: `${rooms} rooms of ${size} members (${users.length} users over ${o.gateways} gateways); each message goes to one room, rooms in turn`,
      };
    }
    case 'broadcast': {
      const room = ROOM_BASE;
      for (let i = 0; i < o.users; i++) users.push({ id: idOf(i), rooms: [room], gateway: i % o.gateways });
      const threshold = o.splitThreshold ?? Math.max(1, Math.floor(o.users / 2));
      return {
        scenario, users, publishRooms: [room], splitThreshold: threshold, warmupUsers: [], direct: null,
        describe: `one room of ${o.users} members over ${o.gateways} gateways; groupchat splits it into 64 virtual rooms (split threshold ${threshold})`,
      };
    }
    case 'direct': {
      // Conversation p: its sender (held by the publisher process) writes one-to-one to its recipient, on another gateway.
      const pairs = Math.max(1, Math.floor(o.users / 2));
      const senders: PlannedUser[] = [];
      for (let p = 0; p < pairs; p++) {
        senders.push({ id: idOf(2 * p), rooms: [], gateway: 0 });
        users.push({ id: idOf(2 * p + 1), rooms: [ROOM_BASE + p], gateway: 1 % o.gateways, inbox: true });
      }
      return {
        scenario, users, publishRooms: range(ROOM_BASE, pairs), splitThreshold: o.splitThreshold ?? 1000, warmupUsers: [],
        direct: { senders, recipients: users.map((u) => u.id) },
        describe: `${pairs} one-to-one conversations, the sender and the recipient on different gateways; groupchat stores each message (Xiu, Pi) before the Relay pushes it`,
      };
    }
    case 'connect':
      for (let i = 0; i < o.users; i++) users.push({ id: idOf(i), rooms: [ROOM_BASE + (i % 100)], gateway: i % o.gateways });
      return {
        scenario, users, publishRooms: [], splitThreshold: o.splitThreshold ?? 1000, warmupUsers: [], direct: null,
        describe: `${o.users} clients connect, log in and join one of 100 rooms as fast as the system lets them`,
      };
    case 'idle': {
      // Spread over the gateways in turn; the first 100 connections warm the gateways up and are not counted.
      const warmupUsers = range(0, 100).map((i) => ({ id: idOf(i), rooms: [ROOM_BASE + (i % 100)], gateway: i % o.gateways }));
      for (let i = 100; i < 100 + o.users; i++) users.push({ id: idOf(i), rooms: [ROOM_BASE + (i % 100)], gateway: i % o.gateways });
      return {
        scenario, users, publishRooms: [], splitThreshold: o.splitThreshold ?? 1000, warmupUsers, direct: null,
        describe: `${o.users} idle connections (logged in, one of 100 rooms joined) over ${o.gateways === 1 ? 'one gateway' : `${o.gateways} gateways`}, after 100 warm-up connections`,
      };
    }
    case 'ingest':
      return {
        scenario, users: [], publishRooms: range(2_000_000, 1000), splitThreshold: o.splitThreshold ?? 1000, warmupUsers: [], direct: null,
        describe: 'pipelined publishes into 1000 rooms without members, all through one proxy (Socket.IO: one server)',
      };
  }
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}
