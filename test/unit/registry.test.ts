// The registry's schemas and its embedded back-end (TTL expiry, events).
import { afterEach, describe, expect, jest, test } from '@jest/globals';
import { EmbeddedRegistry } from '../../workloads/registry/embedded.js';
import { defaultTopology, MemberSchema, TopologySchema, type Member } from '../../workloads/registry/schema.js';

function member(id: string, patch: Partial<Member> = {}): Member {
  return { id, role: 'broker', partition: 0, replica: 0, address: '127.0.0.1:4000', ready: false, ...patch };
}

/** A clock the test moves: TTLs expire when the test says, however busy the machine is. */
function manualClock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => { now += ms; } };
}

describe('TopologySchema', () => {
  test('accepts the default topology', () => {
    const topology = defaultTopology(4, 3, 2);
    expect(TopologySchema.parse(topology)).toEqual(topology);
    expect(topology.roles.broker).toEqual({ partitions: 4, replicas: 3 });
    expect(topology.roles.router).toEqual({ partitions: 1, replicas: 2 });
  });

  test.each([
    ['zero partitions', { roles: { broker: { partitions: 0, replicas: 1 }, router: { partitions: 1, replicas: 1 } } }],
    ['fractional replicas', { roles: { broker: { partitions: 1, replicas: 1.5 }, router: { partitions: 1, replicas: 1 } } }],
    ['too many replicas', { roles: { broker: { partitions: 1, replicas: 17 }, router: { partitions: 1, replicas: 1 } } }],
    ['a missing role', { roles: { broker: { partitions: 1, replicas: 1 } } }],
    ['an unknown phase', { phase: 'Shrinking' }],
    ['a negative epoch', { epoch: -1 }],
    ['a split threshold of 0', { splitThreshold: 0 }],
    ['an unknown key', { favouriteColour: 'blue' }],
  ])('refuses %s', (_what, patch) => {
    expect(TopologySchema.safeParse({ ...defaultTopology(), ...patch }).success).toBe(false);
  });
});

describe('MemberSchema', () => {
  test('accepts a full gateway member', () => {
    const gw = member('gateway-0', { role: 'gateway', httpAddress: 'localhost:9090', wsUrl: 'ws://127.0.0.1:8081/', ready: true });
    expect(MemberSchema.parse(gw)).toEqual(gw);
  });

  test.each([
    ['an empty id', { id: '' }],
    ['an unknown role', { role: 'operator' }],
    ['an address without a port', { address: '127.0.0.1' }],
    ['an address with a space', { address: 'bad host:1' }],
    ['port 0, which no peer can dial', { address: '127.0.0.1:0' }],
    ['a port above 65535', { address: '127.0.0.1:99999' }],
    ['an http address with port 0', { httpAddress: 'localhost:0' }],
    ['a negative partition', { partition: -1 }],
    ['a wsUrl that is not a URL', { wsUrl: 'not a url' }],
    ['ready as a string', { ready: 'yes' }],
    ['an unknown key', { favouriteColour: 'blue' }],
  ])('refuses %s', (_what, patch) => {
    expect(MemberSchema.safeParse({ ...member('m'), ...patch }).success).toBe(false);
  });
});

describe('EmbeddedRegistry', () => {
  const registries: EmbeddedRegistry[] = [];
  const make = (ttlMs: number, now?: () => number) => {
    const r = new EmbeddedRegistry(defaultTopology(), ttlMs, now);
    registries.push(r);
    return r;
  };
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.close();
  });

  test('refuses an invalid topology at construction and on update, keeping the old one', () => {
    expect(() => new EmbeddedRegistry({ ...defaultTopology(), epoch: -3 })).toThrow();
    const registry = make(1000);
    expect(() => registry.setTopology({ ...defaultTopology(), phase: 'Nope' as 'Stable' })).toThrow();
    expect(registry.topology()).toEqual(defaultTopology());
  });

  test('setTopology emits the new topology', () => {
    const registry = make(1000);
    const seen: number[] = [];
    registry.on('topology', (t) => seen.push(t.epoch));
    registry.setTopology({ ...defaultTopology(), epoch: 2 });
    expect(seen).toEqual([2]);
    expect(registry.topology().epoch).toBe(2);
  });

  test('put refuses an invalid member', () => {
    const registry = make(1000);
    expect(() => registry.put(member('x', { address: 'nope' }))).toThrow();
    expect(registry.members()).toEqual([]);
  });

  test('a member that is not renewed expires after its TTL, with a members event', () => {
    const clock = manualClock();
    const registry = make(100, clock.now);
    const events: string[][] = [];
    registry.on('members', (ms) => events.push(ms.map((m) => m.id)));
    registry.put(member('a'));
    clock.advance(100);
    registry.expire();
    expect(registry.members().map((m) => m.id)).toEqual(['a']); // at the TTL, not yet past it
    clock.advance(1);
    registry.expire();
    expect(registry.members()).toEqual([]);
    expect(events).toEqual([['a'], []]);
  });

  test('renew keeps a member past its TTL; renewing an unknown id says so', () => {
    const clock = manualClock();
    const registry = make(150, clock.now);
    registry.put(member('a'));
    registry.put(member('b', { replica: 1 }));
    for (let i = 0; i < 8; i++) {
      clock.advance(50);
      expect(registry.renew('a')).toBe(true);
      registry.expire();
    }
    // 400 ms later: a was renewed, b was not.
    expect(registry.members().map((m) => m.id)).toEqual(['a']);
    expect(registry.renew('b')).toBe(false);
  });

  test('register renews on its own, update replaces fields, close removes at once', async () => {
    // Fake timers drive the renewal timer: the test decides when it fires, however busy the machine is.
    jest.useFakeTimers();
    try {
      const clock = manualClock(); // nothing expires unless the test moves it
      const registry = make(90, clock.now);
      let renewals = 0;
      const renew = registry.renew.bind(registry);
      registry.renew = (id) => { renewals++; return renew(id); };
      const reg = await registry.register(member('a'));
      jest.advanceTimersByTime(90); // a third of the TTL each: three renewals
      expect(renewals).toBe(3);
      expect(registry.members()).toEqual([member('a')]);
      await reg.update({ ready: true, address: '127.0.0.1:4001' });
      expect(registry.members()).toEqual([member('a', { ready: true, address: '127.0.0.1:4001' })]);
      await reg.close();
      expect(registry.members()).toEqual([]);
      jest.advanceTimersByTime(1000);
      expect(renewals).toBe(3); // the renewal timer stopped with the registration
    } finally {
      jest.useRealTimers();
    }
  });

  test('put replaces a member with the same id', () => {
    const registry = make(1000);
    registry.put(member('a'));
    registry.put(member('a', { ready: true }));
    expect(registry.members()).toEqual([member('a', { ready: true })]);
    registry.remove('a');
    registry.remove('a');
    expect(registry.members()).toEqual([]);
  });
});
