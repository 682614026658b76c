// fineTune's orchestration alone, on the real dev server with stub activities: the order of
// steps, which failures are retried, and compensation after a failure late in the run.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { Activities } from '../activities/index.js';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import { fineTune } from '../workflows/fine-tune.js';
import { unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();


const done: JobProgress = { state: 'succeeded', restarts: 0, attempts: 1, node: 'n1' };

/** Stub activities that record every call; `overrides` replace some. */
function stubs(calls: string[], overrides: Partial<Record<keyof Activities, (...args: never[]) => Promise<unknown>>> = {}): Partial<Activities> {
  const base: Partial<Record<keyof Activities, (...args: never[]) => Promise<unknown>>> = {
    listManagedPools: async () => [],
    ensureNodePool: async () => ({ name: 'p', vmSize: 'Standard_NC24ads_A100_v4', count: 1, provisioningState: 'Succeeded', adopted: false }),
    waitForPoolNodes: async () => ({ nodes: ['n1'], gpusPerNode: 1 }),
    ensureNamespace: async () => undefined,
    ensureTuningInputs: async () => undefined,
    startTuningJob: async () => ({ adopted: false }),
    startPushJob: async () => ({ adopted: false }),
    checkJob: async () => done,
    readAdapterImage: async () => ({ digest: `sha256:${'a'.repeat(64)}`, annotations: {}, layerDigest: `sha256:${'b'.repeat(64)}` }),
    deleteNodePool: async () => true,
    deleteRunObjects: async () => ['Job/x'],
    ...overrides,
  };
  return Object.fromEntries(
    Object.entries(base).map(([name, fn]) => [
      name,
      async (...args: never[]) => {
        calls.push(name);
        return fn!(...args);
      },
    ]),
  ) as Partial<Activities>;
}

const request = {
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora' as const,
  dataset: { urls: ['https://datasets.example.com/x.jsonl'] },
  output: { image: 'myacr.azurecr.io/adapters/x:v1' },
  gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
  pollIntervalSeconds: 1,
};

const run = (activities: Partial<Activities>) =>
  temporal.withWorker(activities, (taskQueue) =>
    temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: `orch-${unique()}`, args: [request] }).catch((e: unknown) => e),
  );

describe('fineTune orchestration', () => {
  it('runs the steps in order and releases the pool before cleaning up', async () => {
    const calls: string[] = [];
    await run(stubs(calls));
    expect(calls).toEqual([
      'listManagedPools',
      'ensureNodePool',
      'waitForPoolNodes',
      'ensureNamespace',
      'ensureTuningInputs',
      'startTuningJob',
      'checkJob',
      'startPushJob',
      'checkJob',
      'readAdapterImage',
      'deleteNodePool',
      'deleteRunObjects',
    ]);
  });

  it('retries a transient activity failure and carries on', async () => {
    const calls: string[] = [];
    let failures = 0;
    const result = await run(
      stubs(calls, {
        ensureTuningInputs: async () => {
          if (failures++ < 2) throw new Error('apiserver: connection reset');
        },
      }),
    );
    expect(result).toMatchObject({ phase: 'succeeded' });
    expect(calls.filter((c) => c === 'ensureTuningInputs')).toHaveLength(3);
  });

  it('compensates after a late non-retryable failure: removes the run objects and the pool, once', async () => {
    const calls: string[] = [];
    const error = await run(
      stubs(calls, {
        readAdapterImage: async () => {
          throw ApplicationFailure.nonRetryable('not in the registry', 'AdapterPushFailed');
        },
      }),
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(calls.slice(-3)).toEqual(['readAdapterImage', 'deleteRunObjects', 'deleteNodePool']);
    expect(calls.filter((c) => c === 'readAdapterImage')).toHaveLength(1);
  });

  it('retries the push with a new pusher Job when one fails, without training again', async () => {
    const calls: string[] = [];
    const pushed: string[] = [];
    let checks = 0;
    const result = await run(
      stubs(calls, {
        startPushJob: async (...args: never[]) => {
          pushed.push((args[1] as unknown as { name: string }).name);
          return { adopted: false };
        },
        // train succeeds, first push fails, second push succeeds
        checkJob: async () => (++checks === 2 ? { ...done, state: 'failed', reason: 'Error: registry unreachable' } : done),
      }),
    );
    expect(result).toMatchObject({ phase: 'succeeded', pushAttempts: 2 });
    expect(pushed.map((n) => n.replace(/^.*-push-/, 'push-'))).toEqual(['push-1', 'push-2']);
    expect(calls.filter((c) => c === 'startTuningJob')).toHaveLength(1);
  });
});
