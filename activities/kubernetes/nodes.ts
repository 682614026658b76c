// Waiting for a node pool's nodes to join the cluster with their GPUs.
import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';

export interface PoolNodesReady {
  nodes: string[];
  gpusPerNode: number;
}

const isReady = (node: V1Node) => node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const gpus = (node: V1Node) => Number(node.status?.allocatable?.['nvidia.com/gpu'] ?? 0);

/** Pods that hold GPUs: they request nvidia.com/gpu, have not ended, and are not DaemonSet pods (device plugins and the like). */
const holdsGpu = (pod: V1Pod) =>
  pod.status?.phase !== 'Succeeded' &&
  pod.status?.phase !== 'Failed' &&
  !pod.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet') &&
  (pod.spec?.containers ?? []).some((c) => Number(c.resources?.requests?.['nvidia.com/gpu'] ?? c.resources?.limits?.['nvidia.com/gpu'] ?? 0) > 0);

export function createNodeActivities({ kubeConfig, pollIntervalMs }: { kubeConfig: KubeConfig; pollIntervalMs: number }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
    /** The pods holding GPUs on the pool's nodes, as namespace/name. */
    async gpuPodsOnPool(pool: string): Promise<string[]> {
      const { items: nodes } = await core.listNode({ labelSelector: `kubernetes.azure.com/agentpool=${pool}` });
      const pods: string[] = [];
      for (const node of nodes) {
        const { items } = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node.metadata?.name}` });
        pods.push(...items.filter(holdsGpu).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`));
      }
      return pods;
    },

    /**
     * Returns once `count` nodes of the pool are Ready with allocatable GPUs. Bounded by the
     * activity's start-to-close timeout; progress goes out as heartbeats.
     */
    async waitForPoolNodes(pool: string, count: number): Promise<PoolNodesReady> {
      const ctx = Context.current();
      for (;;) {
        const { items } = await core.listNode({ labelSelector: `kubernetes.azure.com/agentpool=${pool}` });
        const ready = items.filter((n) => isReady(n) && gpus(n) > 0);
        ctx.heartbeat({ step: 'waiting for GPU nodes', pool, ready: ready.length, wanted: count });
        if (ready.length >= count) {
          return { nodes: ready.map((n) => n.metadata?.name ?? ''), gpusPerNode: Math.min(...ready.map(gpus)) };
        }
        await ctx.sleep(pollIntervalMs);
      }
    },
  };
}
