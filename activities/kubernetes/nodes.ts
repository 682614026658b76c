// Waiting for a node pool's nodes to join the cluster with their GPUs.
import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { agentPoolLabel } from './placement.js';

export interface PoolNodesWaitOptions {
  /**
   * How long nodes may be Ready without allocatable GPUs before the wait fails (default 10):
   * the NVIDIA device plugin normally registers them within a minute of the node joining.
   */
  noGpuTimeoutMinutes?: number;
}

export const defaultNoGpuTimeoutMinutes = 10;

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
      const { items: nodes } = await core.listNode({ labelSelector: `${agentPoolLabel}=${pool}` });
      const pods: string[] = [];
      for (const node of nodes) {
        const { items } = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node.metadata?.name}` });
        pods.push(...items.filter(holdsGpu).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`));
      }
      return pods;
    },

    /**
     * Returns once `count` nodes of the pool are Ready with allocatable GPUs. Bounded by the
     * activity's start-to-close timeout; progress goes out as heartbeats. When the nodes are
     * Ready but report no nvidia.com/gpu for `noGpuTimeoutMinutes`, fails (non-retryable
     * GpuNotAllocatable) naming the likely cause: no NVIDIA device plugin on the nodes.
     */
    async waitForPoolNodes(pool: string, count: number, options: PoolNodesWaitOptions = {}): Promise<PoolNodesReady> {
      const ctx = Context.current();
      const timeoutMinutes = options.noGpuTimeoutMinutes ?? defaultNoGpuTimeoutMinutes;
      let readyWithoutGpusSince: number | undefined;
      for (;;) {
        const { items } = await core.listNode({ labelSelector: `${agentPoolLabel}=${pool}` });
        const joined = items.filter(isReady);
        const ready = joined.filter((n) => gpus(n) > 0);
        ctx.heartbeat({ step: 'waiting for GPU nodes', pool, joined: joined.length, ready: ready.length, wanted: count });
        if (ready.length >= count) {
          return { nodes: ready.map((n) => n.metadata?.name ?? ''), gpusPerNode: Math.min(...ready.map(gpus)) };
        }
        readyWithoutGpusSince = joined.length >= count ? (readyWithoutGpusSince ?? Date.now()) : undefined;
        if (readyWithoutGpusSince !== undefined && Date.now() - readyWithoutGpusSince >= timeoutMinutes * 60_000) {
          const without = joined.filter((n) => gpus(n) === 0).map((n) => n.metadata?.name ?? '');
          throw ApplicationFailure.nonRetryable(
            `no nvidia.com/gpu after ${timeoutMinutes} minutes on Ready node(s) ${without.join(', ')} of pool ${pool}: ` +
              'is the NVIDIA device plugin running? AKS installs only the driver; install the plugin once per cluster with ' +
              '`npm run prepare-cluster`, and check its pods with `kubectl get pods -n gpu-resources -o wide` ' +
              '(they must tolerate every taint of the pool).',
            failureTypes.gpuNotAllocatable,
          );
        }
        await ctx.sleep(pollIntervalMs);
      }
    },
  };
}
