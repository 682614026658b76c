// SIMULATION of the NVIDIA device plugin's effect on a node. On AKS the plugin (a DaemonSet pod,
// deploy/nvidia-device-plugin.yaml) registers the node's GPUs with the kubelet, which then
// reports nvidia.com/gpu in the node's capacity and allocatable; without it the node has none
// (https://learn.microsoft.com/azure/aks/use-nvidia-gpu). kwok runs the DaemonSet's pods on the
// simulated nodes; this sets nvidia.com/gpu on a GPU node only while such a pod runs there.
import { type CoreV1Api, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { findVmSize } from '../../../domain/vm-sizes.js';

/** The image NVIDIA publishes the plugin as: a pod running it, of any tag, is a device plugin. */
const devicePluginImage = 'nvcr.io/nvidia/k8s-device-plugin:';
const gpuResource = 'nvidia.com/gpu';
const mergePatch = setHeaderOptions('Content-Type', 'application/merge-patch+json');

const isDevicePlugin = (pod: V1Pod) =>
  pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp && (pod.spec?.containers ?? []).some((c) => c.image?.startsWith(devicePluginImage));

export async function reconcileGpuAllocatable(core: CoreV1Api): Promise<void> {
  const { items: nodes } = await core.listNode({ labelSelector: 'kubernetes.azure.com/accelerator=nvidia,type=kwok' });
  if (nodes.length === 0) return;
  const { items: pods } = await core.listPodForAllNamespaces({ fieldSelector: 'status.phase=Running' });
  const withPlugin = new Set(pods.filter(isDevicePlugin).map((p) => p.spec?.nodeName));
  for (const node of nodes) {
    const name = node.metadata!.name!;
    const gpus = findVmSize(node.metadata?.labels?.['node.kubernetes.io/instance-type'] ?? '')?.gpus ?? 0;
    const wanted = withPlugin.has(name) && gpus > 0 ? String(gpus) : undefined;
    if (node.status?.allocatable?.[gpuResource] === wanted) continue;
    const value = wanted ?? null; // null removes the resource (JSON merge patch)
    await core.patchNodeStatus({ name, body: { status: { capacity: { [gpuResource]: value }, allocatable: { [gpuResource]: value } } } }, mergePatch);
  }
}
