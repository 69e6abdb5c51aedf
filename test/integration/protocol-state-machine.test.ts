// Issue 7, fuzzing of the client protocol's state machine: random sequences
// of requests against a real gateway, each reply checked against a model of
// the session (logged in or not, rooms joined).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { ChatClient, type ChatError } from '../../workloads/sdk/chat-client.js';
import { startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';

interface Model { loggedIn: boolean; rooms: Set<number> }
interface Real { client: ChatClient; userId: number }

const outcome = (p: Promise<unknown>) => p.then(() => 'OK', (e: ChatError) => e.code);
const ROOM = fc.constantFrom(0, 1, 2, 3);

class Login implements fc.AsyncCommand<Model, Real> {
  constructor(readonly valid: boolean) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expected = m.loggedIn ? 'ALREADY_LOGGED_IN' : this.valid ? 'OK' : 'INVALID_ARGUMENT';
    expect(await outcome(r.client.login(this.valid ? r.userId : 0, 'fuzz'))).toBe(expected);
    if (expected === 'OK') m.loggedIn = true;
  }
  toString = () => `login(${this.valid})`;
}

class Join implements fc.AsyncCommand<Model, Real> {
  constructor(readonly room: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expected = !m.loggedIn ? 'NOT_LOGGED_IN' : this.room === 0 ? 'INVALID_ARGUMENT' : 'OK';
    expect(await outcome(r.client.join(this.room))).toBe(expected);
    if (expected === 'OK') m.rooms.add(this.room);
  }
  toString = () => `join(${this.room})`;
}

class Leave implements fc.AsyncCommand<Model, Real> {
  constructor(readonly room: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expected = !m.loggedIn ? 'NOT_LOGGED_IN' : !m.rooms.has(this.room) ? 'NOT_A_MEMBER' : 'OK';
    expect(await outcome(r.client.leave(this.room))).toBe(expected);
    m.rooms.delete(this.room);
  }
  toString = () => `leave(${this.room})`;
}

class Send implements fc.AsyncCommand<Model, Real> {
  constructor(readonly room: number, readonly bytes: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expected = !m.loggedIn ? 'NOT_LOGGED_IN' : !m.rooms.has(this.room) ? 'NOT_A_MEMBER'
      : this.bytes > 64 * 1024 ? 'INVALID_ARGUMENT' : 'OK';
    expect(await outcome(r.client.send(this.room, Buffer.alloc(this.bytes, 0x61)))).toBe(expected);
  }
  toString = () => `send(${this.room}, ${this.bytes}B)`;
}

class Direct implements fc.AsyncCommand<Model, Real> {
  constructor(readonly to: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const expected = !m.loggedIn ? 'NOT_LOGGED_IN' : this.to === 0 ? 'INVALID_ARGUMENT' : 'OK';
    expect(await outcome(r.client.direct(this.to, Buffer.from('hi')))).toBe(expected);
  }
  toString = () => `direct(${this.to})`;
}

let cluster: LocalClusterHandle;

beforeAll(async () => {
  cluster = await startLocalCluster();
});

afterAll(async () => {
  await cluster.stop();
});

describe('client protocol state machine', () => {
  test('replies follow the session model for random request sequences', async () => {
    let nextUser = 50_000;
    const commands = [
      fc.boolean().map((v) => new Login(v)),
      ROOM.map((room) => new Join(room)),
      ROOM.map((room) => new Leave(room)),
      fc.tuple(ROOM, fc.constantFrom(0, 10, 64 * 1024, 64 * 1024 + 1)).map(([room, bytes]) => new Send(room, bytes)),
      fc.constantFrom(0, 60_001).map((to) => new Direct(to)),
    ];
    await fc.assert(fc.asyncProperty(fc.commands(commands, { maxCommands: 15 }), async (cmds) => {
      const client = await ChatClient.connect(cluster.ready.gateways[nextUser % 2]!);
      try {
        await fc.asyncModelRun(() => ({ model: { loggedIn: false, rooms: new Set<number>() }, real: { client, userId: nextUser++ } }), cmds);
      } finally {
        await client.close();
      }
    }), { numRuns: 150 });
  });
});
