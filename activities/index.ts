// All activities, built from injected clients (real ones in the worker, ones pointed at the
// local stack in tests). Workflows proxy `ReturnType<typeof createActivities>`.
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { ContainerServiceClient } from '@azure/arm-containerservice';
import type { TokenCredential } from '@azure/core-auth';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import type { ClusterTargets } from '../domain/cluster-targets.js';
import { createClusterTargetActivities } from './azure/cluster-targets.js';
import { createComputeQuotaActivities } from './azure/compute-quota.js';
import { createNodePoolActivities } from './azure/node-pools.js';
import { managedClusterRead } from './azure/shared-read.js';
import { createDatasetActivities } from './datasets/fingerprint.js';
import { createEvaluationActivities } from './inference/evaluation.js';
import { createWorkspaceTextActivities } from './kaito/workspace-text.js';
import { createEndpointKubeActivities } from './kubernetes/endpoint.js';
import { createFineTuneKubeActivities } from './kubernetes/fine-tune.js';
import { createJobActivities } from './kubernetes/jobs.js';
import { createNodeActivities } from './kubernetes/nodes.js';
import type { ClusterObjects } from './kubernetes/object-cache.js';
import { createOutputVolumeActivities } from './kubernetes/output-volume.js';
import { createProductStateActivities } from './kubernetes/product-state.js';
import { createRunObjectActivities } from './kubernetes/run-objects.js';
import { createTuningConfigMapActivities } from './kubernetes/tuning-configmap.js';
import type { ContainerImages } from './kubernetes/tuning-job.js';
import { createRegistryActivities } from './registry/adapter-images.js';
import { createPushSecretActivities } from './registry/push-secret.js';
import { createEndpointClientActivities } from './temporal/endpoints.js';
import { createRunActivities } from './temporal/runs.js';
import { withLivenessHeartbeats } from './liveness.js';

export interface ActivityDeps {
  containerService: ContainerServiceClient;
  /** For the vCPU quota (Compute usages API) before a pool is requested. */
  compute: ComputeManagementClient;
  resourceGroup: string;
  clusterName: string;
  /** The clusters the worker serves: its home cluster and the targets runs may land in. */
  clusters: ClusterTargets;
  kubeConfig: KubeConfig;
  /** Credential for the adapter registry (ACR answers with a token challenge). */
  registryCredential: TokenCredential;
  /** Output registries on loopback addresses are allowed (the local stack only). */
  allowLoopbackRegistry: boolean;
  images: ContainerImages;
  workerImage: string;
  inferenceUrlTemplate: string;
  /** URL of one inference pod's router, with {namespace}, {pod} and {podIP} placeholders. */
  inferencePodUrlTemplate: string;
  /** Temporal itself, to look up the runs that own pools, and to drive endpoints' workflows. */
  temporalClient: Client;
  /** Namespace of the product's own state (ConfigMaps aks-finetune-*). */
  stateNamespace: string;
  /** Poll interval for ARM long-running operations (the SDK's default is 2 s). */
  armPollIntervalMs: number;
  /** Poll interval while waiting on Kubernetes objects. */
  kubePollIntervalMs: number;
  /** The worker's cache of Jobs, pods and nodes (kubernetes/object-cache.ts); without it every check reads the API. */
  objects?: ClusterObjects;
}

export function createActivities(deps: ActivityDeps) {
  // One managed-cluster GET per ARM poll interval for the whole worker: pool operations follow it, quota reads share it.
  const clusterRead = managedClusterRead(deps.containerService, deps.resourceGroup, deps.clusterName, deps.armPollIntervalMs);
  return withLivenessHeartbeats({
    ...createNodePoolActivities({ ...deps, pollIntervalMs: deps.armPollIntervalMs, clusterRead }),
    ...createComputeQuotaActivities({ ...deps, maxReadAgeMs: deps.armPollIntervalMs, clusterRead }),
    ...createClusterTargetActivities(deps),
    ...createNodeActivities({ kubeConfig: deps.kubeConfig, pollIntervalMs: deps.kubePollIntervalMs }),
    ...createJobActivities({ kubeConfig: deps.kubeConfig, pollIntervalMs: deps.kubePollIntervalMs, objects: deps.objects }),
    ...createFineTuneKubeActivities(deps),
    ...createEndpointKubeActivities({ ...deps, pollIntervalMs: deps.kubePollIntervalMs }),
    ...createRunObjectActivities({ kubeConfig: deps.kubeConfig }),
    ...createTuningConfigMapActivities({ kubeConfig: deps.kubeConfig }),
    ...createOutputVolumeActivities(deps),
    ...createRegistryActivities({ credential: deps.registryCredential, allowLoopbackRegistry: deps.allowLoopbackRegistry }),
    ...createPushSecretActivities({ kubeConfig: deps.kubeConfig, credential: deps.registryCredential }),
    ...createDatasetActivities({ credential: deps.registryCredential }),
    ...createProductStateActivities({ kubeConfig: deps.kubeConfig, namespace: deps.stateNamespace }),
    ...createRunActivities({ client: deps.temporalClient }),
    ...createEndpointClientActivities({ client: deps.temporalClient }),
    ...createEvaluationActivities(deps),
    ...createWorkspaceTextActivities(),
  });
}

export type Activities = ReturnType<typeof createActivities>;
