// The subscription's vCPU quota in the cluster's region, through the Compute usages API
// (GET /subscriptions/{id}/providers/Microsoft.Compute/locations/{location}/usages: one row per
// quota, name.value, currentValue, limit; https://learn.microsoft.com/rest/api/compute/usage/list).
// Chosen over the Quota API (Microsoft.Quota) because it needs only Reader on the subscription,
// which a worker that manages pools has, and reports usage and limit in one call.
import type { ContainerServiceClient, ManagedCluster } from '@azure/arm-containerservice';
import type { ComputeManagementClient, Usage } from '@azure/arm-compute';
import type { NodePoolRoom, QuotaUsage } from '../../domain/gpu-candidates.js';
import { managedClusterRead, sharedRead, type SharedRead } from './shared-read.js';

export interface ComputeQuotaDeps {
  compute: ComputeManagementClient;
  containerService: ContainerServiceClient;
  resourceGroup: string;
  clusterName: string;
  /**
   * How old a read may be and still answer (the worker's ARM poll interval): runs waiting for
   * capacity then share one managed-cluster GET and one usages read per region per interval,
   * however many they are. 0 (the default) shares only a read in flight.
   */
  maxReadAgeMs?: number;
  /** The worker's shared read of the managed cluster (shared-read.ts); one of its own when absent. */
  clusterRead?: SharedRead<ManagedCluster>;
}

/** What the quota read found: the rows asked for, or why none could be read (the pool requests then find out). */
export interface GpuQuota {
  location: string;
  usages: QuotaUsage[];
  unreadable?: string;
  /** The cluster's node pools and their limit, from the same managed-cluster read. */
  nodePools?: NodePoolRoom;
}

export function createComputeQuotaActivities({ compute, containerService, resourceGroup, clusterName, maxReadAgeMs = 0, clusterRead = managedClusterRead(containerService, resourceGroup, clusterName, maxReadAgeMs) }: ComputeQuotaDeps) {
  let location: string | undefined;
  const usageReads = new Map<string, SharedRead<Usage[]>>();
  const usagesOf = (location: string) => {
    let read = usageReads.get(location);
    if (!read) usageReads.set(location, (read = sharedRead(() => listUsages(location), maxReadAgeMs)));
    return read.recent(maxReadAgeMs);
  };
  const listUsages = async (location: string) => {
    const rows: Usage[] = [];
    for await (const usage of compute.usage.list(location)) rows.push(usage);
    return rows;
  };
  return {
    /**
     * The usage and limit of each quota named (family names and the regional totals), in the
     * cluster's region; with `pool`, also the cluster's node pools against maxAgentPools, read
     * from one GET of the managed cluster (a read, not one of AKS's rate-limited LISTs).
     */
    async readGpuQuota(names: string[], pool?: string): Promise<GpuQuota> {
      let nodePools: NodePoolRoom | undefined;
      if (pool !== undefined || !location) {
        const cluster = await clusterRead.recent(maxReadAgeMs);
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
      const usages = (await usagesOf(location))
        .filter((usage) => wanted.has((usage.name.value ?? '').toLowerCase()))
        .map((usage): QuotaUsage => ({ name: usage.name.value ?? '', current: usage.currentValue, limit: usage.limit }));
      return { location, usages };
    } catch (err) {
      // No read permission (403) or the API down: not the run's end, Azure's answer to the PUT still decides.
      return { location, usages: [], unreadable: `the quota of ${location} could not be read: ${String((err as Error).message ?? err).slice(0, 300)}` };
    }
  }
}
