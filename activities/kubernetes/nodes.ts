// Waiting for a node pool's nodes to join the cluster with their GPUs.
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';

export interface PoolNodesReady {
  nodes: string[];
  gpusPerNode: number;
}

const isReady = (node: V1Node) => node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const gpus = (node: V1Node) => Number(node.status?.allocatable?.['nvidia.com/gpu'] ?? 0);

export function createNodeActivities({ kubeConfig, pollIntervalMs }: { kubeConfig: KubeConfig; pollIntervalMs: number }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
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
