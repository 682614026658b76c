// Real SDK clients built from the configuration. Activities receive these through their
// factories, so tests hand them clients pointed at the local stack.
import { ComputeManagementClient } from '@azure/arm-compute';
import { ContainerServiceClient } from '@azure/arm-containerservice';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ContainerRegistryContentClient } from '@azure/container-registry';
import { DefaultAzureCredential } from '@azure/identity';
import { KubeConfig } from '@kubernetes/client-node';
import { registryLoginPolicy } from '../activities/registry/registry-login.js';
import type { RegistryLogin } from '../domain/docker-config.js';
import { armMetricsPolicy } from './arm-metrics.js';
import type { WorkerConfig } from './config.js';

/** A credential that always returns the same token: the local AKS emulator accepts any. */
function staticTokenCredential(token: string): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
  };
}

/** The local stack's fixed token when given; otherwise DefaultAzureCredential (workload identity on AKS, managed identity, az login). */
export function createAzureCredential(staticToken: string | undefined): TokenCredential {
  return staticToken ? staticTokenCredential(staticToken) : new DefaultAzureCredential();
}

/** Both ARM clients: the same endpoint, subscription and request metrics. */
const armClientOptions = (config: WorkerConfig) => ({
  endpoint: config.azure.armEndpoint,
  additionalPolicies: [{ policy: armMetricsPolicy(), position: 'perRetry' as const }],
});

export function createContainerServiceClient(config: WorkerConfig, credential = createAzureCredential(config.azure.staticToken)) {
  return new ContainerServiceClient(credential, config.azure.subscriptionId, armClientOptions(config));
}

export function createComputeClient(config: WorkerConfig, credential = createAzureCredential(config.azure.staticToken)) {
  return new ComputeManagementClient(credential, config.azure.subscriptionId, armClientOptions(config));
}

export function createKubeConfig(config: WorkerConfig): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (config.kubeconfig) kubeConfig.loadFromFile(config.kubeconfig);
  else kubeConfig.loadFromCluster();
  return kubeConfig;
}

/**
 * A content client for one repository of the registry at `endpoint` (https://host[:port]).
 * ACR answers a 401 challenge that the client meets with the credential; the local registry
 * never challenges, so the credential goes unused there. With a docker-config `login` (a push
 * Secret), the login answers the challenge instead and the credential goes unused.
 */
export function createRegistryContentClient(endpoint: string, repository: string, credential: TokenCredential, login?: { login: RegistryLogin; source: string }) {
  const additionalPolicies = login ? [{ policy: registryLoginPolicy(login.login, login.source), position: 'perRetry' as const }] : [];
  return new ContainerRegistryContentClient(endpoint, repository, credential, { additionalPolicies });
}
