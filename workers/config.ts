// Worker configuration from environment variables (documented in README, "Configuration").
// The same variables point the worker at the local stack (.stack/env) or at real Azure.

export interface WorkerConfig {
  temporal: { address: string; namespace: string; taskQueue: string };
  azure: {
    /** ARM endpoint; the public cloud's unless pointed at the local emulator. */
    armEndpoint: string;
    subscriptionId: string;
    resourceGroup: string;
    clusterName: string;
    /** A fixed bearer token for the local AKS emulator only; real Azure uses DefaultAzureCredential. */
    staticToken?: string;
  };
  /** Path of a kubeconfig; in-cluster service account when absent. */
  kubeconfig?: string;
  registry: { endpoint: string };
}

export class ConfigError extends Error {}

function required(env: NodeJS.ProcessEnv, name: string, hint: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(`${name} is not set: ${hint}`);
  return value;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const registryEndpoint = required(env, 'REGISTRY_ENDPOINT', 'the registry adapters are pushed to, e.g. https://myacr.azurecr.io');
  if (!registryEndpoint.startsWith('https://')) {
    throw new ConfigError(`REGISTRY_ENDPOINT=${registryEndpoint} must be an https:// URL (the registry client refuses plain http)`);
  }
  return {
    temporal: {
      address: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
      namespace: env.TEMPORAL_NAMESPACE ?? 'default',
      taskQueue: env.TEMPORAL_TASK_QUEUE ?? 'fine-tuning',
    },
    azure: {
      armEndpoint: env.AZURE_ARM_ENDPOINT ?? 'https://management.azure.com',
      subscriptionId: required(env, 'AZURE_SUBSCRIPTION_ID', 'the subscription that holds the AKS cluster'),
      resourceGroup: required(env, 'AZURE_RESOURCE_GROUP', "the AKS cluster's resource group"),
      clusterName: required(env, 'AKS_CLUSTER_NAME', 'the AKS cluster GPU node pools are added to'),
      staticToken: env.AZURE_STATIC_TOKEN || undefined,
    },
    kubeconfig: env.KUBECONFIG || undefined,
    registry: { endpoint: registryEndpoint },
  };
}
