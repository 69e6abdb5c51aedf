// How the kubernetes registry lays its documents out in the API: the names,
// labels and encodings the operator writes and the pods read. The one place
// both sides take them from.
import type { V1ConfigMap, V1Lease } from '@kubernetes/client-node';
import { z } from 'zod';
import { MemberSchema, TopologySchema, type Member, type Topology } from './schema.js';

export const LABEL_CLUSTER = 'groupchat.dev/cluster';
export const LABEL_ROLE = 'groupchat.dev/role';
export const LABEL_PARTITION = 'groupchat.dev/partition';
/** Set to "member" on the Leases members hold (leader Leases will differ). */
export const LABEL_LEASE = 'groupchat.dev/lease';
export const MEMBER_ANNOTATION = 'groupchat.dev/member';
export const TOPOLOGY_KEY = 'topology.json';

export const topologyConfigMapName = (cluster: string) => `${cluster}-topology`;
/** The Lease acquireLease takes (a gateway ordinal's, `name` e.g. "gateway-ordinal-3"). */
export const leaderLeaseName = (cluster: string, name: string) => `${cluster}-leader-${name}`;
export const memberLeaseSelector = (cluster: string) => `${LABEL_CLUSTER}=${cluster},${LABEL_LEASE}=member`;

/** Reads the topology from its ConfigMap; throws with the reason when it is not valid. */
export function topologyFromConfigMap(configMap: V1ConfigMap): Topology {
  const raw = configMap.data?.[TOPOLOGY_KEY];
  if (raw === undefined) throw new Error(`ConfigMap ${configMap.metadata?.name} has no ${TOPOLOGY_KEY}`);
  return TopologySchema.parse(JSON.parse(raw));
}

export function topologyData(topology: Topology): Record<string, string> {
  return { [TOPOLOGY_KEY]: JSON.stringify(TopologySchema.parse(topology)) };
}

/** A Lease's time as the API wants a MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const MemberLease = z.object({
  metadata: z.object({ annotations: z.object({ [MEMBER_ANNOTATION]: z.string() }) }),
  spec: z.object({ leaseDurationSeconds: z.number().int().positive() }),
});

export interface MemberLeaseRecord {
  member: Member;
  durationMs: number;
}

/** The member a Lease holds with its duration, or undefined when it is malformed. */
export function parseMemberLease(lease: V1Lease): MemberLeaseRecord | undefined {
  const parsed = MemberLease.safeParse(lease);
  if (!parsed.success) return undefined;
  const { spec, metadata } = parsed.data;
  try {
    const member = MemberSchema.safeParse(JSON.parse(metadata.annotations[MEMBER_ANNOTATION]));
    return member.success ? { member: member.data, durationMs: spec.leaseDurationSeconds * 1000 } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * parseMemberLease for every Lease of a watch, each parsed again only when what
 * its record is made of (the member annotation, the duration) changed. A
 * renewal changes neither, and every pod reads every Lease on every renewal:
 * parsing them all each time cost each pod O(members²) of CPU a second (13 %
 * of a core at 200 pods). An unchanged Lease gives the same record object, so
 * callers can compare by identity.
 */
export class MemberLeaseParser {
  private cache = new Map<string, { annotation: string | undefined; duration: number | undefined; record: MemberLeaseRecord | undefined }>();

  /** The records of these Leases (undefined for a malformed one); forgets Leases no longer listed. */
  parseAll(leases: readonly V1Lease[]): Array<MemberLeaseRecord | undefined> {
    const next = new Map<string, { annotation: string | undefined; duration: number | undefined; record: MemberLeaseRecord | undefined }>();
    const records = leases.map((lease) => {
      const key = `${lease.metadata?.namespace}/${lease.metadata?.name}`;
      const annotation = lease.metadata?.annotations?.[MEMBER_ANNOTATION];
      const duration = lease.spec?.leaseDurationSeconds;
      const known = this.cache.get(key);
      const entry = known && known.annotation === annotation && known.duration === duration
        ? known : { annotation, duration, record: parseMemberLease(lease) };
      next.set(key, entry);
      return entry.record;
    });
    this.cache = next;
    return records;
  }
}

/**
 * The member a Lease holds, or undefined when it is malformed or expired at
 * `nowMs`: not seen to change for a whole duration since `observedAtMs`
 * (lease-observations.ts).
 */
export function memberFromLease(lease: V1Lease, observedAtMs: number, nowMs: number): Member | undefined {
  const record = parseMemberLease(lease);
  return record && observedAtMs + record.durationMs >= nowMs ? record.member : undefined;
}

/**
 * Whether a member's Lease has expired for a reader that last saw it change
 * at `observedAtMs` (its own clock) and has been in contact with the API
 * server since `contactSinceMs` (undefined: it is not in contact now). Static
 * stability: a reader that cannot reach the API server expires nobody, since
 * nobody's renewals could reach it either; and once back, it gives every
 * Lease a whole duration from then to be renewed, since nobody could renew
 * during the outage. Members that really left are dropped a duration after
 * contact returns (or at once, when their Lease is deleted).
 */
export function leaseExpired(durationMs: number, observedAtMs: number, contactSinceMs: number | undefined, nowMs: number): boolean {
  if (contactSinceMs === undefined) return false;
  return Math.max(observedAtMs, contactSinceMs) + durationMs < nowMs;
}

export interface MemberLeaseOptions {
  name: string;
  namespace: string;
  cluster: string;
  member: Member;
  durationSeconds: number;
  renewedAt: Date;
  /** The pod holding the Lease, so the Lease goes when the pod does. */
  pod?: { name: string; uid: string };
}

/** The Lease a member applies (whole, on every renewal). */
export function memberLease(o: MemberLeaseOptions): V1Lease & { apiVersion: string; kind: string } {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: o.name,
      namespace: o.namespace,
      labels: {
        [LABEL_CLUSTER]: o.cluster, [LABEL_LEASE]: 'member',
        [LABEL_ROLE]: o.member.role, [LABEL_PARTITION]: String(o.member.partition),
      },
      annotations: { [MEMBER_ANNOTATION]: JSON.stringify(o.member) },
      ...(o.pod ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: o.pod.name, uid: o.pod.uid }] } : {}),
    },
    spec: {
      holderIdentity: o.member.id,
      leaseDurationSeconds: o.durationSeconds,
      // Serialised as the API's MicroTime, which a Date would not be.
      renewTime: microTime(o.renewedAt) as unknown as Date,
    },
  };
}
