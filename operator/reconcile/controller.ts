// Wires the informers to the work queue. A change to a cluster or to an object
// it owns queues that cluster for a reconcile; a member Lease does only when
// its member changed while a doubling waits on it, and a pod only when its
// problem did (triggers.ts), not
// on every renewal or probe. Every cluster is
// also looked at again now and then (a reconcile that finds nothing to do
// writes nothing), so nothing missed stays missed.
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject, type V1Lease, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../workloads/observability/logger.js';
import { WatchCache } from '../../workloads/kube/watch-cache.js';
import { LABEL_CLUSTER, LABEL_LEASE } from '../../workloads/registry/kubernetes-objects.js';
import { API_VERSION, KIND, PLURAL } from '../api/v1alpha1.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../builders/names.js';
import { apiMessage, KubeApi } from './kube-api.js';
import { queueDepth, reconciles, reconcileSeconds } from './metrics.js';
import { OWNED_KINDS, Reconciler, type OwnedKind } from './reconciler.js';
import { memberLeaseChanges, podProblemChanges, waitsOnMembers } from './triggers.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; all when omitted. */
  namespace?: string;
  log: Logger;
  /** Names this operator in the events it records (its pod name). */
  instance: string;
  resyncMs?: number;
}

export interface Controller {
  stop(): Promise<void>;
}

export const DEFAULT_RESYNC_MS = 300_000;

/** A collection to watch: its path (all namespaces or one) and how to list it. */
function collection<T extends KubernetesObject>(objects: KubernetesObjectApi, apiVersion: string, kind: string, plural: string,
  namespace: string | undefined, labelSelector: string) {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return {
    path: namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`,
    labelSelector,
    list: () => objects.list<T>(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector),
  };
}

const kindKey = (k: Pick<OwnedKind, 'apiVersion' | 'kind'>) => `${k.apiVersion}/${k.kind}`;

export async function startController(o: ControllerOptions): Promise<Controller> {
  const objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
  const api = new KubeApi(o.kubeConfig, o.instance);
  const keyOf = (namespace: string | undefined, name: string | undefined) => `${namespace}/${name}`;
  let queue: WorkQueue | undefined;
  const enqueue = (key: string) => {
    queue?.add(key);
    queueDepth.set(queue?.depth ?? 0);
  };
  const enqueueOwner = (object: KubernetesObject) => {
    const cluster = object.metadata?.labels?.[LABEL_CLUSTER];
    if (cluster) enqueue(keyOf(object.metadata?.namespace, cluster));
  };
  const onError = (what: string) => (err: unknown) => o.log.warn({ err: apiMessage(err) }, `watching ${what} failed; retrying`);
  const owned = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

  const clusters = new WatchCache<KubernetesObject>(o.kubeConfig, {
    ...collection(objects, API_VERSION, KIND, PLURAL, o.namespace, ''),
    onChange: (cr) => enqueue(keyOf(cr.metadata?.namespace, cr.metadata?.name)),
    onError: onError('clusters'),
  });
  // Every kind the operator creates, so a deleted or edited object is put back
  // at once, and skipped applies and pruning need no API call.
  const ownedCaches = new Map(OWNED_KINDS.map((k) => [kindKey(k), new WatchCache<KubernetesObject>(o.kubeConfig, {
    ...collection(objects, k.apiVersion, k.kind, k.plural, o.namespace, owned), onChange: enqueueOwner, onError: onError(k.plural),
  })]));
  const memberChanges = memberLeaseChanges();
  const leases: WatchCache<V1Lease> = new WatchCache<V1Lease>(o.kubeConfig, {
    ...collection(objects, 'coordination.k8s.io/v1', 'Lease', 'leases', o.namespace, `${LABEL_LEASE}=member`),
    onChange: (lease) => {
      const present = leases.get(lease.metadata!.name!, lease.metadata?.namespace) !== undefined;
      const cluster = clusters.get(lease.metadata?.labels?.[LABEL_CLUSTER] ?? '', lease.metadata?.namespace);
      if (memberChanges.matters(lease, present) && waitsOnMembers(cluster)) enqueueOwner(lease);
    },
    onError: onError('member Leases'),
  });
  // The clusters' pods (made by their StatefulSets and Deployments, with their labels), for the problems status reports.
  const podChanges = podProblemChanges();
  const pods: WatchCache<V1Pod> = new WatchCache<V1Pod>(o.kubeConfig, {
    ...collection(objects, 'v1', 'Pod', 'pods', o.namespace, owned),
    onChange: (pod) => {
      if (podChanges.matters(pod, pods.get(pod.metadata!.name!, pod.metadata?.namespace) !== undefined)) enqueueOwner(pod);
    },
    onError: onError('pods'),
  });
  const caches = [clusters, leases, pods, ...ownedCaches.values()];
  await Promise.all(caches.map((c) => c.start()));

  const cacheOf = (k: Pick<OwnedKind, 'apiVersion' | 'kind'>) => ownedCaches.get(kindKey(k))!;
  const reconciler = new Reconciler(api, {
    get: (k, namespace, name) => cacheOf(k).get(name, namespace),
    list: (k, namespace) => cacheOf(k).list(namespace),
    leases: (ns) => leases.list(ns),
    pods: (ns) => pods.list(ns),
  }, o.log);
  queue = new WorkQueue(
    async (key) => {
      const [namespace, name] = key.split('/') as [string, string];
      const end = reconcileSeconds.startTimer();
      try {
        const result = await reconciler.reconcile(namespace, name);
        reconciles.inc({ result: 'success' });
        return result;
      } catch (err) {
        reconciles.inc({ result: 'error' });
        throw err;
      } finally {
        end();
        queueDepth.set(queue!.depth);
      }
    },
    (key, err) => o.log.error({ cluster: key, err: apiMessage(err) }, 'reconcile failed; retrying'),
  );
  const resyncAll = () => { for (const cr of clusters.list()) enqueue(keyOf(cr.metadata?.namespace, cr.metadata?.name)); };
  resyncAll();
  const resync = setInterval(resyncAll, o.resyncMs ?? DEFAULT_RESYNC_MS);
  o.log.info({ namespace: o.namespace ?? '(all)' }, 'operator started');

  return {
    async stop() {
      clearInterval(resync);
      await queue!.stop();
      await Promise.all(caches.map((c) => c.stop()));
    },
  };
}
