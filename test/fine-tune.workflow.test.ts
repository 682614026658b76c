// fineTune end to end on the local stack with real activities: the happy path, deploy, the
// release policies, validation, training failure, cancellation at each step, a registry
// outage during the push, and a worker killed during training.
import { type ChildProcess, spawn } from 'node:child_process';
import { AppsV1Api, BatchV1Api } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import { type ActivityFailure, type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../activities/index.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { startStack } from '../scripts/stack/cli.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { stopProcess } from '../scripts/stack/processes.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { startJobWatcher } from '../workers/job-watcher.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneObjectNames, nodePoolName, runTag } from '../workflows/naming.js';
import { adminKubeConfig, clusterName, config, containerService, core, emulator, eventually, kubeConfig, objectsLabelled, poolOf, resourceGroup, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const batch = adminKubeConfig.makeApiClient(BatchV1Api);
const apps = adminKubeConfig.makeApiClient(AppsV1Api);
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const registryHost = new URL(config.registry.endpoint).host;
const namespace = 'aks-finetune';
const stackConfig = loadStackConfig();

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 500 });
});

afterEach(async () => {
  await simulator.settings({ trainingMs: 500, failTraining: undefined });
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
});

/** Everything in the cluster that carries the run's label. */
const leftovers = (runId: string) => objectsLabelled(namespace, `aks-finetune.io/run=${runId}`);

async function expectNothingLeft(status: FineTuneStatus, runId: string): Promise<void> {
  expect(await poolOf(status.gpu!.pool)).toBeUndefined();
  // A deleted PVC stays listed until the pvc-protection controller drops its finalizer, once the pod that used it is gone.
  const gone = await eventually(async () => ((await leftovers(runId)).length === 0 ? true : undefined), `the objects of ${runId} gone`, 90_000).catch(() => false);
  if (!gone) expect(await leftovers(runId)).toEqual([]);
}

/** A finished run that left its pool warm (scale-to-zero), once visibility lists it closed: a claim skips the pools of runs it lists as open. */
async function warmPoolLeftBy(name: string): Promise<FineTuneStatus> {
  const workflowId = fineTuneWorkflowId(`${name}-${unique()}`);
  const status = await temporal.withWorker(activities, (taskQueue) =>
    temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ release: { policy: 'scale-to-zero' } })] }),
  );
  await temporal.closedInVisibility(workflowId);
  return status;
}

/**
 * Starts a run on a task queue no worker polls yet, so what depends on its run id (the pool
 * name) is known before the run acts; `temporal.withWorker(activities, ..., taskQueue)` runs it.
 * It provisions its own pool, never a warm one another test left: faults aimed at its pool must hit.
 */
async function startBeforeAnyWorker(workflowId: string, request: FineTuneRequest) {
  const taskQueue = `test-${unique()}`;
  const args = { ...request, gpu: { ...request.gpu, reuseWarmPool: false } };
  const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [args] });
  return { handle, taskQueue, pool: nodePoolName('ft', { workflowId, runId: handle.firstExecutionRunId }) };
}

