// Builds the worker: real clients from the configuration, all activities, all workflows.
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { defaultImages } from '../activities/kubernetes/tuning-job.js';
import { createAzureCredential, createContainerServiceClient, createKubeConfig } from './clients.js';
import type { WorkerConfig } from './config.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerTuning {
  armPollIntervalMs: number;
  kubePollIntervalMs: number;
}

export function createWorkerActivities(
  config: WorkerConfig,
  tuning: WorkerTuning = { armPollIntervalMs: config.polling.armMs, kubePollIntervalMs: config.polling.kubeMs },
) {
  const credential = createAzureCredential(config.azure.staticToken);
  return createActivities({
    containerService: createContainerServiceClient(config, credential),
    resourceGroup: config.azure.resourceGroup,
    clusterName: config.azure.clusterName,
    kubeConfig: createKubeConfig(config),
    registryCredential: credential,
    images: { ...defaultImages, kaitoRegistry: config.kaitoRegistry, datasetDownloader: config.workerImage },
    workerImage: config.workerImage,
    inferenceUrlTemplate: config.inferenceUrlTemplate,
    // Connects on first use: only the reaper asks Temporal about runs.
    temporalClient: new Client({ connection: Connection.lazy({ address: config.temporal.address }), namespace: config.temporal.namespace }),
    stateNamespace: 'aks-finetune',
    ...tuning,
  });
}

export async function createWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  options: Partial<WorkerOptions> & { tuning?: WorkerTuning } = {},
): Promise<Worker> {
  const { tuning, ...workerOptions } = options;
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath,
    activities: createWorkerActivities(config, tuning),
    ...workerOptions,
  });
}
