// The quota `plan --quota` shows beside each GPU attempt: read from ARM with the worker's Azure
// settings (AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AKS_CLUSTER_NAME, AKS_CLUSTERS_FILE...),
// in each cluster's region, GETs only.
import { createComputeQuotaActivities, type GpuQuota } from '../activities/azure/compute-quota.js';
import { clustersOf } from '../domain/cluster-targets.js';
import { type GpuAttempt, quotasOfAttempts, quotaShortfall } from '../domain/gpu-candidates.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { createAzureCredential, createComputeClient, createContainerServiceClient } from '../workers/clients.js';
import { loadWorkerConfig, targetConfig } from '../workers/config.js';

/** The quota rows the attempts draw on, per cluster (undefined: the home cluster; a name not in AKS_CLUSTERS_FILE: unreadable, saying so). */
export async function readAttemptQuota(attempts: GpuAttempt[], env: NodeJS.ProcessEnv = process.env): Promise<Map<string | undefined, GpuQuota>> {
  const home = loadWorkerConfig(env);
  const quotas = new Map<string | undefined, GpuQuota>();
  for (const cluster of clustersOf(attempts)) {
    const target = home.clusters.find((t) => t.name === cluster);
    if (cluster !== undefined && cluster !== home.azure.clusterName && !target) {
      quotas.set(cluster, { location: '?', usages: [], unreadable: `cluster ${cluster} is not in AKS_CLUSTERS_FILE` });
      continue;
    }
    const config = target ? targetConfig(home, target) : home;
    const credential = createAzureCredential(config.azure.staticToken);
    const quota = createComputeQuotaActivities({
      compute: createComputeClient(config, credential),
      containerService: createContainerServiceClient(config, credential),
      resourceGroup: config.azure.resourceGroup,
      clusterName: config.azure.clusterName,
    });
    quotas.set(cluster, await quota.readGpuQuota(quotasOfAttempts(attempts.filter((a) => a.cluster === cluster))));
  }
  return quotas;
}

/** What the quota says of one attempt, for its plan line. */
export function attemptQuotaText(attempt: GpuAttempt, quotas: Map<string | undefined, GpuQuota> | undefined): string {
  const quota = quotas?.get(attempt.cluster);
  if (!quota || quota.unreadable) return '';
  const shortfall = quotaShortfall(findVmSize(attempt.vmSize)!, attempt.spot, 1, quota.usages);
  return shortfall ? `: skipped, ${shortfall.message}` : ': quota ok';
}
