// The operator's only door to the API server: server-side apply under one
// field manager, status through the status subresource, events, reads and
// deletes. Everything above it deals in plain objects.
import {
  ApiException, CoreV1Api, CustomObjectsApi, EventsV1Api, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type KubeConfig, type KubernetesObject, type V1ConfigMap,
} from '@kubernetes/client-node';
import { microTime } from '../../workloads/registry/kubernetes-objects.js';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, type ClusterStatus, type GroupChatCluster } from '../api/v1alpha1.js';
import type { Decision } from '../scaling/doubling.js';

export const FIELD_MANAGER = 'groupchat-operator';
export const REPORTING_CONTROLLER = 'groupchat.dev/operator';

export const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

/**
 * The API's own message for a failed call, which says what was wrong. The
 * client hands the body over as JSON text: the message is taken out of it, so
 * a condition or a log line never shows a raw Status document.
 */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined;
    if (typeof body !== 'string') return body?.message || `HTTP ${err.code}`;
    try {
      return (JSON.parse(body) as { message?: string }).message || `HTTP ${err.code}`;
    } catch {
      return body.trim() || `HTTP ${err.code}`;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

export class KubeApi {
  readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly events: EventsV1Api;

  constructor(kubeConfig: KubeConfig, private readonly instance: string) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.events = kubeConfig.makeApiClient(EventsV1Api);
  }

  /** The cluster as stored (not yet validated), or undefined once deleted. */
  async getCluster(namespace: string, name: string): Promise<unknown> {
    try {
      return await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await this.core.readNamespacedConfigMap({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Server-side apply: the operator owns exactly the fields it sets. Resolves with the object as stored. */
  async apply<T extends KubernetesObject>(object: T): Promise<KubernetesObject> {
    return this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  async delete(object: KubernetesObject): Promise<void> {
    try {
      await this.objects.delete(object, undefined, undefined, undefined, undefined, 'Background');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Writes the status. With `resourceVersion`, only if the cluster is still at
   * that version (409 otherwise): a decision is recorded only by the operator
   * that read the state it was decided from.
   */
  async applyStatus(cr: GroupChatCluster, status: ClusterStatus, resourceVersion?: string): Promise<void> {
    const { namespace, name } = cr.metadata;
    await this.custom.patchNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace, plural: PLURAL, name, fieldManager: FIELD_MANAGER, force: true,
      body: { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) }, status },
    }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
  }

  /** Records a decision on the cluster, for `kubectl describe` and `kubectl events`. */
  async event(cr: GroupChatCluster, decision: Decision, action: string): Promise<void> {
    const { namespace, name, uid } = cr.metadata;
    await this.events.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${name}-`, namespace },
        eventTime: microTime(new Date()) as unknown as Date,
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.instance,
        action,
        reason: decision.reason,
        note: decision.message.slice(0, 1024),
        type: decision.type,
        regarding: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid },
      },
    });
  }
}
