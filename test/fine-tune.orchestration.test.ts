// fineTune's orchestration alone, on the real dev server with stub activities: the order of
// steps, which failures are retried, and compensation after a failure late in the run.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { Activities } from '../activities/index.js';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { fineTune } from '../workflows/fine-tune.js';
import { unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();


const done: JobProgress = { state: 'succeeded', restarts: 0, attempts: 1, node: 'n1' };

/** Stub activities that record every call; `overrides` replace some. */
function stubs(calls: string[], overrides: Partial<Record<keyof Activities, (...args: never[]) => Promise<unknown>>> = {}): Partial<Activities> {
  const base: Partial<Record<keyof Activities, (...args: never[]) => Promise<unknown>>> = {
    checkOutputRegistry: async () => undefined,
    listManagedPools: async () => [],
    readGpuQuota: async () => ({ location: 'eastus', usages: [] }),
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
  // The tuning Job's checks read the trainer's log too; here they answer what checkJob answers, with no log lines.
  const checkJob = base.checkJob as (namespace: string, name: string) => Promise<JobProgress>;
  base.checkTrainingJob = async (namespace: string, name: string) => ({ progress: await checkJob(namespace, name) });
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

const run = (activities: Partial<Activities>, overrides: Partial<FineTuneRequest> = {}) =>
  temporal.withWorker(activities, (taskQueue) =>
    temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`orch-${unique()}`), args: [{ ...request, ...overrides }] }).catch((e: unknown) => e),
  );

describe('fineTune orchestration', () => {
  it('runs the steps in order and releases the pool before cleaning up', async () => {
    const calls: string[] = [];
    await run(stubs(calls));
    expect(calls).toEqual([
      'checkOutputRegistry',
      'listManagedPools',
      'readGpuQuota',
      'ensureNodePool',
      'waitForPoolNodes',
      'ensureNamespace',
      'ensureTuningInputs',
      'startTuningJob',
      'checkTrainingJob',
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
    // The pools are found by the run's tag too: a create or claim a cancellation cut short may have gone through.
    expect(calls.slice(-4)).toEqual(['readAdapterImage', 'deleteRunObjects', 'listManagedPools', 'deleteNodePool']);
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

  it('still releases the pool when another cleanup step fails, and keeps the original error with the cleanup failure added', async () => {
    const calls: string[] = [];
    const error = await run(
      stubs(calls, {
        checkJob: async () => ({ ...done, state: 'failed', reason: 'BackoffLimitExceeded: OOMKilled: exit code 137' }),
        deleteRunObjects: async () => {
          throw ApplicationFailure.nonRetryable('namespaces "aks-finetune" is forbidden', 'Forbidden');
        },
      }),
    );
    expect(calls.slice(-3)).toEqual(['deleteRunObjects', 'listManagedPools', 'deleteNodePool']);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('TrainingFailed');
    expect(cause.message).toMatch(/^Training Job .* failed: BackoffLimitExceeded: OOMKilled.*use method qlora.*\(cleanup also failed: remove run objects: namespaces "aks-finetune" is forbidden\)$/);
  });

  it('fails the run after its cleanup when workflow code throws, instead of retrying the workflow task forever', async () => {
    const calls: string[] = [];
    // A value no activity should return: reading it throws a TypeError inside the workflow.
    const error = await run(stubs(calls, { checkJob: async () => undefined }));
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toMatchObject({ type: 'WorkflowCodeError', nonRetryable: true });
    expect(cause.message).toMatch(/^fineTune workflow code failed: TypeError: /);
    expect(calls.slice(-3)).toEqual(['deleteRunObjects', 'listManagedPools', 'deleteNodePool']);
  });

  it('starts training again on fresh capacity when the node goes away, a bounded number of times', async () => {
    const calls: string[] = [];
    const trainJobs: string[] = [];
    const error = await run(
      stubs(calls, {
        startTuningJob: async (...args: never[]) => {
          trainJobs.push((args[1] as unknown as { name: string }).name.replace(/^.*-train/, 'train'));
          return { adopted: false };
        },
        checkJob: async () => ({ state: 'running', restarts: 0, attempts: 1, node: 'n1', nodeLost: 'node n1 is gone (pod t-1)' }),
        deleteJob: async () => true,
      }),
    );
    expect(trainJobs).toEqual(['train', 'train-r1', 'train-r2']);
    expect(calls.filter((c) => c === 'ensureNodePool')).toHaveLength(3);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('NodeLost');
    expect(cause.message).toMatch(/^train: node n1 is gone \(pod t-1\)\. Nodes went away 3 times \(at most 2 recoveries\)/);
    expect(calls.at(-1)).toBe('deleteNodePool');
  });

  it("fails a pod that cannot start with the pod's own reason once its start timeout has passed", async () => {
    const calls: string[] = [];
    const pulling: JobProgress = {
      state: 'pending',
      restarts: 0,
      attempts: 1,
      problem: 'ImagePullBackOff (container trainer): Back-off pulling image "mcr.microsoft.com/aks/kaito/kaito-base:nope"',
    };
    const error = await run(stubs(calls, { checkJob: async () => pulling }), { tuning: { podStartTimeoutMinutes: 0.05 } });
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('PodNotStarting');
    expect(cause.message).toMatch(/^The trainer pod of Job fine-tune-orch-[\w-]+-train has not started after 0.05 minutes: /);
    expect(cause.message).toContain(pulling.problem);
    expect(calls.filter((c) => c === 'startPushJob')).toHaveLength(0);
    expect(calls.slice(-3)).toEqual(['deleteRunObjects', 'listManagedPools', 'deleteNodePool']);
  });

  it('pushes again on fresh capacity when the pusher loses its node', async () => {
    const calls: string[] = [];
    let checks = 0;
    const result = await run(
      stubs(calls, {
        // train succeeds, the first pusher loses its node, the second succeeds
        checkJob: async () => (++checks === 2 ? { ...done, state: 'running', nodeLost: 'node n1 is gone (pod p-1)' } : done),
        deleteJob: async () => true,
      }),
    );
    expect(result).toMatchObject({ phase: 'succeeded', pushAttempts: 2, capacityRecoveries: [{ step: 'push adapter image', reason: 'node n1 is gone (pod p-1)' }] });
    expect(calls.filter((c) => c === 'ensureNodePool')).toHaveLength(2);
    expect(calls.filter((c) => c === 'startTuningJob')).toHaveLength(1);
  });
});
