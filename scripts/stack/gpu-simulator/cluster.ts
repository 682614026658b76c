// SIMULATION: the gpu-simulator's view of the cluster: simulated disks for PVCs, the host
// folder behind a pod's volume, and completing a pod as its kubelet would.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, StorageV1Api, type V1Pod, type V1Volume } from '@kubernetes/client-node';
import { retryOnConflict } from '../../../activities/kubernetes/api-errors.js';

export const storageClassName = 'simulated-disk';
/**
 * The simulated classes: the default one, as Azure Disk (managed-csi) binds, WaitForFirstConsumer
 * and zonal (https://learn.microsoft.com/azure/aks/azure-disk-csi#dynamically-create-azure-disks-pvs-by-using-the-built-in-storage-classes);
 * and AKS's built-in azurefile-csi under its own name, so files that name it (KAITO's PVC example)
 * bind unchanged: Immediate, and reachable from every zone, as an Azure Files share is
 * (https://learn.microsoft.com/azure/aks/azure-files-csi; the driver's class:
 * kubernetes-sigs/azurefile-csi-driver deploy/example/storageclass-azurefile-csi.yaml).
 */
const simulatedClasses = [
  { name: storageClassName, provisioner: 'simulation.aks-finetune.io/disk', volumeBindingMode: 'WaitForFirstConsumer', zonal: true, isDefault: true },
  { name: 'azurefile-csi', provisioner: 'simulation.aks-finetune.io/file', volumeBindingMode: 'Immediate', zonal: false, isDefault: false },
] as const;
const simulatedClass = (name: string | undefined) => simulatedClasses.find((c) => c.name === name);
// Set on a claim by the kube-scheduler once it has picked the node of the claim's first pod.
const selectedNodeAnnotation = 'volume.kubernetes.io/selected-node';
const zoneLabel = 'topology.kubernetes.io/zone';

/** Where a pod's emptyDir volume lives on this machine (the simulated kubelet's folder). */
export const emptyDirPath = (volumesDir: string, podUid: string, volume: string) => join(volumesDir, 'pods', podUid, volume);

