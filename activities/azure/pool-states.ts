// One read of a cluster's node pools for every pool operation this worker process follows: the
// managed cluster's GET lists each pool with its provisioningState (agentPoolProfiles), so a
// hundred creates in flight cost one ARM read per poll interval instead of a hundred
// operation polls. Each operation's own poll is made once, when the read shows it ended, for
// its result or Azure's error. A GET, not the agent pool LIST, which AKS rate-limits per
// subscription (learn.microsoft.com/azure/aks/quotas-skus-regions, "Throttling limits on AKS
// resource provider APIs").
import type { ContainerServiceClient } from '@azure/arm-containerservice';

export interface PoolStates {
  /** The provisioningState of every pool by name, from the read in flight or the next one: at most one read per interval, shared by every caller. */
  next(): Promise<Map<string, string>>;
}

export function sharedPoolStates(containerService: ContainerServiceClient, resourceGroup: string, clusterName: string, intervalMs: number): PoolStates {
  let pending: Promise<Map<string, string>> | undefined;
  let lastReadAt = 0;
  const read = async () => {
    const wait = lastReadAt + intervalMs - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      const cluster = await containerService.managedClusters.get(resourceGroup, clusterName);
      return new Map((cluster.agentPoolProfiles ?? []).map((p) => [p.name, p.provisioningState ?? 'Unknown']));
    } finally {
      lastReadAt = Date.now();
      pending = undefined;
    }
  };
  return {
    next: () => (pending ??= read()),
  };
}
