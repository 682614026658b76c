// The subscription's vCPU quota in the cluster's region, through the Compute usages API
// (GET /subscriptions/{id}/providers/Microsoft.Compute/locations/{location}/usages: one row per
// quota, name.value, currentValue, limit; https://learn.microsoft.com/rest/api/compute/usage/list).
// Chosen over the Quota API (Microsoft.Quota) because it needs only Reader on the subscription,
// which a worker that manages pools has, and reports usage and limit in one call.
import type { ContainerServiceClient } from '@azure/arm-containerservice';
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { NodePoolRoom, QuotaUsage } from '../../domain/gpu-candidates.js';

export interface ComputeQuotaDeps {
  compute: ComputeManagementClient;
  containerService: ContainerServiceClient;
  resourceGroup: string;
  clusterName: string;
}

/** What the quota read found: the rows asked for, or why none could be read (the pool requests then find out). */
export interface GpuQuota {
  location: string;
  usages: QuotaUsage[];
  unreadable?: string;
  /** The cluster's node pools and their limit, from the same managed-cluster read. */
  nodePools?: NodePoolRoom;
}

export function createComputeQuotaActivities({ compute, containerService, resourceGroup, clusterName }: ComputeQuotaDeps) {
  let location: string | undefined;
  return {
    /**
     * The usage and limit of each quota named (family names and the regional totals), in the
     * cluster's region; with `pool`, also the cluster's node pools against maxAgentPools, read
     * from one GET of the managed cluster (a read, not one of AKS's rate-limited LISTs).
     */
    async readGpuQuota(names: string[], pool?: string): Promise<GpuQuota> {
      let nodePools: NodePoolRoom | undefined;
      if (pool !== undefined || !location) {
        const cluster = await containerService.managedClusters.get(resourceGroup, clusterName);
        location = cluster.location;
        const profiles = cluster.agentPoolProfiles ?? [];
        if (pool !== undefined && cluster.maxAgentPools) nodePools = { count: profiles.length, max: cluster.maxAgentPools, hasPool: profiles.some((p) => p.name === pool) };
      }
      const found = await readUsages(names, location!);
      return nodePools ? { ...found, nodePools } : found;
    },
  };

  async function readUsages(names: string[], location: string): Promise<GpuQuota> {
    const wanted = new Set(names.map((n) => n.toLowerCase()));
    try {
      const usages: QuotaUsage[] = [];
      for await (const usage of compute.usage.list(location)) {
        const name = usage.name.value ?? '';
        if (wanted.has(name.toLowerCase())) usages.push({ name, current: usage.currentValue, limit: usage.limit });
      }
      return { location, usages };
    } catch (err) {
      // No read permission (403) or the API down: not the run's end, Azure's answer to the PUT still decides.
      return { location, usages: [], unreadable: `the quota of ${location} could not be read: ${String((err as Error).message ?? err).slice(0, 300)}` };
    }
  }
}
