// More than one AKS cluster, on the local stack: a second cluster beside it (its own etcd, API
// server, controllers, kwok, AKS emulator in another region and GPU simulator; Temporal and the
// registry stay the first stack's), served by an activity Worker on its own task queue. A run
// whose first candidate has no capacity in the home cluster trains in the second; the reaper
// sweeps what a terminated run left there; a cluster no worker serves is refused up front.
import { join } from 'node:path';
import { BatchV1Api, KubeConfig } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runIdLabel, workflowIdAnnotation } from '../activities/kubernetes/labels.js';
import { type FineTuneRequest, planDefaults } from '../domain/fine-tune-request.js';
import { EmulatorControl } from '../scripts/stack/aks-emulator/control-client.js';
import { stackClusterTarget, startStack, stopStack } from '../scripts/stack/cli.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { SimulatorControl } from '../scripts/stack/gpu-simulator/control-client.js';
import { targetConfig, type WorkerConfig } from '../workers/config.js';
import { createContainerServiceClient } from '../workers/clients.js';
import { clusterTargetsOf, createWorkerActivities } from '../workers/worker.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId, reapIdleGpuPoolsWorkflowId } from '../workflows/ids.js';
import { reapIdleGpuPools, type ReaperResult } from '../workflows/reap-idle-gpu-pools.js';
import { config, emulator, eventually, poolOf, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const home = loadStackConfig();
const west = loadStackConfig({ ...process.env, STACK_DIR: join(home.stateDir, 'second-cluster'), STACK_PORT_OFFSET: '100', STACK_CERTS_DIR: home.certsDir, STACK_CLUSTER_NAME: 'local-aks-west', STACK_LOCATION: 'westus3' });
const westTarget = stackClusterTarget(west);
const workerConfig: WorkerConfig = { ...config, clusters: [westTarget] };
const tuning = { armPollIntervalMs: 200, kubePollIntervalMs: 200 };
const homeActivities = createWorkerActivities(workerConfig, tuning);
const westEmulator = new EmulatorControl(westTarget.armEndpoint!);
// The second cluster's kubeconfigs exist once it has started.
let westActivities: ReturnType<typeof createWorkerActivities>;
let westJobs: BatchV1Api;
const a100 = 'Standard_NC24ads_A100_v4';

beforeAll(async () => {
  await startStack(west, () => undefined, { clusterOnly: true });
  westActivities = createWorkerActivities(targetConfig(workerConfig, westTarget), tuning, clusterTargetsOf(workerConfig));
  const westKube = new KubeConfig();
  westKube.loadFromFile(west.kubeconfig);
  westJobs = westKube.makeApiClient(BatchV1Api);
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await westEmulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 500 });
  await new SimulatorControl(`http://${west.host}:${west.ports.gpuSimulator}`).settings({ trainingMs: 500 });
  // The home cluster has no A100s at all; the second has them.
  await emulator.capacity({ unavailable: [{ vmSize: a100 }] });
}, 300_000);

afterAll(async () => {
  await emulator.capacity({});
  await stopStack(west, () => undefined);
});

const withWorkers = <T>(run: (taskQueue: string) => Promise<T>) => temporal.withClusterWorkers(homeActivities, { [westTarget.name]: westActivities }, run);
const westFirst = (extra: Partial<FineTuneRequest> = {}) =>
  testFineTuneRequest({ gpu: { vmSize: a100, reuseWarmPool: false, candidates: [{ vmSize: a100, cluster: westTarget.name }] }, ...extra });
const westArm = createContainerServiceClient(targetConfig(workerConfig, westTarget));
const westPool = (name: string) =>
  westArm.agentPools.get(west.azure.resourceGroup, westTarget.name, name).then(
    (p) => p,
    (err: { statusCode?: number }) => (err.statusCode === 404 ? undefined : Promise.reject(err)),
  );