describe('fineTune', () => {
  it('trains, pushes the adapter, records its digest and lineage, releases the pool, and leaves nothing behind', async () => {
    const workflowId = fineTuneWorkflowId(`${unique()}`);
    const status = await temporal.withWorker(activities, (taskQueue) => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] }));

    expect(status.phase).toBe('succeeded');
    expect(status.steps.map((s) => s.name)).toEqual(['GPU capacity', 'wait for GPU nodes', 'tuning inputs', 'train', 'push adapter image', 'release GPUs']);
    expect(status.training).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(status.evalLoss).toBeUndefined(); // no held-out split asked for: the trainer evaluates nothing
    expect(status.pushAttempts).toBe(1);
    expect(status.released).toContain(`AgentPool/${status.gpu!.pool} (deleted)`);
    expect(status.gpu).toMatchObject({ vmSize: 'Standard_NC24ads_A100_v4', gpusPerNode: 1, currency: 'USD', pricesAsOf: '2025-06-01' });
    expect(status.gpu!.gpuMinutes).toBeGreaterThan(0);
    await expectNothingLeft(status, workflowId);

    // The registry holds the adapter under the recorded digest, with its lineage.
    const ref = status.adapter!.image!.split('/').slice(1).join('/');
    const [repository, tag] = ref.split(':') as [string, string];
    const registry = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
    const { digest, manifest } = await registry.getManifest(tag);
    expect(digest).toBe(status.adapter!.digest);
    expect((manifest as { annotations: Record<string, string> }).annotations).toMatchObject({
      'sh.kaito.model.name': 'phi-3-mini-4k-instruct',
      'aks-finetune.io/method': 'qlora',
      'aks-finetune.io/dataset': 'https://datasets.example.com/support/chats.jsonl',
      'aks-finetune.io/workflow-id': workflowId,
    });

    const query = `WorkflowId = '${workflowId}' AND BaseModel = 'phi-3-mini-4k-instruct' AND TuningMethod = 'qlora' AND PipelinePhase = 'succeeded' AND AdapterRepository = '${registryHost}/${repository}'`;
    await eventually(async () => {
      for await (const execution of temporal.env.client.workflow.list({ query })) return execution;
      return undefined;
    }, 'the run to be found by its search attributes');
  });

  it('deploys inference with the adapter by digest, smoke-checks /v1/models, and keeps the pool for it', async () => {
    const workflowId = fineTuneWorkflowId(`deploy-${unique()}`);
    const status = await temporal.withWorker(activities, (taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ runName: `svc-${unique()}`, deploy: { replicas: 1 } })] }),
    );
    try {
      expect(status.phase).toBe('succeeded');
      expect(status.inference?.models).toEqual(['phi-3-mini-4k-instruct', expect.stringMatching(/^svc-/)]);
      const deployment = await apps.readNamespacedDeployment({ name: status.inference!.service, namespace });
      const args = deployment.spec!.template.spec!.initContainers!.map((c) => c.command!.join(' ')).join('\n');
      expect(args).toContain(status.adapter!.reference!);
      expect(status.adapter!.reference).toMatch(/@sha256:[0-9a-f]{64}$/);
      expect((await poolOf(status.gpu!.pool))?.count).toBe(1);
      expect((await leftovers(workflowId)).sort()).toEqual([`Deployment/${status.inference!.service}`, `Service/${status.inference!.service}`]);
    } finally {
      await apps.deleteNamespacedDeployment({ name: status.inference!.service, namespace });
      await core.deleteNamespacedService({ name: status.inference!.service, namespace });
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, status.gpu!.pool, { updateIntervalInMs: 200 });
    }
  });

  it('scales the pool to zero instead of deleting it when the release policy says so', async () => {
    const status = await temporal.withWorker(activities, (taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`zero-${unique()}`), args: [testFineTuneRequest({ release: { policy: 'scale-to-zero' } })] }),
    );
    try {
      expect(status.released).toContain(`AgentPool/${status.gpu!.pool} (scaled to 0)`);
      expect(await poolOf(status.gpu!.pool)).toMatchObject({ count: 0, provisioningState: 'Succeeded' });
    } finally {
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, status.gpu!.pool, { updateIntervalInMs: 200 });
    }
  });

  it('finishes as soon as the shared Job watcher signals, not on its next (10 minute) check', async () => {
    const watcher = startJobWatcher(kubeConfig, temporal.env.client);
    try {
      // Checks would wait 600 s: the run can only finish within the test's timeout through the signal.
      // The worker's activities read from the watcher's object cache, as the product's worker does.
      const cachedActivities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 }, undefined, watcher);
      const status = await temporal.withWorker(cachedActivities, (taskQueue) =>
        temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`signal-${unique()}`), args: [testFineTuneRequest({ pollIntervalSeconds: 600 })] }),
      );
      expect(status.phase).toBe('succeeded');
    } finally {
      watcher.stop();
    }
  }, 90_000);

  it('fails at once on a quota error, creating nothing', async () => {
    const workflowId = fineTuneWorkflowId(`quota-${unique()}`);
    const { handle, taskQueue, pool } = await startBeforeAnyWorker(workflowId, testFineTuneRequest());
    await emulator.addFault({ kind: 'quota', method: 'PUT', pool });
    const error = await temporal.withWorker(activities, () => handle.result(), taskQueue).catch((e: unknown) => e);
    const cause = ((error as WorkflowFailedError).cause as ActivityFailure).cause as ApplicationFailure;
    expect(cause.type).toBe('GpuQuotaExceeded');
    expect(cause.message).toMatch(/quota is exhausted\. Request a quota increase for that VM family, or choose another vmSize/);
    expect(await poolOf(pool)).toBeUndefined();
    expect(await leftovers(workflowId)).toEqual([]);
  });

  it('retries a capacity failure and succeeds when capacity comes back', async () => {
    const workflowId = fineTuneWorkflowId(`capacity-${unique()}`);
    const { handle, taskQueue, pool } = await startBeforeAnyWorker(workflowId, testFineTuneRequest());
    await emulator.clearRequests();
    await emulator.addFault({ kind: 'capacity', pool });
    const status = await temporal.withWorker(activities, () => handle.result(), taskQueue);
    expect(status.phase).toBe('succeeded');
    const puts = (await emulator.requests()).filter((r) => r.method === 'PUT' && r.path.endsWith(`/agentPools/${pool}`));
    expect(puts).toHaveLength(2);
    await expectNothingLeft(status, workflowId);
  });

  it('reuses the warm pool a finished run left, and reports the provisioning time saved', async () => {
    const first = await warmPoolLeftBy('warm-a');
    expect((await poolOf(first.gpu!.pool))?.count).toBe(0);
    const workflowId = fineTuneWorkflowId(`warm-b-${unique()}`);
    const second = await temporal.withWorker(activities, (taskQueue) => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] }));
    expect(second.gpu).toMatchObject({ pool: first.gpu!.pool, reusedPool: true, reusedFrom: expect.stringMatching(/^fine-tune-warm-a-/) });
    expect(second.gpu!.provisioningSecondsSaved).toBeGreaterThan(0);
    expect(second.steps[0]?.detail).toMatch(/^reused warm pool ft\w+, about [\d.]+s of provisioning saved$/);
    await expectNothingLeft(second, workflowId); // it was the second run's to release, and it did
  });

  it('never lets two concurrent runs claim the same warm pool', async () => {
    const first = await warmPoolLeftBy('race-a');
    const ids = [fineTuneWorkflowId(`race-b-${unique()}`), fineTuneWorkflowId(`race-c-${unique()}`)];
    const results = await temporal.withWorker(activities, (taskQueue) =>
      Promise.all(ids.map((workflowId) => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] }))),
    );
    expect(results.map((r) => r.phase)).toEqual(['succeeded', 'succeeded']);
    const claimed = results.filter((r) => r.gpu!.pool === first.gpu!.pool);
    expect(claimed).toHaveLength(1);
    expect(claimed[0]!.gpu!.reusedPool).toBe(true);
    expect(results.find((r) => r !== claimed[0])!.gpu!.reusedPool).toBe(false);
    for (const [i, r] of results.entries()) await expectNothingLeft(r, ids[i]!);
  });

  it('fails a bad request with every problem listed and calls no activity', async () => {
    const called: string[] = [];
    const spy = new Proxy({} as Partial<Activities>, { get: (_t, name: string) => async () => void called.push(name) });
    const error = await temporal.withWorker(spy, (taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, {
        taskQueue,
        workflowId: fineTuneWorkflowId(`bad-${unique()}`),
        args: [{ model: 'phi-3-medium-4k-instruct', gpu: { vmSize: 'Standard_NC4as_T4_v3' }, dataset: { urls: ['http://169.254.169.254/latest'] } }],
      }),
    ).catch((e: unknown) => e);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('InvalidRequest');
    const problems = (cause.details?.[0] as { problems: string[] }).problems;
    expect(problems).toHaveLength(4);
    expect(cause.message).toContain('T4 GPUs, which do not compute in bfloat16');
    expect(cause.message).toContain('169.254.169.254 is a link-local address');
    expect(cause.message).toContain('output.image or output.volume is required');
    expect(called).toEqual([]);
  });

  it('refuses a loopback output registry at once, creating nothing, on a worker not beside that registry', async () => {
    const remoteWorker = createWorkerActivities({ ...config, registry: { ...config.registry, allowLoopback: false } }, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
    await emulator.clearRequests();
    const workflowId = fineTuneWorkflowId(`loopback-${unique()}`);
    const error = await temporal
      .withWorker(remoteWorker, (taskQueue) => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] }))
      .catch((e: unknown) => e);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('InvalidRequest');
    expect(cause.message).toMatch(new RegExp(`^Invalid fineTune request \\(1 problem\\): output.image's registry ${registryHost} is a loopback address: the pusher pod would push to itself`));
    expect(await emulator.requests()).toEqual([]);
    expect(await leftovers(workflowId)).toEqual([]);
  });

  it('fails an out-of-memory training with advice, and cleans up everything', async () => {
    await simulator.settings({ failTraining: { reason: 'OOMKilled', exitCode: 137, times: 2 } });
    const workflowId = fineTuneWorkflowId(`oom-${unique()}`);
    const { error, status } = await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ method: 'lora' })] });
      return { error: await handle.result().catch((e: unknown) => e), status: await handle.query(fineTuneStatusQuery) };
    });
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('TrainingFailed');
    expect(cause.message).toMatch(/OOMKilled.*use method qlora, or a VM size with more GPU memory than Standard_NC24ads_A100_v4's 80 GiB/);
    expect(status).toMatchObject({ phase: 'failed', training: { state: 'failed', attempts: 2 } });
    await expectNothingLeft(status, workflowId);
  });

  it('stops training and cleans up when the GPU budget is spent', async () => {
    await simulator.settings({ trainingMs: 60_000 });
    const workflowId = fineTuneWorkflowId(`budget-${unique()}`);
    const { error, status } = await temporal.withWorker(activities, async (taskQueue) => {
      // 0.002 GPU-hours: about 7 seconds of one GPU.
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ budget: { maxGpuHours: 0.002 } })] });
      return { error: await handle.result().catch((e: unknown) => e), status: await handle.query(fineTuneStatusQuery) };
    });
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('BudgetExceeded');
    expect(cause.message).toMatch(/^Budget exceeded after [\d.]+ GPU-minutes \(about [\d.]+ USD; limit 0\.002 GPU-hours\): training was stopped/);
    expect(status.gpu!.gpuMinutes).toBeGreaterThanOrEqual(0.12);
    expect(status.gpu!.gpuMinutes).toBeLessThan(1);
    await expectNothingLeft(status, workflowId);
  });

  it.each([
    { phase: 'provisioning', setup: () => emulator.settings({ provisioningDelayMs: 3000 }) },
    { phase: 'training', setup: () => simulator.settings({ trainingMs: 20_000 }) },
  ] as const)('leaves no pool and no Job when cancelled while $phase', async ({ phase, setup }) => {
    await setup();
    const workflowId = fineTuneWorkflowId(`cancel-${phase}-${unique()}`);
    const status = await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
      await eventually(async () => ((await handle.query(fineTuneStatusQuery)).phase === phase ? true : undefined), `phase ${phase}`);
      await new Promise((r) => setTimeout(r, 500)); // let the step's first call land
      await handle.cancel();
      expect((await handle.result().catch((e: unknown) => e) as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      return handle.query(fineTuneStatusQuery);
    });
    expect(status.phase).toBe('cancelled');
    await expectNothingLeft(status, workflowId);
  });

  it('cancelled while the activity it waits for was lost with its worker: ends cancelled, not failed, and cleans up', async () => {
    const workflowId = fineTuneWorkflowId(`cancel-lost-${unique()}`);
    // ensureNodePool as a killed worker leaves it: no answer, no heartbeat (its late end is ignored).
    const lost: Partial<Activities> = { ...activities, ensureNodePool: () => new Promise<never>((_, reject) => setTimeout(() => reject(new Error('lost')), 30_000)) };
    const { error, status } = await temporal.withWorker(lost, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', reuseWarmPool: false } })] });
      await eventually(async () => ((await handle.query(fineTuneStatusQuery)).currentStep === 'GPU capacity' ? true : undefined), 'the GPU capacity step');
      await handle.cancel();
      // The cancel cannot reach the lost activity: it ends in a heartbeat timeout, not a cancellation.
      return { error: await handle.result().catch((e: unknown) => e), status: await handle.query(fineTuneStatusQuery) };
    });
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(status.phase).toBe('cancelled');
    expect(status.error).toMatch(/cancelled \(.*[Hh]eartbeat/);
    await expectNothingLeft(status, workflowId);
  }, 120_000);

  it('cancelled while claiming a warm pool, still releases the pool it claimed', async () => {
    const first = await warmPoolLeftBy('claim-a');
    const warm = first.gpu!.pool;
    await emulator.settings({ provisioningDelayMs: 4000 }); // the claim (0 -> 1 node) takes a while
    const workflowId = fineTuneWorkflowId(`claim-b-${unique()}`);
    const status = await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
      await eventually(async () => ((await poolOf(warm))?.tags?.['aks-finetune.io/workflow-id'] === workflowId ? true : undefined), 'the claim to land');
      await handle.cancel();
      await handle.result().catch(() => undefined);
      return handle.query(fineTuneStatusQuery);
    });
    expect(status.phase).toBe('cancelled');
    expect(status.released).toContain(`AgentPool/${warm} (deleted)`);
    expect(await poolOf(warm)).toBeUndefined();
    expect(await leftovers(workflowId)).toEqual([]);
  });

  it('starts training again on a fresh node when its pool is deleted under the trainer, and leaves nothing behind', async () => {
    await simulator.settings({ trainingMs: 30_000 });
    const workflowId = fineTuneWorkflowId(`node-lost-${unique()}`);
    const status = await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
      const running = await eventually(async () => {
        const s = await handle.query(fineTuneStatusQuery);
        return s.training?.state === 'running' ? s : undefined;
      }, 'training to run');
      // Someone else deletes the pool: its node, and the trainer's pod with it, go away.
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, running.gpu!.pool, { updateIntervalInMs: 200 });
      await simulator.settings({ trainingMs: 500 });
      return handle.result();
    });
    expect(status.phase).toBe('succeeded');
    expect(status.capacityRecoveries).toEqual([{ at: expect.any(String), step: 'train', reason: expect.stringMatching(/^node aks-ft[\w-]+-vmss\d+ is gone \(pod fine-tune-node-lost-[\w-]+-train-\w+\)$|disrupted/) }]);
    expect(status.training).toMatchObject({ state: 'succeeded', job: expect.stringMatching(new RegExp(`^${workflowId}-\\w+-train-r1$`)) });
    await expectNothingLeft(status, workflowId);
  });

  it("fails a trainer pod that cannot be scheduled within its start timeout, with the scheduler's reason, and cleans up", async () => {
    const pool = `np${unique(6)}`;
    // A pool of the user's whose nodes carry a taint the NVIDIA device plugin tolerates and the trainer does not.
    await containerService.agentPools.beginCreateOrUpdateAndWait(
      resourceGroup,
      clusterName,
      pool,
      { vmSize: 'Standard_NC24ads_A100_v4', count: 1, mode: 'User', nodeTaints: ['nvidia.com/gpu=present:NoSchedule'] },
      { updateIntervalInMs: 200 },
    );
    try {
      const workflowId = fineTuneWorkflowId(`unschedulable-${unique()}`);
      const { error, status } = await temporal.withWorker(activities, async (taskQueue) => {
        const handle = await temporal.env.client.workflow.start(fineTune, {
          taskQueue,
          workflowId,
          args: [testFineTuneRequest({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', nodePool: pool }, tuning: { podStartTimeoutMinutes: 0.1 } })],
        });
        return { error: await handle.result().catch((e: unknown) => e), status: await handle.query(fineTuneStatusQuery) };
      });
      const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('PodNotStarting');
      expect(cause.message).toMatch(/^The trainer pod of Job fine-tune-unschedulable-[\w-]+-train has not started after 0.1 minutes: Unschedulable: .*untolerated taint.*nvidia\.com\/gpu/);
      expect(status.phase).toBe('failed');
      expect(await leftovers(workflowId)).toEqual([]);
      expect((await poolOf(pool))?.count).toBe(1); // the user's pool is not the run's to release
    } finally {
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 });
    }
  });

  describe('with the registry down', () => {
    afterEach(async () => {
      await startStack(stackConfig, () => undefined); // brings the registry back if a test left it stopped
    });

    it('retries only the push, never the training, and succeeds once the registry is back', async () => {
      await simulator.settings({ trainingMs: 1500 });
      const workflowId = fineTuneWorkflowId(`push-retry-${unique()}`);
      const status = await temporal.withWorker(activities, async (taskQueue) => {
        const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
        await eventually(async () => ((await handle.query(fineTuneStatusQuery)).phase === 'training' ? true : undefined), 'training');
        await stopProcess(stackConfig, 'registry');
        await eventually(async () => ((await handle.query(fineTuneStatusQuery)).pushAttempts >= 2 ? true : undefined), 'a second push attempt', 90_000);
        await startStack(stackConfig, () => undefined);
        return handle.result();
      });
      expect(status.phase).toBe('succeeded');
      expect(status.pushAttempts).toBeGreaterThanOrEqual(2);
      expect(status.training).toMatchObject({ attempts: 1 });
      expect(status.created.filter((c) => c.endsWith('-train'))).toHaveLength(1);
      expect(status.adapter?.digest).toMatch(/^sha256:/);
      await expectNothingLeft(status, workflowId);
    });

    it('leaves no pool and no Job when cancelled while pushing', async () => {
      await simulator.settings({ trainingMs: 1000 });
      const workflowId = fineTuneWorkflowId(`cancel-push-${unique()}`);
      const status = await temporal.withWorker(activities, async (taskQueue) => {
        const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
        await eventually(async () => ((await handle.query(fineTuneStatusQuery)).phase === 'training' ? true : undefined), 'training');
        await stopProcess(stackConfig, 'registry');
        await eventually(async () => ((await handle.query(fineTuneStatusQuery)).phase === 'pushing' ? true : undefined), 'pushing');
        await handle.cancel();
        await handle.result().catch(() => undefined);
        return handle.query(fineTuneStatusQuery);
      });
      expect(status.phase).toBe('cancelled');
      await expectNothingLeft(status, workflowId);
    });
  });

  it('resumes after the worker is killed during training, with exactly one tuning Job', async () => {
    await simulator.settings({ trainingMs: 8000 });
    const taskQueue = `test-crash-${unique()}`;
    const startWorker = (): ChildProcess =>
      spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], { env: { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue }, stdio: 'ignore', detached: true });
    const workflowId = fineTuneWorkflowId(`crash-${unique()}`);
    const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
    let worker = startWorker();
    try {
      const training = async () => ((await handle.query(fineTuneStatusQuery).catch(() => undefined))?.training?.state === 'running' ? true : undefined);
      await eventually(training, 'training to run', 60_000);
      const trainJob = fineTuneObjectNames(workflowId, runTag({ workflowId, runId: handle.firstExecutionRunId })).trainJob();
      const jobBefore = await batch.readNamespacedJob({ name: trainJob, namespace });
      process.kill(-worker.pid!, 'SIGKILL');
      worker = startWorker();
      await eventually(training, 'the new worker to answer', 60_000);
      const jobAfter = await batch.readNamespacedJob({ name: trainJob, namespace });
      expect(jobAfter.metadata?.uid).toBe(jobBefore.metadata?.uid); // the same Job, watched again
      const status = await handle.result();
      expect(status.phase).toBe('succeeded');
      expect(status.training).toMatchObject({ attempts: 1, state: 'succeeded' });
      expect(status.created.filter((c) => c.endsWith('-train'))).toEqual([`Job/${trainJob}`]);
      await expectNothingLeft(status, workflowId);
    } finally {
      try {
        process.kill(-worker.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
});
