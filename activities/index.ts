// All activities, built from injected clients (real ones in the worker, ones pointed at the
// local stack in tests). Workflows proxy `ReturnType<typeof createActivities>`.
import type { ContainerServiceClient } from '@azure/arm-containerservice';
import type { KubeConfig } from '@kubernetes/client-node';
import { createNodePoolActivities } from './azure/node-pools.js';
import { createJobActivities } from './kubernetes/jobs.js';
import { createNodeActivities } from './kubernetes/nodes.js';

export interface ActivityDeps {
  containerService: ContainerServiceClient;
  resourceGroup: string;
  clusterName: string;
  kubeConfig: KubeConfig;
  /** Poll interval for ARM long-running operations (the SDK's default is 2 s). */
  armPollIntervalMs: number;
  /** Poll interval while waiting on Kubernetes objects. */
  kubePollIntervalMs: number;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createNodePoolActivities({ ...deps, pollIntervalMs: deps.armPollIntervalMs }),
    ...createNodeActivities({ kubeConfig: deps.kubeConfig, pollIntervalMs: deps.kubePollIntervalMs }),
    ...createJobActivities({ kubeConfig: deps.kubeConfig, pollIntervalMs: deps.kubePollIntervalMs }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
