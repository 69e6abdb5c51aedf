// Wires the informers to the work queue: any change to a cluster, to an object
// it owns or to one of its member Leases queues that cluster for a reconcile;
// every cluster is also looked at again now and then, so nothing missed stays
// missed.
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject, type V1Deployment, type V1Lease, type V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../../workloads/observability/logger.js';
import { WatchCache } from '../../workloads/kube/watch-cache.js';
import { LABEL_CLUSTER, LABEL_LEASE } from '../../workloads/registry/kubernetes-objects.js';
import { API_VERSION, KIND, PLURAL } from '../api/v1alpha1.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../builders/names.js';
import { apiMessage, KubeApi } from './kube-api.js';
import { Reconciler } from './reconciler.js';
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

export async function startController(o: ControllerOptions): Promise<Controller> {
  const objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
  const api = new KubeApi(o.kubeConfig, o.instance);
  const keyOf = (namespace: string | undefined, name: string | undefined) => `${namespace}/${name}`;
  let queue: WorkQueue | undefined;
  const enqueueOwner = (object: KubernetesObject) => {
    const cluster = object.metadata?.labels?.[LABEL_CLUSTER];
    if (cluster) queue?.add(keyOf(object.metadata?.namespace, cluster));
  };
  const onError = (what: string) => (err: unknown) => o.log.warn({ err: apiMessage(err) }, `watching ${what} failed; retrying`);
  const owned = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

  const clusters = new WatchCache<KubernetesObject>(o.kubeConfig, {
    ...collection(objects, API_VERSION, KIND, PLURAL, o.namespace, ''),
    onChange: (cr) => queue?.add(keyOf(cr.metadata?.namespace, cr.metadata?.name)),
    onError: onError('clusters'),
  });
  const statefulSets = new WatchCache<V1StatefulSet>(o.kubeConfig, {
    ...collection(objects, 'apps/v1', 'StatefulSet', 'statefulsets', o.namespace, owned), onChange: enqueueOwner, onError: onError('StatefulSets'),
  });
  const deployments = new WatchCache<V1Deployment>(o.kubeConfig, {
    ...collection(objects, 'apps/v1', 'Deployment', 'deployments', o.namespace, owned), onChange: enqueueOwner, onError: onError('Deployments'),
  });
  // The topology ConfigMap: put back at once if someone deletes or edits it.
  const configMaps = new WatchCache<KubernetesObject>(o.kubeConfig, {
    ...collection(objects, 'v1', 'ConfigMap', 'configmaps', o.namespace, owned), onChange: enqueueOwner, onError: onError('ConfigMaps'),
  });
  const leases = new WatchCache<V1Lease>(o.kubeConfig, {
    ...collection(objects, 'coordination.k8s.io/v1', 'Lease', 'leases', o.namespace, `${LABEL_LEASE}=member`),
    onChange: enqueueOwner, onError: onError('member Leases'),
  });
  const caches = [clusters, statefulSets, deployments, configMaps, leases];
  await Promise.all(caches.map((c) => c.start()));

  const reconciler = new Reconciler(api, {
    statefulSet: (ns, name) => statefulSets.get(name, ns),
    deployment: (ns, name) => deployments.get(name, ns),
    leases: (ns) => leases.list(ns),
  }, o.log);
  queue = new WorkQueue(
    (key) => {
      const [namespace, name] = key.split('/') as [string, string];
      return reconciler.reconcile(namespace, name);
    },
    (key, err) => o.log.error({ cluster: key, err: apiMessage(err) }, 'reconcile failed; retrying'),
  );
  const resyncAll = () => { for (const cr of clusters.list()) queue!.add(keyOf(cr.metadata?.namespace, cr.metadata?.name)); };
  resyncAll();
  const resync = setInterval(resyncAll, o.resyncMs ?? 30_000);
  o.log.info({ namespace: o.namespace ?? '(all)' }, 'operator started');

  return {
    async stop() {
      clearInterval(resync);
      await queue!.stop();
      await Promise.all(caches.map((c) => c.stop()));
    },
  };
}
