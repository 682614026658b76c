// Keeps the cluster's Node objects consistent with the agent pools, as AKS does: each pool of
// count N has N nodes, labelled and tainted as AKS labels them, with the capacity of the VM
// size, and handed to kwok (which then acts as their kubelet).
import { createHash } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { retryOnConflict } from '../../../activities/kubernetes/api-errors.js';
import { parseTaint } from '../../../activities/kubernetes/taints.js';
import { findVmSize } from '../../../domain/vm-sizes.js';
import { kwokNodeAnnotation } from '../components.js';
import type { AgentPoolProperties } from './agent-pool-spec.js';

/** AKS names VMSS nodes aks-<pool>-<8 digits>-vmss<6 base-36 digits>. */
export function nodeName(cluster: string, pool: string, index: number): string {
  const digits = parseInt(createHash('sha256').update(`${cluster}/${pool}`).digest('hex').slice(0, 8), 16) % 1e8;
  return `aks-${pool}-${String(digits).padStart(8, '0')}-vmss${index.toString(36).padStart(6, '0')}`;
}

/** The VMSS instance index a node name ends with. */
const nodeIndex = (name: string) => parseInt(/vmss([0-9a-z]{6})$/.exec(name)?.[1] ?? '0', 36);

function nodeLabels(cluster: string, location: string, pool: string, props: AgentPoolProperties, name: string) {
  const size = findVmSize(props.vmSize);
  return {
    ...props.nodeLabels,
    agentpool: pool,
    'kubernetes.azure.com/agentpool': pool,
    'kubernetes.azure.com/cluster': `MC_${cluster}`,
    'kubernetes.azure.com/mode': props.mode.toLowerCase(),
    'kubernetes.azure.com/role': 'agent',
    ...(size && size.gpus > 0 ? { 'kubernetes.azure.com/accelerator': 'nvidia' } : {}),
    'node.kubernetes.io/instance-type': props.vmSize,
    'beta.kubernetes.io/instance-type': props.vmSize,
    'topology.kubernetes.io/region': location,
    // AKS's zone label: <region>-<zone> on a zonal pool (spread over its zones), the fault domain "0" otherwise.
    'topology.kubernetes.io/zone': props.availabilityZones?.length ? `${location}-${props.availabilityZones[nodeIndex(name) % props.availabilityZones.length]}` : '0',
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'kubernetes.io/hostname': name,
    type: 'kwok', // simulated node: no kubelet, kwok answers for it
  };
}

/** The pool's taints (for a Spot pool they include AKS's spot taint: see agent-pool-spec.ts). */
const nodeTaints = (props: AgentPoolProperties) => props.nodeTaints.map(parseTaint);

/**
 * What a node reports when it joins. No nvidia.com/gpu: AKS installs only the NVIDIA driver, and
 * the GPUs become allocatable once the NVIDIA device plugin runs on the node
 * (https://learn.microsoft.com/azure/aks/use-nvidia-gpu); the gpu-simulator plays that part.
 */
function capacity(props: AgentPoolProperties): Record<string, string> {
  const size = findVmSize(props.vmSize);
  if (!size) throw new Error(`unknown VM size ${props.vmSize}`);
  return { cpu: String(size.vCpus), memory: `${size.memoryGiB}Gi`, pods: String(props.maxPods), 'ephemeral-storage': '128Gi' };
}

export class PoolNodes {
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly cluster: string,
    private readonly location: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  private async listPoolNodes(pool: string): Promise<V1Node[]> {
    const list = await this.core.listNode({ labelSelector: `kubernetes.azure.com/agentpool=${pool}` });
    return list.items;
  }

  /**
   * Labels and taints of a pool apply to its existing nodes after an update. kwok and the
   * gpu-simulator write the same nodes (status, allocatable GPUs): a write that lost the race (409)
   * reads the node again and retries, as a controller does, instead of failing the pool's operation.
   */
  private async relabel(name: string, pool: string, props: AgentPoolProperties): Promise<void> {
    await retryOnConflict(async () => {
      const node = await this.core.readNode({ name });
      node.metadata!.labels = nodeLabels(this.cluster, this.location, pool, props, name);
      node.spec = { ...node.spec, taints: nodeTaints(props) };
      await this.core.replaceNode({ name, body: node });
    });
  }

  /** Makes the pool's nodes match its properties: creates missing ones, removes extra ones. */
  async sync(pool: string, props: AgentPoolProperties, count: number): Promise<void> {
    const wanted = new Set(Array.from({ length: count }, (_, i) => nodeName(this.cluster, pool, i)));
    const existing = await this.listPoolNodes(pool);
    const have = new Set(existing.map((n) => n.metadata?.name ?? ''));
    for (const node of existing) {
      const name = node.metadata?.name ?? '';
      if (!wanted.has(name)) {
        await this.deleteNode(name);
      } else {
        await this.relabel(name, pool, props);
      }
    }
    for (const name of wanted) {
      if (have.has(name)) continue;
      await this.core
        .createNode({
          body: {
            metadata: {
              name,
              labels: nodeLabels(this.cluster, this.location, pool, props, name),
              annotations: { [kwokNodeAnnotation.key]: kwokNodeAnnotation.value },
            },
            spec: { taints: nodeTaints(props), providerID: `azure:///emulated/${this.cluster}/${pool}/${name}` },
            status: {
              capacity: capacity(props),
              allocatable: capacity(props),
              nodeInfo: {
                architecture: 'amd64',
                operatingSystem: 'linux',
                osImage: 'Ubuntu 22.04.5 LTS',
                kernelVersion: '5.15.0-1079-azure',
                kubeletVersion: `v${props.orchestratorVersion}`,
                kubeProxyVersion: `v${props.orchestratorVersion}`,
                containerRuntimeVersion: 'containerd://1.7.27-1',
                machineID: '',
                systemUUID: '',
                bootID: '',
              },
            },
          },
        })
        .catch((err: { code?: number }) => {
          if (err.code !== 409) throw err; // already there: a retried sync adopts it
        });
    }
  }

  /** AKS reports a pool Succeeded only once its nodes have joined: wait for kwok to mark them Ready. */
  async waitUntilReady(pool: string, count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nodes = await this.listPoolNodes(pool);
      const ready = nodes.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      if (ready.length >= count) return;
      if (Date.now() > deadline) throw new Error(`${ready.length} of ${count} nodes of pool ${pool} became Ready within ${timeoutMs / 1000}s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Removes the pool's `n` highest-numbered nodes (those a scale-down would remove); returns their names. */
  async removeLast(pool: string, n: number): Promise<string[]> {
    const names = (await this.listPoolNodes(pool)).map((node) => node.metadata?.name ?? '').sort();
    const removed = n > 0 ? names.slice(-n) : [];
    for (const name of removed) await this.deleteNode(name);
    return removed;
  }

  async removeAll(pool: string): Promise<void> {
    for (const node of await this.listPoolNodes(pool)) await this.deleteNode(node.metadata?.name ?? '');
  }

  private async deleteNode(name: string): Promise<void> {
    await this.core.deleteNode({ name }).catch((err: { code?: number }) => {
      if (err.code !== 404) throw err;
    });
  }
}