describe('a run across two clusters', () => {
  it('trains in the second cluster when the first has no capacity, and releases its pool there', async () => {
    await westEmulator.clearRequests();
    const status = await withWorkers((taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`clusters-${unique()}`), args: [westFirst()] }),
    );
    expect(status.phase).toBe('succeeded');
    expect(status.gpu).toMatchObject({ vmSize: a100, cluster: westTarget.name });
    expect(status.gpu!.attempts!.map((a) => [a.cluster, a.outcome, a.code])).toEqual([
      [undefined, 'refused', 'AllocationFailed'],
      [westTarget.name, 'created', undefined],
    ]);
    // Each cluster's quota was read in its own region.
    expect(status.gpu!.quota).toMatch(/local-aks-west \(westus3\)/);
    expect(status.released).toContain(`AgentPool/${status.gpu!.pool} (deleted) in ${westTarget.name}`);
    // The pool was created by the second cluster's ARM, and is gone from both.
    const puts = (await westEmulator.requests()).filter((r) => r.method === 'PUT' && r.path.endsWith(`/agentPools/${status.gpu!.pool}`));
    expect(puts.map((r) => r.status)).toEqual([201]);
    expect(await poolOf(status.gpu!.pool)).toBeUndefined();
    expect(await westPool(status.gpu!.pool)).toBeUndefined();
  });

  it("sweeps a terminated run's pool and objects in the second cluster", async () => {
    const workflowId = fineTuneWorkflowId(`clusters-orphan-${unique()}`);
    await simulator.settings({ trainingMs: 600_000 });
    const westSimulator = new SimulatorControl(`http://${west.host}:${west.ports.gpuSimulator}`);
    await westSimulator.settings({ trainingMs: 600_000 });
    try {
      const result = await withWorkers(async (taskQueue) => {
        const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [westFirst()] });
        // The phase turns to training just before the Job is created: wait for the Job itself, in the second cluster.
        const status = await eventually(async () => {
          const s = await handle.query<FineTuneStatus>('status');
          if (s.phase !== 'training') return undefined;
          const jobs = await westJobs.listNamespacedJob({ namespace: planDefaults.namespace });
          return jobs.items.some((j) => j.metadata!.name === s.training!.job) ? s : undefined;
        }, "the run's tuning Job in the second cluster");
        await handle.terminate('the test leaves what the run made behind');
        await temporal.closedInVisibility(workflowId);
        // The first pass deletes the Jobs; their pods leave the pool; a later pass releases it.
        return eventually(async () => {
          const reaped: ReaperResult = await temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue, workflowId: reapIdleGpuPoolsWorkflowId(`test-${unique()}`), args: [{ defaultGraceMinutes: 0 }] });
          return reaped.decisions.some((d) => d.pool === status.gpu!.pool && d.cluster === westTarget.name && d.action === 'released') ? { status, reaped } : undefined;
        }, "the reaper to release the run's pool in the second cluster", 90_000);
      });
      expect(await westPool(result.status.gpu!.pool)).toBeUndefined();
      const left = await westJobs.listNamespacedJob({ namespace: planDefaults.namespace, labelSelector: runIdLabel });
      expect(left.items.filter((j) => j.metadata?.annotations?.[workflowIdAnnotation] === workflowId && !j.metadata.deletionTimestamp)).toEqual([]);
    } finally {
      await simulator.settings({ trainingMs: 500 });
      await westSimulator.settings({ trainingMs: 500 });
    }
  });

  it('refuses a candidate in a cluster no worker serves, before anything is created', async () => {
    await westEmulator.clearRequests();
    const request = testFineTuneRequest({ gpu: { vmSize: a100, candidates: [{ vmSize: a100, cluster: 'nowhere' }] } });
    const failure = await withWorkers((taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`clusters-${unique()}`), args: [request] }).catch((e: unknown) => e),
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(String((failure as WorkflowFailedError).cause?.message)).toMatch(/cluster "nowhere", which this worker does not serve \(it serves "local-aks", "local-aks-west"/);
    expect((await westEmulator.requests()).filter((r) => r.method === 'PUT')).toEqual([]);
  });
});