export class SimulatedCluster {
  readonly core: CoreV1Api;
  private readonly storage: StorageV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly volumesDir: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.storage = kubeConfig.makeApiClient(StorageV1Api);
  }

  /** The simulated StorageClasses; a class left by an older stack with another binding mode is replaced (the field is immutable). */
  async ensureStorageClasses(): Promise<void> {
    for (const c of simulatedClasses) {
      const existing = await this.storage.readStorageClass({ name: c.name }).catch((err: { code?: number }) => {
        if (err.code === 404) return undefined;
        throw err;
      });
      if (existing?.volumeBindingMode === c.volumeBindingMode) continue;
      if (existing) await this.storage.deleteStorageClass({ name: c.name });
      await this.storage
        .createStorageClass({
          body: {
            metadata: { name: c.name, ...(c.isDefault ? { annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } } : {}) },
            provisioner: c.provisioner,
            reclaimPolicy: 'Delete',
            volumeBindingMode: c.volumeBindingMode,
          },
        })
        .catch((err: { code?: number }) => {
          if (err.code !== 409) throw err;
        });
    }
  }

  /**
   * Gives every pending claim of a simulated class a hostPath volume: a disk's once the scheduler
   * picked a node for it, pinned to that node's zone, as an Azure Disk is (an LRS disk attaches only
   * to a VM in its own zone; a disk made for a VM without a zone only to VMs without one); a file
   * share's at once, unpinned. Removes released ones. The real kube-scheduler then keeps every later
   * pod of a disk's claim, a replacement after a lost node included, to nodes of that zone
   * (elsewhere: "node(s) didn't match PersistentVolume's node affinity").
   */
  async reconcileVolumes(): Promise<void> {
    const { items: claims } = await this.core.listPersistentVolumeClaimForAllNamespaces();
    for (const claim of claims) {
      const storageClass = simulatedClass(claim.spec?.storageClassName);
      if (claim.status?.phase !== 'Pending' || !storageClass || claim.spec!.volumeName) continue;
      let zone: string | undefined;
      if (storageClass.zonal) {
        const selectedNode = claim.metadata?.annotations?.[selectedNodeAnnotation];
        if (!selectedNode) continue;
        const node = await this.core.readNode({ name: selectedNode }).catch(() => undefined);
        zone = node?.metadata?.labels?.[zoneLabel];
        if (zone === undefined) continue; // the node went away: the scheduler picks another
      }
      const name = `pvc-${claim.metadata!.uid}`;
      const path = join(this.volumesDir, name);
      mkdirSync(path, { recursive: true });
      await this.core
        .createPersistentVolume({
          body: {
            metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': storageClass.provisioner } },
            spec: {
              capacity: { storage: claim.spec!.resources?.requests?.storage ?? '1Gi' },
              accessModes: claim.spec!.accessModes,
              storageClassName: storageClass.name,
              persistentVolumeReclaimPolicy: 'Delete',
              hostPath: { path, type: 'DirectoryOrCreate' },
              ...(zone === undefined ? {} : { nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: zoneLabel, operator: 'In', values: [zone] }] }] } } }),
              claimRef: { namespace: claim.metadata!.namespace, name: claim.metadata!.name, uid: claim.metadata!.uid },
            },
          },
        })
        .catch((err: { code?: number }) => {
          if (err.code !== 409) throw err;
        });
    }
    const { items: volumes } = await this.core.listPersistentVolume();
    for (const volume of volumes) {
      if (!simulatedClass(volume.spec?.storageClassName) || volume.status?.phase !== 'Released') continue;
      rmSync(join(this.volumesDir, volume.metadata!.name!), { recursive: true, force: true });
      await this.core.deletePersistentVolume({ name: volume.metadata!.name! }).catch(() => undefined);
    }
    // A deleted pod's emptyDirs go with it, as the kubelet removes them.
    const podsDir = join(this.volumesDir, 'pods');
    if (!existsSync(podsDir)) return;
    const { items: pods } = await this.core.listPodForAllNamespaces();
    const live = new Set(pods.map((p) => p.metadata!.uid));
    for (const uid of readdirSync(podsDir)) if (!live.has(uid)) rmSync(join(podsDir, uid), { recursive: true, force: true });
  }

  /**
   * The host folder behind `podPath` in `pod`: through the volume a container mounts above it.
   * PVCs resolve to their simulated disk; emptyDirs to a folder per pod uid, as a kubelet keeps
   * them (/var/lib/kubelet/pods/<uid>/volumes/...), so a replaced pod starts with empty ones;
   * projected Secrets to such a folder holding their items, as kubelet writes them.
   */
  async hostPathOf(pod: V1Pod, podPath: string): Promise<string | undefined> {
    const mounts = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].flatMap((c) => c.volumeMounts ?? []);
    const mount = mounts
      .filter((m) => podPath === m.mountPath || podPath.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
    if (!mount || !volume) return undefined;
    const rest = podPath.slice(mount.mountPath.length).replace(/^\//, '');
    if (volume.emptyDir) return join(emptyDirPath(this.volumesDir, pod.metadata!.uid!, volume.name), rest);
    if (volume.projected) return join(await this.projectSecrets(pod, volume), rest);
    const claimName = volume.persistentVolumeClaim?.claimName;
    if (!claimName) return undefined;
    const claim = await this.core.readNamespacedPersistentVolumeClaim({ name: claimName, namespace: pod.metadata!.namespace! });
    if (!claim.spec?.volumeName) return undefined;
    const pv = await this.core.readPersistentVolume({ name: claim.spec.volumeName });
    return pv.spec?.hostPath?.path && join(pv.spec.hostPath.path, rest);
  }

  /**
   * A projected volume's Secret items, written into the pod's folder for that volume (each item's
   * key as its path); a missing Secret or key throws, as kubelet's FailedMount keeps the pod from running.
   */
  private async projectSecrets(pod: V1Pod, volume: V1Volume): Promise<string> {
    const dir = emptyDirPath(this.volumesDir, pod.metadata!.uid!, volume.name);
    await mkdir(dir, { recursive: true });
    for (const source of volume.projected?.sources?.map((s) => s.secret).filter((s) => s !== undefined) ?? []) {
      const secret = await this.core.readNamespacedSecret({ name: source.name!, namespace: pod.metadata!.namespace! });
      for (const item of source.items ?? []) {
        const value = secret.data?.[item.key];
        if (value === undefined) throw new Error(`Secret ${source.name} has no key ${item.key}`);
        await writeFile(join(dir, item.path), Buffer.from(value, 'base64'), { mode: 0o600 });
      }
    }
    return dir;
  }

  /** Whether the pod still runs (not deleted, not ended): a trainer whose pod was deleted stops, as its container is killed. */
  async podRunning(pod: V1Pod): Promise<boolean> {
    const current = await this.core.readNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace! }).catch((err: { code?: number }) => {
      if (err.code === 404) return undefined;
      throw err;
    });
    return current?.metadata?.uid === pod.metadata?.uid && current?.status?.phase === 'Running' && !current.metadata?.deletionTimestamp;
  }

  /** Whether the node the pod is bound to still exists: a pod whose node is gone has no kubelet to run it. */
  async nodeExists(pod: V1Pod): Promise<boolean> {
    const name = pod.spec?.nodeName;
    if (!name) return false;
    return this.core.readNode({ name }).then(
      () => true,
      (err: { code?: number }) => {
        if (err.code === 404) return false;
        throw err;
      },
    );
  }

  /**
   * Ends the pod's containers the way its kubelet reports it; returns false, changing nothing,
   * when the pod's node is gone (deleted pool, scale-down, spot eviction): no kubelet is left
   * to report an outcome, and Kubernetes' pod garbage collector fails the pod instead.
   */
  async completePod(pod: V1Pod, outcome: { exitCode: number; reason: string; message?: string }): Promise<boolean> {
    // A write that lost a race with kwok (its status write of the same pod) reads the pod again, as a kubelet would.
    return retryOnConflict(() => this.writeOutcome(pod, outcome));
  }

  private async writeOutcome(pod: V1Pod, outcome: { exitCode: number; reason: string; message?: string }): Promise<boolean> {
    if (!(await this.nodeExists(pod))) return false;
    const current = await this.core.readNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace! });
    if (current.status?.phase !== 'Running' || current.metadata?.deletionTimestamp) return false;
    const now = new Date();
    current.status = {
      ...current.status,
      phase: outcome.exitCode === 0 ? 'Succeeded' : 'Failed',
      containerStatuses: (current.spec?.containers ?? []).map((c) => ({
        name: c.name,
        image: c.image ?? '',
        imageID: '',
        ready: false,
        restartCount: 0,
        started: false,
        state: { terminated: { exitCode: outcome.exitCode, reason: outcome.reason, message: outcome.message, startedAt: now, finishedAt: now } },
      })),
    };
    await this.core.replaceNamespacedPodStatus({ name: current.metadata!.name!, namespace: current.metadata!.namespace!, body: current });
    return true;
  }
}
