// The pure decisions behind a run's lifecycle: GPU accounting and budgets, which warm pool to
// claim, advice on failures, adapter lineage, and how a pod's status reads as a problem.
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { podProblem } from '../activities/kubernetes/jobs.js';
import { trainingFailureMessage } from '../domain/advice.js';
import { budgetExceededMessage, budgetMinutesLeft, gpuTime, gpuUsage } from '../domain/gpu-usage.js';
import { datasetLineage } from '../domain/dataset-url.js';
import { adapterAnnotations } from '../domain/lineage.js';
import { defaultPriceTable } from '../domain/prices.js';
import { warmPoolCandidates } from '../domain/warm-pool.js';

const a100 = { vmSize: 'Standard_NC24ads_A100_v4', spot: false, gpusPerNode: 1, readyAtMs: 0 };

describe('GPU usage and budgets', () => {
  it('counts GPU-minutes per GPU and the cost per VM, with the spot discount', () => {
    expect(gpuUsage(a100, defaultPriceTable, 30 * 60_000)).toEqual({ gpuMinutes: 30, estimatedCost: 1.84 });
    expect(gpuUsage({ ...a100, gpusPerNode: 4 }, defaultPriceTable, 30 * 60_000).gpuMinutes).toBe(120);
    expect(gpuUsage({ ...a100, spot: true }, defaultPriceTable, 60 * 60_000).estimatedCost).toBe(1.1);
    expect(gpuUsage(a100, defaultPriceTable, -5).gpuMinutes).toBe(0);
  });

  it("splits a released pool's GPU time into the trainer's and idle time, in GPU-seconds", () => {
    const at = (s: number) => new Date(s * 1000).toISOString();
    const hold = { ...a100, gpusPerNode: 2 };
    expect(gpuTime(hold, 100_000, { startedAt: at(10), finishedAt: at(70) })).toEqual({ billedSeconds: 200, usedSeconds: 120, idleSeconds: 80 });
    // Cancelled while training: the trainer counts until the release.
    expect(gpuTime(hold, 100_000, { startedAt: at(10) })).toEqual({ billedSeconds: 200, usedSeconds: 180, idleSeconds: 20 });
    // No trainer yet, or a trainer that started before the node was Ready (a claimed warm pool's clock).
    expect(gpuTime(hold, 100_000)).toEqual({ billedSeconds: 200, usedSeconds: 0, idleSeconds: 200 });
    expect(gpuTime({ ...hold, readyAtMs: 50_000 }, 100_000, { startedAt: at(10), finishedAt: at(60) })).toEqual({ billedSeconds: 100, usedSeconds: 20, idleSeconds: 80 });
  });

  it('says how many minutes are left under the tighter of the two limits', () => {
    const usage = gpuUsage(a100, defaultPriceTable, 30 * 60_000);
    expect(budgetMinutesLeft(undefined, a100, defaultPriceTable, usage)).toBeUndefined();
    expect(budgetMinutesLeft({ maxGpuHours: 1 }, a100, defaultPriceTable, usage)).toBe(30);
    expect(budgetMinutesLeft({ maxGpuHours: 1 }, { ...a100, gpusPerNode: 2 }, defaultPriceTable, usage)).toBe(15);
    // 3.673 USD an hour: 2 USD more lasts about 32.7 minutes, less than the hour the GPU-hours allow.
    expect(budgetMinutesLeft({ maxGpuHours: 2, maxCost: 3.84 }, a100, defaultPriceTable, usage)).toBeCloseTo(32.67, 1);
    expect(budgetMinutesLeft({ maxGpuHours: 0.25 }, a100, defaultPriceTable, usage)).toBe(-15);
  });

  it('names the limit that was hit', () => {
    expect(budgetExceededMessage({ maxGpuHours: 0.5, maxCost: 2 }, { gpuMinutes: 31, estimatedCost: 1.9 }, 'USD')).toBe(
      "Budget exceeded after 31 GPU-minutes (about 1.9 USD; limit 0.5 GPU-hours, 2 USD): training was stopped and the run's resources released.",
    );
  });
});

