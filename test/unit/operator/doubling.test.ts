// The scaling state machine, step by step, without an API server.
import type { Member } from '../../../workloads/registry/schema.js';
import { ClusterSpecSchema, type ClusterSpec } from '../../../operator/api/v1alpha1.js';
import { step, type ScalingResult } from '../../../operator/scaling/doubling.js';
import type { ClusterState } from '../../../operator/builders/topology.js';

const spec = (brokers: number, replicas = 2, extra: Partial<ClusterSpec> = {}): ClusterSpec => ClusterSpecSchema.parse({
  image: 'groupchat:test', proxy: { replicas: 2 }, gateway: { replicas: 2 },
  broker: { partitions: brokers, replicas }, router: { partitions: 1, replicas: 2 }, ...extra,
});

const member = (role: Member['role'], partition: number, replica: number, epoch: number, ready = true): Member =>
  ({ id: `${role}-${partition}-${replica}`, role, partition, replica, address: '10.0.0.1:7000', ready, epoch });

const brokers = (partitions: number[], replicas: number, epoch: number, ready = true) =>
  partitions.flatMap((p) => Array.from({ length: replicas }, (_, r) => member('broker', p, r, epoch, ready)));

const created = (s: ClusterSpec): ClusterState => step({ spec: s, state: undefined, members: [] }).state;

test('a new cluster gets epoch 1, Stable, with the layout of its spec', () => {
  const result = step({ spec: spec(2), state: undefined, members: [] });
  expect(result.state.topology).toEqual({
    epoch: 1, phase: 'Stable', splitThreshold: 1000,
    roles: { broker: { partitions: 2, replicas: 2 }, router: { partitions: 1, replicas: 2 } },
  });
  expect(result.decisions.map((d) => d.reason)).toEqual(['TopologyCreated']);
});

test('nothing changed: nothing to decide', () => {
  const state = created(spec(2));
  expect(step({ spec: spec(2), state, members: [] })).toEqual({ state, decisions: [] });
});

test('a replica change applies at once under a new epoch; an image change keeps the epoch', () => {
  const state = created(spec(2));
  const replicas = step({ spec: spec(2, 3), state, members: [] });
  expect(replicas.state.topology).toMatchObject({ epoch: 2, phase: 'Stable', roles: { broker: { partitions: 2, replicas: 3 } } });
  expect(replicas.state.accepted).toEqual(spec(2, 3));
  const image = step({ spec: { ...spec(2), image: 'groupchat:next' }, state, members: [] });
  expect(image.state.topology.epoch).toBe(1);
  expect(image.state.accepted.image).toBe('groupchat:next');
});

test('adding an offline role is a new layout, not a re-partitioning', () => {
  const state = created(spec(2));
  const withPi = spec(2, 2, { pi: { partitions: 4, replicas: 2, storage: { size: '1Gi' } } });
  const result = step({ spec: withPi, state, members: [] });
  expect(result.refusal).toBeUndefined();
  expect(result.state.topology).toMatchObject({ epoch: 2, phase: 'Stable', roles: { pi: { partitions: 4, replicas: 2 } } });
});

describe('a doubling 2 → 4', () => {
  let state: ClusterState;
  let result: ScalingResult;

  beforeAll(() => {
    result = step({ spec: spec(4), state: created(spec(2)), members: brokers([0, 1], 2, 1) });
    state = result.state;
  });

  test('starts Expanding: the old layout routes, the doubled one is next', () => {
    expect(state.topology).toMatchObject({ epoch: 1, phase: 'Expanding', roles: { broker: { partitions: 2 } }, next: { roles: { broker: { partitions: 4, replicas: 2 } } } });
    expect(state.accepted.broker.partitions).toBe(4);
    expect(result.decisions.map((d) => d.reason)).toEqual(['DoublingStarted']);
  });

  test('waits while any replica of a new partition is not ready or not synced to the next epoch', () => {
    for (const members of [
      [...brokers([0, 1], 2, 1)],
      [...brokers([0, 1], 2, 1), ...brokers([2, 3], 2, 2, false)],
      [...brokers([0, 1], 2, 1), ...brokers([2, 3], 2, 1)],
      [...brokers([0, 1], 2, 1), ...brokers([2], 2, 2), member('broker', 3, 0, 2)],
    ]) {
      const waiting = step({ spec: spec(4), state, members });
      expect(waiting.state).toBe(state);
      expect(waiting.waitingFor).toMatch(/new partitions to sync/);
    }
  });

  test('flips the epoch once every new replica serves it, then switches until every member does', () => {
    const flipped = step({ spec: spec(4), state, members: [...brokers([0, 1], 2, 1), ...brokers([2, 3], 2, 2)] });
    expect(flipped.state.topology).toEqual({
      epoch: 2, phase: 'Switching', splitThreshold: 1000,
      roles: { broker: { partitions: 4, replicas: 2 }, router: { partitions: 1, replicas: 2 } },
    });
    expect(flipped.decisions.map((d) => d.reason)).toEqual(['EpochFlipped']);

    const lagging = step({ spec: spec(4), state: flipped.state, members: [...brokers([0, 1], 2, 1), ...brokers([2, 3], 2, 2)] });
    expect(lagging.state).toBe(flipped.state);
    expect(lagging.waitingFor).toMatch(/members to switch to epoch 2: broker-0-0/);

    const done = step({ spec: spec(4), state: flipped.state, members: brokers([0, 1, 2, 3], 2, 2) });
    expect(done.state.topology).toMatchObject({ epoch: 2, phase: 'Stable' });
    expect(done.decisions.map((d) => d.reason)).toEqual(['DoublingComplete']);
  });

  test('refuses any other change meanwhile, and keeps going', () => {
    const members = [...brokers([0, 1], 2, 1), ...brokers([2, 3], 2, 2)];
    const refused = step({ spec: spec(4, 3), state, members });
    expect(refused.refusal).toMatchObject({ type: 'Warning', reason: 'ChangeDuringDoubling' });
    expect(refused.state.accepted).toEqual(spec(4));
    expect(refused.state.topology.phase).toBe('Switching');
  });
});

test.each([
  [4, 2, /broker partitions 4 → 2 refused: partitions only grow by doubling \(4 → 8\)/],
  [4, 3, /broker partitions 4 → 3 refused/],
  [4, 16, /broker partitions 4 → 16 refused/],
])('partitions %i → %i are refused whole', (from, to, message) => {
  const state = created(spec(from));
  // Together with a replica change, which must not be applied either. (The API server
  // already rejects 3, which is not a power of two; the state machine refuses it all the same.)
  const wanted = spec(from, 5);
  const result = step({ spec: { ...wanted, broker: { ...wanted.broker, partitions: to } }, state, members: [] });
  expect(result.state).toBe(state);
  expect(result.refusal).toMatchObject({ type: 'Warning', reason: 'PartitionChangeRefused' });
  expect(result.refusal!.message).toMatch(message);
  expect(result.decisions).toEqual([]);
});

test('re-partitioning pi or xiu is refused: their data would not move', () => {
  const storage = { size: '1Gi' };
  const withStore = (partitions: number) => spec(2, 2, { pi: { partitions, replicas: 2, storage } });
  const state = created(withStore(2));
  const result = step({ spec: withStore(4), state, members: [] });
  expect(result.state).toBe(state);
  expect(result.refusal).toMatchObject({ type: 'Warning', reason: 'PartitionChangeRefused' });
  expect(result.refusal!.message).toMatch(/pi partitions 2 → 4 refused: pi keeps its data by partition/);
});
