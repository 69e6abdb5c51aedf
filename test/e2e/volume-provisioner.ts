// The e2e control plane has no storage driver, so a PersistentVolumeClaim
// would stay Pending and its pod unschedulable. This stands in for a local
// volume provisioner: for every claim without a volume it creates a
// PersistentVolume bound to it (claimRef), and the controller-manager's
// volume binder does the rest, as on a real cluster. The node agent maps each
// claim to a folder of its own (node-agent.ts), so the PV's path is nominal.
import { CoreV1Api, type KubeConfig, type V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { WatchCache } from '../../workloads/kube/watch-cache.js';

export class VolumeProvisioner {
  private readonly core: CoreV1Api;
  private readonly claims: WatchCache<V1PersistentVolumeClaim>;
  private readonly created = new Set<string>();
  private stopped = false;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.claims = new WatchCache<V1PersistentVolumeClaim>(kubeConfig, {
      path: '/api/v1/persistentvolumeclaims',
      list: () => this.core.listPersistentVolumeClaimForAllNamespaces(),
      onChange: (claim) => this.provisionUntilDone(claim),
    });
  }

  /**
   * A claim seen while the API server is away (the static-stability e2e stops
   * it) is provisioned once it is back: its change will not be seen again.
   */
  private provisionUntilDone(claim: V1PersistentVolumeClaim): void {
    this.provision(claim).catch((err: Error & { code?: number }) => {
      if (err.code === 409) return; // created, the answer lost
      process.stderr.write(`e2e provisioner: ${err.message}; trying again in 1 s\n`);
      this.created.delete(volumeNameOf(claim));
      if (!this.stopped) setTimeout(() => this.provisionUntilDone(claim), 1000).unref();
    });
  }

  start(): Promise<void> {
    return this.claims.start();
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.claims.stop();
  }

  private async provision(claim: V1PersistentVolumeClaim): Promise<void> {
    const { namespace, name, uid } = claim.metadata ?? {};
    if (!namespace || !name || claim.spec?.volumeName || claim.metadata?.deletionTimestamp) return;
    const pv = volumeNameOf(claim);
    if (this.created.has(pv)) return;
    this.created.add(pv);
    await this.core.createPersistentVolume({
      body: {
        metadata: { name: pv },
        spec: {
          capacity: { storage: claim.spec?.resources?.requests?.storage ?? '1Gi' },
          accessModes: claim.spec?.accessModes ?? ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Delete',
          storageClassName: claim.spec?.storageClassName ?? '',
          hostPath: { path: `/var/lib/e2e-volumes/${namespace}/${name}` },
          claimRef: { namespace, name, ...(uid ? { uid } : {}) },
        },
      },
    });
  }
}

function volumeNameOf(claim: V1PersistentVolumeClaim): string {
  return `pv-${claim.metadata?.namespace}-${claim.metadata?.name}`.slice(0, 253);
}
