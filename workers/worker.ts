// Builds the worker: real clients from the configuration, all activities, all workflows.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { ClusterObjects } from '../activities/kubernetes/object-cache.js';
import { type ClusterTargets, clusterTaskQueue } from '../domain/cluster-targets.js';
import { defaultImages } from '../activities/kubernetes/tuning-job.js';
import { createAzureCredential, createComputeClient, createContainerServiceClient, createKubeConfig } from './clients.js';
import { ConfigError, targetConfig, type WorkerConfig } from './config.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
/** Modules evaluated once per worker, not once per cached workflow (workflows/shared-modules.ts). */
export const preloadModules = [fileURLToPath(new URL('../workflows/shared-modules.ts', import.meta.url))];
/** Where `npm run build:workflows` writes the workflow bundle by default (gitignored; the image sets WORKFLOW_BUNDLE to it). */
export const defaultWorkflowBundlePath = fileURLToPath(new URL('../dist/workflow-bundle.js', import.meta.url));

/** Bundles the workflow code once, as the worker image does at build time, and writes it to `codePath`. */
export async function writeWorkflowBundle(codePath: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath, preloadModules, logger: new DefaultLogger('WARN') });
  await mkdir(dirname(codePath), { recursive: true });
  await writeFile(codePath, code);
}

/**
 * The prebuilt bundle when WORKFLOW_BUNDLE names one, else the sources (bundled at start-up).
 * Only the variable selects the bundle: a stale file left in dist/ never replaces the code a developer is editing.
 */
export function workflowCode(config: WorkerConfig): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions'> {
  if (!config.workflowBundle) return { workflowsPath, bundlerOptions: { preloadModules } };
  if (!existsSync(config.workflowBundle)) {
    throw new ConfigError(`WORKFLOW_BUNDLE=${config.workflowBundle} does not exist: write it with npm run build:workflows, or unset it to bundle at start-up`);
  }
  return { workflowBundle: { codePath: config.workflowBundle } };
}

export interface WorkerTuning {
  armPollIntervalMs: number;
  kubePollIntervalMs: number;
}

/** The clusters a worker with this configuration serves, as runs see them. */
export const clusterTargetsOf = (config: WorkerConfig): ClusterTargets => ({
  home: { name: config.azure.clusterName },
  targets: config.clusters.map(({ name, region }) => ({ name, region })),
});

/** Activities on one cluster's clients (the home cluster's, or a target's through targetConfig). */
export function createWorkerActivities(
  config: WorkerConfig,
  tuning: WorkerTuning = { armPollIntervalMs: config.polling.armMs, kubePollIntervalMs: config.polling.kubeMs },
  clusters: ClusterTargets = clusterTargetsOf(config),
  objects?: ClusterObjects,
) {
  const credential = createAzureCredential(config.azure.staticToken);
  return createActivities({
    containerService: createContainerServiceClient(config, credential),
    compute: createComputeClient(config, credential),
    resourceGroup: config.azure.resourceGroup,
    clusterName: config.azure.clusterName,
    clusters,
    kubeConfig: createKubeConfig(config),
    registryCredential: credential,
    allowLoopbackRegistry: config.registry.allowLoopback,
    images: { ...defaultImages, kaitoRegistry: config.kaitoRegistry, datasetDownloader: config.workerImage },
    workerImage: config.workerImage,
    inferenceUrlTemplate: config.inferenceUrlTemplate,
    inferencePodUrlTemplate: config.inferencePodUrlTemplate,
    // Connects on first use: only the reaper asks Temporal about runs.
    temporalClient: new Client({ connection: Connection.lazy(config.temporal.connection), namespace: config.temporal.namespace }),
    stateNamespace: 'aks-finetune',
    objects,
    ...tuning,
  });
}

/** What every Worker of the process shares. */
const workerDefaults = {
  // Heartbeats reach Temporal at least every 5 s (the default is 0.8 x the heartbeat timeout),
  // so a lost worker's activities time out 15 to 20 s after it died, not up to 36 s.
  maxHeartbeatThrottleInterval: '5 seconds',
  // SIGTERM (a rolling update): short calls finish; long waits are cancelled after 10 s, so
  // their runs retry them on another worker at once instead of after a heartbeat timeout.
  // The pod's terminationGracePeriodSeconds must be longer.
  shutdownGraceTime: '10 seconds',
} satisfies Partial<WorkerOptions>;

/** The Worker on the task queue runs are started on: every workflow, and the home cluster's activities (on `objects`, the cluster's object cache, when given). */
export async function createWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  options: Partial<WorkerOptions> & { tuning?: WorkerTuning; objects?: ClusterObjects } = {},
): Promise<Worker> {
  const { tuning, objects, ...workerOptions } = options;
  return Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflowCode(config),
    activities: createWorkerActivities(config, tuning, undefined, objects),
    ...workerDefaults,
    ...workerOptions,
  });
}

/**
 * One Worker per cluster target, on that target's task queue, with activities on the target's
 * clients only (domain/cluster-targets.ts); they run beside the home Worker on its connection.
 */
export async function createClusterWorkers(config: WorkerConfig, connection: NativeConnection, options: { tuning?: WorkerTuning; objects?: ClusterObjects[] } = {}): Promise<Worker[]> {
  const clusters = clusterTargetsOf(config);
  const { tuning, objects } = options;
  return Promise.all(
    config.clusters.map((target, i) =>
      Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: clusterTaskQueue(config.temporal.taskQueue, target.name),
        activities: createWorkerActivities(targetConfig(config, target), tuning, clusters, objects?.[i]),
        ...workerDefaults,
      }),
    ),
  );
}
