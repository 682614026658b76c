// The quota `plan --quota` shows beside each GPU attempt: read from ARM with the worker's Azure
// settings (AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AKS_CLUSTER_NAME, ...), GETs only.
import { createComputeQuotaActivities, type GpuQuota } from '../activities/azure/compute-quota.js';
import { type GpuAttempt, quotasOfAttempts, quotaShortfall } from '../domain/gpu-candidates.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { createAzureCredential, createComputeClient, createContainerServiceClient } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';

/** The quota rows the attempts draw on, in the cluster's region. */
export async function readAttemptQuota(attempts: GpuAttempt[], env: NodeJS.ProcessEnv = process.env): Promise<GpuQuota> {
  const config = loadWorkerConfig(env);
  const credential = createAzureCredential(config.azure.staticToken);
  const quota = createComputeQuotaActivities({
    compute: createComputeClient(config, credential),
    containerService: createContainerServiceClient(config, credential),
    resourceGroup: config.azure.resourceGroup,
    clusterName: config.azure.clusterName,
  });
  return quota.readGpuQuota(quotasOfAttempts(attempts));
}

/** What the quota says of one attempt, for its plan line. */
export function attemptQuotaText(attempt: GpuAttempt, quota: GpuQuota | undefined): string {
  if (!quota || quota.unreadable) return '';
  const shortfall = quotaShortfall(findVmSize(attempt.vmSize)!, attempt.spot, 1, quota.usages);
  return shortfall ? `: skipped, ${shortfall.message}` : ': quota ok';
}
