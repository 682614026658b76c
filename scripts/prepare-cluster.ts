// `npm run prepare-cluster`: readies a cluster for this product's GPU pools, once per cluster.
// Installs the pinned NVIDIA device plugin DaemonSet (deploy/nvidia-device-plugin.yaml): AKS
// installs only the NVIDIA driver on a new GPU node pool, and nvidia.com/gpu becomes
// allocatable only once the plugin runs there (https://learn.microsoft.com/azure/aks/use-nvidia-gpu).
// Server-side apply: running it again changes nothing, and updates what an older pin applied.
// Reads KUBECONFIG (else ~/.kube/config, else the pod's service account).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { projectRoot } from './stack/config.js';

export const devicePluginManifest = join(projectRoot, 'deploy/nvidia-device-plugin.yaml');

/** Server-side applies the objects of a multi-document YAML text; returns them as kind/namespace/name. */
export async function applyManifests(kubeConfig: KubeConfig, yaml: string, keep: (o: KubernetesObject) => boolean = () => true): Promise<string[]> {
  const client = KubernetesObjectApi.makeApiClient(kubeConfig);
  const objects = parseAllDocuments(yaml).map((d) => d.toJS() as KubernetesObject).filter(keep);
  const applied: string[] = [];
  for (const object of objects) {
    await client.patch(object, undefined, undefined, 'aks-finetune', true, PatchStrategy.ServerSideApply);
    applied.push([object.kind, object.metadata?.namespace, object.metadata?.name].filter(Boolean).join('/'));
  }
  return applied;
}

/** Applies the device plugin's objects; returns them as kind/namespace/name. */
export const prepareCluster = (kubeConfig: KubeConfig): Promise<string[]> => applyManifests(kubeConfig, readFileSync(devicePluginManifest, 'utf8'));

if (import.meta.url === `file://${process.argv[1]}`) {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  prepareCluster(kubeConfig)
    .then((applied) => console.log(`Cluster prepared: ${applied.join(', ')}`))
    .catch((err: unknown) => {
      console.error(`prepare-cluster failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
