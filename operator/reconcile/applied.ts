// Which desired objects need a server-side apply. An object is skipped when
// its desired form is the one this operator last applied and its live copy
// (from the informers) is still the version that apply produced: applying it
// again would change nothing, and an idle cluster must cost the API server no
// writes. Anything else (a new desired form, an object deleted, or edited by
// someone else) is applied.
import type { KubernetesObject } from '@kubernetes/client-node';

export const objectKey = (o: KubernetesObject) => `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/**
 * The version of a live object that matters here. Objects with a spec count
 * changes to it in `generation`, and their controllers' status writes do not
 * touch it, so a rollout's status updates do not make them stale; the others
 * (ConfigMaps, Services, RBAC) change resourceVersion only when edited. The uid
 * tells a re-created object from the one applied.
 */
export function versionOf(live: KubernetesObject | undefined): string | undefined {
  const m = live?.metadata;
  if (!m?.uid) return undefined;
  return `${m.uid}/${m.generation ?? m.resourceVersion}`;
}

export class AppliedObjects {
  private readonly applied = new Map<string, { desired: string; version: string }>();
  /** Each desired object's JSON, made once: desired objects are reused while their cluster's state stands (desired-cache.ts). */
  private readonly serialized = new WeakMap<KubernetesObject, string>();

  /** True when `desired` was applied last and `live` is what that apply left. */
  upToDate(desired: KubernetesObject, live: KubernetesObject | undefined): boolean {
    const record = this.applied.get(objectKey(desired));
    const version = versionOf(live);
    return record !== undefined && version !== undefined && record.version === version && record.desired === this.json(desired);
  }

  /** Remembers an apply and the object the API server answered with. */
  record(desired: KubernetesObject, result: KubernetesObject): void {
    const version = versionOf(result);
    if (version) this.applied.set(objectKey(desired), { desired: this.json(desired), version });
  }

  forget(object: KubernetesObject): void {
    this.applied.delete(objectKey(object));
  }

  private json(desired: KubernetesObject): string {
    let json = this.serialized.get(desired);
    if (json === undefined) {
      json = JSON.stringify(desired);
      this.serialized.set(desired, json);
    }
    return json;
  }
}
