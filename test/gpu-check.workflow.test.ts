// gpuCheck on the real Temporal dev server: end to end with real activities on the local stack,
// validation, cancellation cleanup, and the search attributes the UI filters on.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchV1Api } from '@kubernetes/client-node';
import type { Activities } from '../activities/index.js';
import { createWorkerActivities } from '../workers/worker.js';
import { gpuCheck, gpuCheckStatusQuery } from '../workflows/gpu-check.js';
import { clusterName, config, containerService, emulator, eventually, adminKubeConfig, resourceGroup, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { gpuCheckWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const batch = adminKubeConfig.makeApiClient(BatchV1Api);
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 500, deletionDelayMs: 500 });
});

const poolExists = (name: string) =>
  containerService.agentPools.get(resourceGroup, clusterName, name).then(
    () => true,
    (err: { statusCode?: number }) => (err.statusCode === 404 ? false : Promise.reject(err)),
  );

describe('gpuCheck workflow', () => {
  it('provisions a GPU pool, runs nvidia-smi on it, releases everything, and is findable by its search attributes', async () => {
    const workflowId = gpuCheckWorkflowId(unique());
    const result = await temporal.withWorker(activities, (taskQueue) =>
      temporal.env.client.workflow.execute(gpuCheck, { taskQueue, workflowId, args: [{ vmSize: 'Standard_NC48ads_A100_v4' }] }),
    );
    expect(result.phase).toBe('succeeded');
    expect(result.gpusPerNode).toBe(2);
    expect(result.node).toMatch(new RegExp(`^aks-${result.pool}-`));
    expect(result.steps.map((s) => s.name)).toEqual([
      'create GPU node pool',
      'wait for GPU nodes',
      'start nvidia-smi job',
      'wait for nvidia-smi job',
      'release resources',
    ]);
    expect([...result.released].sort()).toEqual([...result.created].sort());
    expect(await poolExists(result.pool)).toBe(false);

    const query = `WorkflowId = '${workflowId}' AND PipelinePhase = 'succeeded' AND GpuVmSize = 'Standard_NC48ads_A100_v4'`;
    const found = await eventually(async () => {
      for await (const execution of temporal.env.client.workflow.list({ query })) return execution;
      return undefined;
    }, 'the run to be visible by its search attributes');
    expect(found.searchAttributes.GpuVmSize).toEqual(['Standard_NC48ads_A100_v4']);
  });

  it('reports every problem of a bad request at once and calls no activity', async () => {
    const called: string[] = [];
    const spy = new Proxy({} as Partial<Activities>, {
      get: (_t, name: string) => async () => {
        called.push(name);
      },
    });
    const error = await temporal.withWorker(spy, (taskQueue) =>
      temporal.env.client.workflow.execute(gpuCheck, {
        taskQueue,
        workflowId: gpuCheckWorkflowId(`bad-${unique()}`),
        args: [{ vmSize: 'Standard_D4s_v3', namespace: 'kube-system' }],
      }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('InvalidRequest');
    expect(cause.message).toContain('Standard_D4s_v3 has no GPUs');
    expect(cause.message).toContain('namespace "kube-system" is a system namespace the product never writes to');
    expect(called).toEqual([]);
  });

  it('releases the node pool when cancelled while the pool is still being created', async () => {
    await emulator.settings({ provisioningDelayMs: 3000 });
    try {
      const workflowId = gpuCheckWorkflowId(`cancel-${unique()}`);
      const outcome = await temporal.withWorker(activities, async (taskQueue) => {
        const handle = await temporal.env.client.workflow.start(gpuCheck, { taskQueue, workflowId, args: [{ vmSize: 'Standard_NC4as_T4_v3' }] });
        const status = await eventually(async () => {
          const s = await handle.query(gpuCheckStatusQuery);
          return s.phase === 'provisioning' && s.steps.length > 0 ? s : undefined;
        }, 'provisioning to start');
        await new Promise((r) => setTimeout(r, 500)); // let the PUT reach ARM
        await handle.cancel();
        const error = await handle.result().catch((e: unknown) => e);
        return { pool: status.pool, error, final: await handle.query(gpuCheckStatusQuery) };
      });
      expect((outcome.error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(outcome.final.phase).toBe('cancelled');
      expect(outcome.final.released).toContain(`agentPool/${outcome.pool}`);
      expect(await poolExists(outcome.pool)).toBe(false);
      const { items } = await batch.listJobForAllNamespaces({ labelSelector: `aks-finetune.io/run=${workflowId}` });
      expect(items).toEqual([]);
    } finally {
      await emulator.settings({ provisioningDelayMs: 500 });
    }
  });
});
