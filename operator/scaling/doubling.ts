// The scaling state machine, pure: from the spec the user wants, the state the
// operator last wrote and the members the registry holds, it decides the next
// state. Replicas change in one step. Partitions only double, through
//   Stable(e) → Expanding(e, next = doubled) → Switching(e + 1) → Stable(e + 1):
// Expanding starts the new partitions while the old layout routes, and ends
// when every replica of every new partition is ready and serves epoch e + 1
// (it has synced its state); Switching ends when every member serves e + 1.
// Any other change of partitions, or any change at all while a doubling runs,
// is refused whole: the accepted spec stays as it was.
import { isDeepStrictEqual } from 'node:util';
import { PARTITIONED_ROLES, type Layout, type Member, type PartitionedRole, type Topology } from '../../workloads/registry/schema.js';
import type { ClusterSpec } from '../api/v1alpha1.js';
import type { ClusterState } from '../builders/topology.js';

export interface Decision {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface ScalingInput {
  spec: ClusterSpec;
  /** What the operator last wrote; undefined for a new cluster. */
  state: ClusterState | undefined;
  /** Live members of the cluster. */
  members: Member[];
  /**
   * The highest epoch this cluster is known to have had, when its state is
   * lost (a cluster from an operator that kept no state in its status, whose
   * topology ConfigMap is gone): the new topology starts above it, so an
   * epoch never goes backwards.
   */
  lastEpoch?: number;
}

export interface ScalingResult {
  state: ClusterState;
  /** Transitions a user should see as events. */
  decisions: Decision[];
  /** Why the spec is not (yet) applied; reported as a condition on every reconcile. */
  refusal?: Decision;
  /** What an unfinished doubling waits for. */
  waitingFor?: string;
}

export function layoutOf(spec: ClusterSpec): Layout {
  const layout: Layout = {
    broker: { partitions: spec.broker.partitions, replicas: spec.broker.replicas },
    router: { partitions: spec.router.partitions, replicas: spec.router.replicas },
  };
  for (const role of ['pi', 'xiu', 'relay'] as const) {
    const r = spec[role];
    if (r) layout[role] = { partitions: r.partitions, replicas: r.replicas };
  }
  return layout;
}

/** What the topology carries from the spec besides the layout. */
function settingsOf(spec: ClusterSpec): Pick<Topology, 'splitThreshold' | 'limits' | 'history'> {
  return { splitThreshold: spec.splitThreshold, ...(spec.limits ? { limits: spec.limits } : {}), ...(spec.history ? { history: spec.history } : {}) };
}

function withoutSettings(topology: Topology): Omit<Topology, 'splitThreshold' | 'limits' | 'history'> {
  const { splitThreshold: _threshold, limits: _limits, history: _history, ...rest } = topology;
  return rest;
}

interface PartitionChange { role: PartitionedRole; from: number; to: number }

function partitionChanges(from: Layout, to: Layout): PartitionChange[] {
  return PARTITIONED_ROLES.flatMap((role) => {
    const a = from[role]?.partitions;
    const b = to[role]?.partitions;
    // A role added or removed whole is not a re-partitioning.
    return a !== undefined && b !== undefined && a !== b ? [{ role, from: a, to: b }] : [];
  });
}

/** Roles whose RocksDB data is placed by partition: re-partitioning would strand it. */
const STORED_ROLES: ReadonlySet<PartitionedRole> = new Set(['pi', 'xiu']);

const describe = (c: PartitionChange) => `${c.role} partitions ${c.from} → ${c.to}`;

export function step(input: ScalingInput): ScalingResult {
  const { spec, state, members } = input;
  if (!state) {
    const epoch = (input.lastEpoch ?? 0) + 1;
    return {
      state: { accepted: spec, topology: { epoch, phase: 'Stable', roles: layoutOf(spec), ...settingsOf(spec) } },
      decisions: [{ type: 'Normal', reason: 'TopologyCreated', message: `topology epoch ${epoch}: ${summary(layoutOf(spec))}` }],
    };
  }
  const { topology } = state;
  const changed = !isDeepStrictEqual(spec, state.accepted);
  if (topology.phase !== 'Stable') {
    const progress = advanceDoubling(state, members);
    if (changed) {
      progress.refusal = {
        type: 'Warning', reason: 'ChangeDuringDoubling',
        message: `a partition doubling is in progress (${topology.phase}); the new spec is applied once it completes`,
      };
    }
    return progress;
  }
  if (!changed) return { state, decisions: [] };

  const changes = partitionChanges(layoutOf(state.accepted), layoutOf(spec));
  const unsafe = changes.filter((c) => c.to !== c.from * 2 || STORED_ROLES.has(c.role));
  if (unsafe.length > 0) {
    const message = unsafe.map((c) => STORED_ROLES.has(c.role)
      ? `${describe(c)} refused: ${c.role} keeps its data by partition, and moving it to new partitions is not implemented`
      : `${describe(c)} refused: partitions only grow by doubling (${c.from} → ${c.from * 2})`).join('; ');
    return { state, decisions: [], refusal: { type: 'Warning', reason: 'PartitionChangeRefused', message } };
  }
  if (changes.length > 0) {
    const next: Topology = { ...withoutSettings(topology), phase: 'Expanding', next: { roles: layoutOf(spec) }, ...settingsOf(spec) };
    return {
      state: { accepted: spec, topology: next },
      decisions: [{
        type: 'Normal', reason: 'DoublingStarted',
        message: `${changes.map(describe).join(', ')}: starting the new partitions beside epoch ${topology.epoch}`,
      }],
      waitingFor: 'the new partitions to start',
    };
  }
  // Replicas, image or anything else: applied at once; a new layout is a new epoch.
  const layout = layoutOf(spec);
  const layoutChanged = !isDeepStrictEqual(layout, topology.roles);
  const nextTopology: Topology = {
    ...withoutSettings(topology), roles: layout, ...settingsOf(spec), epoch: topology.epoch + (layoutChanged ? 1 : 0),
  };
  return {
    state: { accepted: spec, topology: nextTopology },
    decisions: [{
      type: 'Normal', reason: 'SpecApplied',
      message: layoutChanged ? `topology epoch ${nextTopology.epoch}: ${summary(layout)}` : 'applied the new spec',
    }],
  };
}

function advanceDoubling(state: ClusterState, members: Member[]): ScalingResult {
  const { topology } = state;
  if (topology.phase === 'Expanding') {
    const target = topology.epoch + 1;
    const next = topology.next!.roles;
    const missing: string[] = [];
    for (const change of partitionChanges(topology.roles, next)) {
      const replicas = next[change.role]!.replicas;
      for (let partition = change.from; partition < change.to; partition++) {
        const synced = new Set(members
          .filter((m) => m.role === change.role && m.partition === partition && m.ready && (m.epoch ?? 0) >= target)
          .map((m) => m.replica));
        if (synced.size < replicas) missing.push(`${change.role} ${partition} (${synced.size}/${replicas})`);
      }
    }
    if (missing.length > 0) return { state, decisions: [], waitingFor: `new partitions to sync: ${missing.join(', ')}` };
    const { next: _done, ...rest } = topology;
    return {
      state: { ...state, topology: { ...rest, epoch: target, phase: 'Switching', roles: next } },
      decisions: [{ type: 'Normal', reason: 'EpochFlipped', message: `new partitions synced; routing by epoch ${target}: ${summary(next)}` }],
      waitingFor: 'every member to switch',
    };
  }
  // Switching: done once no live member still serves an older epoch.
  const lagging = members.filter((m) => (m.epoch ?? 0) < topology.epoch);
  if (lagging.length > 0) {
    return { state, decisions: [], waitingFor: `members to switch to epoch ${topology.epoch}: ${lagging.map((m) => m.id).join(', ')}` };
  }
  return {
    state: { ...state, topology: { ...topology, phase: 'Stable' } },
    decisions: [{ type: 'Normal', reason: 'DoublingComplete', message: `every member serves epoch ${topology.epoch}` }],
  };
}

function summary(layout: Layout): string {
  return PARTITIONED_ROLES.filter((r) => layout[r]).map((r) => `${r} ${layout[r]!.partitions}×${layout[r]!.replicas}`).join(', ');
}