describe('warm pool choice', () => {
  const pool = (name: string, more: Partial<Parameters<typeof warmPoolCandidates>[0][number]> = {}) => ({
    name,
    vmSize: 'Standard_NC24ads_A100_v4',
    spot: false,
    count: 0,
    provisioningState: 'Succeeded',
    eTag: `etag-${name}`,
    owner: { workflowId: `run-${name}`, runId: 'r1' },
    ...more,
  });
  const wanted = { vmSize: 'standard_nc24ads_a100_v4', spot: false, self: { workflowId: 'me', runId: 'r2' } };

  it('takes settled pools of the same size and spot setting whose run has ended, running ones first', () => {
    const pools = [
      pool('idle'),
      pool('running', { count: 1 }),
      pool('open', { owner: { workflowId: 'run-open', runId: 'r1' } }),
      pool('mine', { owner: { workflowId: 'me', runId: 'r2' } }),
      // An earlier run under this run's workflow id: ended, so its pool may be claimed.
      pool('earlier', { owner: { workflowId: 'me', runId: 'r0' } }),
      pool('spot', { spot: true }),
      pool('h100', { vmSize: 'Standard_NC40ads_H100_v5' }),
      pool('busy', { provisioningState: 'Updating' }),
      pool('no-etag', { eTag: undefined }),
      pool('ownerless', { owner: {} }),
    ];
    const chosen = warmPoolCandidates(pools, wanted, (owner) => owner.workflowId === 'run-open');
    expect(chosen.map((p) => p.name)).toEqual(['running', 'idle', 'earlier', 'ownerless']);
  });
});

describe('advice', () => {
  it('adds what to change to an out-of-memory training failure, and only to that', () => {
    const vm = { name: 'Standard_NC24ads_A100_v4', gpuMemoryGiB: 80 };
    expect(trainingFailureMessage('r-train', 'BackoffLimitExceeded: OOMKilled: exit code 137', vm)).toBe(
      "Training Job r-train failed: BackoffLimitExceeded: OOMKilled: exit code 137. The trainer ran out of memory: use method qlora, or a VM size with more GPU memory than Standard_NC24ads_A100_v4's 80 GiB.",
    );
    expect(trainingFailureMessage('r-train', 'DeadlineExceeded', vm)).toBe('Training Job r-train failed: DeadlineExceeded');
    expect(trainingFailureMessage('r-train', undefined, vm)).toBe('Training Job r-train failed: unknown reason');
  });
});

describe('adapter lineage', () => {
  it('records dataset URLs without their query strings, where SAS tokens live', () => {
    expect(datasetLineage({ urls: ['https://acct.blob.core.windows.net/d/train.jsonl?sv=2024&sig=SECRET', 'https://x.example.com/a.csv#frag'] })).toBe(
      'https://acct.blob.core.windows.net/d/train.jsonl,https://x.example.com/a.csv',
    );
    expect(datasetLineage({ image: 'myacr.azurecr.io/data:v1' })).toBe('myacr.azurecr.io/data:v1');
    expect(datasetLineage({ volume: 'my-data' })).toBe('pvc:my-data');
  });

  it("writes KAITO's model annotation and the run's lineage", () => {
    const annotations = adapterAnnotations({
      model: { name: 'phi-4', weightsTag: '0.2.0' },
      method: 'qlora',
      dataset: { urls: ['https://d.example.com/x.jsonl?token=t'] },
      configHash: 'abc',
      workflowId: 'wf-1',
      created: '2026-01-01T00:00:00.000Z',
    });
    expect(annotations).toEqual({
      'sh.kaito.model.name': 'phi-4',
      'org.opencontainers.image.created': '2026-01-01T00:00:00.000Z',
      'org.opencontainers.image.base.name': 'kaito-phi-4:0.2.0',
      'aks-finetune.io/method': 'qlora',
      'aks-finetune.io/dataset': 'https://d.example.com/x.jsonl',
      'aks-finetune.io/config-hash': 'abc',
      'aks-finetune.io/workflow-id': 'wf-1',
    });
  });
});

describe('pod problems', () => {
  const pod = (status: V1Pod['status']): V1Pod => ({ status });

  it("reports an unschedulable pod, an image that cannot be pulled and a crash loop in the pod's own words", () => {
    expect(
      podProblem(pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' }] })),
    ).toBe('Unschedulable: 0/3 nodes are available');
    expect(
      podProblem(
        pod({
          phase: 'Pending',
          initContainerStatuses: [{ name: 'model-weights', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } } }],
        }),
      ),
    ).toBe('ImagePullBackOff (container model-weights): Back-off pulling image "x"');
    expect(
      podProblem(pod({ phase: 'Running', containerStatuses: [{ name: 'trainer', image: 'x', imageID: '', ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff' } } }] })),
    ).toBe('CrashLoopBackOff (container trainer)');
  });

  it('sees no problem in a pod that is starting, running or done', () => {
    expect(podProblem(undefined)).toBeUndefined();
    expect(podProblem(pod({ phase: 'Pending', containerStatuses: [{ name: 't', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] }))).toBeUndefined();
    expect(podProblem(pod({ phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }] }))).toBeUndefined();
    expect(podProblem(pod({ phase: 'Failed', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] }))).toBeUndefined();
  });
});
