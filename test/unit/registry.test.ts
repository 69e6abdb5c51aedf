// The registry's schemas and its embedded back-end (TTL expiry, events).
import { afterEach, describe, expect, test } from '@jest/globals';
import { EmbeddedRegistry } from '../../workloads/registry/embedded.js';
import { defaultTopology, MemberSchema, TopologySchema, type Member } from '../../workloads/registry/schema.js';

function member(id: string, patch: Partial<Member> = {}): Member {
  return { id, role: 'broker', partition: 0, replica: 0, address: '127.0.0.1:4000', ready: false, ...patch };
}

async function waitFor(check: () => boolean, boundMs = 5000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  const make = (ttlMs: number) => {
    const r = new EmbeddedRegistry(defaultTopology(), ttlMs);
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

  test('a member that is not renewed expires after its TTL, with a members event', async () => {
    const registry = make(100);
    const events: string[][] = [];
    registry.on('members', (ms) => events.push(ms.map((m) => m.id)));
    registry.put(member('a'));
    expect(registry.members().map((m) => m.id)).toEqual(['a']);
    await waitFor(() => registry.members().length === 0);
    expect(events).toEqual([['a'], []]);
  });

  test('renew keeps a member past its TTL; renewing an unknown id says so', async () => {
    const registry = make(150);
    registry.put(member('a'));
    registry.put(member('b', { replica: 1 }));
    for (let i = 0; i < 8; i++) {
      await sleep(50);
      expect(registry.renew('a')).toBe(true);
    }
    // 400 ms later: a was renewed, b was not.
    expect(registry.members().map((m) => m.id)).toEqual(['a']);
    expect(registry.renew('b')).toBe(false);
  });

  test('register renews on its own, update replaces fields, close removes at once', async () => {
    const registry = make(90);
    const reg = await registry.register(member('a'));
    await sleep(400); // more than four TTLs
    expect(registry.members()).toEqual([member('a')]);
    await reg.update({ ready: true, address: '127.0.0.1:4001' });
    expect(registry.members()).toEqual([member('a', { ready: true, address: '127.0.0.1:4001' })]);
    await reg.close();
    expect(registry.members()).toEqual([]);
    await sleep(150);
    expect(registry.members()).toEqual([]); // the stopped renewal does not bring it back
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
