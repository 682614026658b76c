// Where a run looks for GPUs: the attempt order (listed, fitting sizes by price, zones, spot's
// fallback), quota shortfalls, the capacity bound's backoff, and the effective batch on a size
// with another GPU count.
import { describe, expect, it } from 'vitest';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import {
  capacityRoundDelayMs,
  gpuAttemptOrder,
  keepEffectiveBatch,
  noCapacityMessage,
  quotaShortfall,
  quotasNeeded,
} from '../domain/gpu-candidates.js';
import { defaultPriceTable } from '../domain/prices.js';
import { trainingConfig } from '../domain/training-config.js';
import { findVmSize } from '../domain/vm-sizes.js';

const base = {
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { urls: ['https://datasets.example.com/x.jsonl'] },
  output: { image: 'myacr.azurecr.io/adapters/x:v1' },
};
const planOf = (gpu: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
  const v = validateFineTuneRequest({ ...base, ...extra, gpu }, 'wf');
  if (!v.ok) throw new Error(v.problems.join('; '));
  return v.plan;
};
const problemsOf = (gpu: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
  const v = validateFineTuneRequest({ ...base, ...extra, gpu }, 'wf');
  return v.ok ? [] : v.problems;
};
const short = (a: { vmSize: string; spot: boolean; zone?: string; afterMinutes: number }) =>
  `${a.vmSize}${a.spot ? '/spot' : ''}${a.zone ? `@${a.zone}` : ''}${a.afterMinutes ? `+${a.afterMinutes}m` : ''}`;

describe('the attempt order', () => {
  it('is the request size alone by default, as before fallback', () => {
    expect(planOf({ vmSize: 'Standard_NC24ads_A100_v4' }).gpuAttempts.map(short)).toEqual(['Standard_NC24ads_A100_v4']);
  });

  it('tries each zone of the request size, then the listed candidates in order, each once', () => {
    const plan = planOf({
      vmSize: 'Standard_NC24ads_A100_v4',
      zones: ['1', '2'],
      candidates: [{ vmSize: 'Standard_NC40ads_H100_v5', zones: ['3'] }, { vmSize: 'standard_nc24ads_a100_v4', zones: ['2'] }, { vmSize: 'Standard_NV36ads_A10_v5' }],
    });
    expect(plan.gpuAttempts.map(short)).toEqual([
      'Standard_NC24ads_A100_v4@1',
      'Standard_NC24ads_A100_v4@2',
      'Standard_NC40ads_H100_v5@3',
      'Standard_NV36ads_A10_v5',
    ]);
  });

  it('fitting-sizes appends only sizes the model fits on (bf16, memory per GPU), cheapest first', () => {
    // phi-3-medium with lora needs more than an A10's 24 GiB and fits on 80 GiB and up.
    const plan = planOf({ vmSize: 'Standard_NC24ads_A100_v4', fallback: 'fitting-sizes' }, { model: 'phi-3-medium-4k-instruct', method: 'lora' });
    const sizes = plan.gpuAttempts.map((a) => a.vmSize);
    expect(sizes[0]).toBe('Standard_NC24ads_A100_v4');
    for (const name of sizes) {
      const size = findVmSize(name)!;
      expect(size.gpu!.bf16, name).toBe(true);
      expect(size.gpu!.memoryGiB, name).toBeGreaterThanOrEqual(plan.memoryNeededGiB);
    }
    expect(sizes).not.toContain('Standard_NV36ads_A10_v5'); // 24 GiB
    expect(sizes).not.toContain('Standard_NC6s_v3'); // V100: no bfloat16
    const prices = sizes.slice(1).map((n) => defaultPriceTable.perHour[n]!);
    expect(prices).toEqual([...prices].sort((a, b) => a - b));
    expect(plan.gpuAttempts.slice(1).every((a) => a.source === 'fitting-sizes')).toBe(true);
  });

  it("with spot and spotFallbackAfterMinutes, each Spot attempt's on-demand twin comes last, due after that long", () => {
    const plan = planOf({ vmSize: 'Standard_NC24ads_A100_v4', spot: true, zones: ['1', '2'], spotFallbackAfterMinutes: 10 });
    expect(plan.gpuAttempts.map(short)).toEqual([
      'Standard_NC24ads_A100_v4/spot@1',
      'Standard_NC24ads_A100_v4/spot@2',
      'Standard_NC24ads_A100_v4@1+10m',
      'Standard_NC24ads_A100_v4@2+10m',
    ]);
  });

  it('a listed candidate takes the request spot setting unless it sets its own', () => {
    const attempts = gpuAttemptOrder({
      primary: { vmSize: 'Standard_NC24ads_A100_v4', spot: true },
      candidates: [{ vmSize: 'Standard_NC40ads_H100_v5' }, { vmSize: 'Standard_NC40ads_H100_v5', spot: false }],
      policy: 'listed',
      fits: () => true,
      prices: defaultPriceTable,
    });
    expect(attempts.map(short)).toEqual(['Standard_NC24ads_A100_v4/spot', 'Standard_NC40ads_H100_v5/spot', 'Standard_NC40ads_H100_v5']);
  });

  it('refuses, before anything is created, candidates that cannot train the model, and options that do not go together', () => {
    expect(problemsOf({ vmSize: 'Standard_NC24ads_A100_v4', candidates: [{ vmSize: 'Standard_NC4as_T4_v3' }, { vmSize: 'Standard_Nope' }, { vmSize: 'Standard_NC6s_v3' }] })).toEqual([
      'gpu.candidates[0].vmSize Standard_NC4as_T4_v3 has T4 GPUs, which do not compute in bfloat16 as the trainer does; choose an A10, A100 or H100 size',
      'gpu.candidates[1].vmSize "Standard_Nope" is not a known Azure VM size',
      // KAITO's PVC example still names it; Azure's notice: learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement.
      'gpu.candidates[2].vmSize Standard_NC6s_v3: Azure retired it on 2025-09-30 (learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement); choose Standard_NV36ads_A10_v5',
    ]);
    expect(problemsOf({ vmSize: 'Standard_NC24ads_A100_v4', spotFallbackAfterMinutes: 5 })).toEqual([
      'gpu.spotFallbackAfterMinutes needs spot: true (it is when Spot gives way to on-demand)',
    ]);
    expect(problemsOf({ vmSize: 'Standard_NC24ads_A100_v4', nodePool: 'gpu1', zones: ['1'] })[0]).toMatch(/^gpu.nodePool runs on an existing pool/);
    expect(problemsOf({ vmSize: 'Standard_NC24ads_A100_v4', zones: ['4'] })[0]).toBe('gpu.zones[0] must be one of "1", "2", "3", not "4"');
  });
});

describe('quota', () => {
  const a100 = findVmSize('Standard_NC24ads_A100_v4')!;

  it('an on-demand pool draws on its family and the regional total, a Spot pool on the regional Spot quota only', () => {
    expect(quotasNeeded(a100, false)).toEqual(['standardNCADSA100v4Family', 'cores']);
    expect(quotasNeeded(a100, true)).toEqual(['lowPriorityCores']);
  });

  it('names the quota, the numbers and what to ask for when one has no room; nothing when each has, or is not reported', () => {
    const usages = [
      { name: 'standardNCADSA100v4Family', current: 24, limit: 24 },
      { name: 'cores', current: 30, limit: 100 },
    ];
    expect(quotaShortfall(a100, false, 1, usages)).toEqual({
      quota: 'standardNCADSA100v4Family',
      message: "standardNCADSA100v4Family: 24 of 24 vCPUs in use, Standard_NC24ads_A100_v4 needs 24; ask for at least 48 (Azure portal, Quotas, or 'az quota update')",
    });
    expect(quotaShortfall(a100, true, 1, usages)).toBeUndefined(); // lowPriorityCores not reported: Azure's answer decides
    expect(quotaShortfall(a100, false, 1, [{ name: 'standardNCADSA100v4Family', current: 0, limit: 24 }])).toBeUndefined();
  });
});

describe('the capacity bound', () => {
  it('waits 15 s, doubling, at most 5 minutes between rounds', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(capacityRoundDelayMs)).toEqual([15_000, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
  });

  it("the failure lists the attempts, and says to ask for quota when quota was all that stood in the way", () => {
    const quota = [{ vmSize: 'Standard_NC24ads_A100_v4', spot: false, at: '', outcome: 'skipped' as const, refusal: 'quota' as const, code: 'standardNCADSA100v4Family', seconds: 0 }];
    expect(noCapacityMessage(quota, 0, 30)).toMatch(/^No GPU candidate can be used: 1 attempt\(s\): Standard_NC24ads_A100_v4: skipped standardNCADSA100v4Family\. Every candidate lacks quota/);
    const zonal = [{ vmSize: 'Standard_NC24ads_A100_v4', spot: true, zone: '1', at: '', outcome: 'refused' as const, refusal: 'capacity' as const, code: 'ZonalAllocationFailed', seconds: 4 }];
    expect(noCapacityMessage(zonal, 31, 30)).toMatch(/^No GPU capacity within 30 minutes \(looked for 31\): 1 attempt\(s\): Standard_NC24ads_A100_v4 \(Spot\) zone 1: refused ZonalAllocationFailed after 4s\. Add candidates/);
  });
});

describe('the effective batch on another GPU count', () => {
  const args = (c: ReturnType<typeof trainingConfig>) => c.training_config.TrainingArguments!;

  it('keeps per-device batch × accumulation × GPUs, changing accumulation first', () => {
    const config = trainingConfig('qlora', { batchSize: 2, gradientAccumulationSteps: 4 });
    const to2 = keepEffectiveBatch(config, 1, 2)!;
    expect(args(to2.config)).toMatchObject({ per_device_train_batch_size: 2, gradient_accumulation_steps: 2 });
    expect(to2.change).toBe('1 → 2 GPU(s): per-device batch 2 → 2, gradient accumulation 4 → 2, effective batch 8 kept');
    const back = keepEffectiveBatch(to2.config, 2, 1)!;
    expect(args(back.config)).toMatchObject({ per_device_train_batch_size: 2, gradient_accumulation_steps: 4 });
    expect(keepEffectiveBatch(config, 1, 1)).toBeUndefined();
  });

  it('shrinks the per-device batch when accumulation alone cannot, and says when the batch cannot be kept', () => {
    const four = keepEffectiveBatch(trainingConfig('qlora', { batchSize: 4 }), 1, 2)!;
    expect(four.change).toBe('1 → 2 GPU(s): per-device batch 4 → 2, gradient accumulation 1 → 1, effective batch 4 kept');
    const toTwo = keepEffectiveBatch(trainingConfig('qlora', { batchSize: 2 }), 1, 4)!;
    expect(toTwo.change).toBe('1 → 4 GPU(s): per-device batch 2 → 2, gradient accumulation 1 → 1, effective batch 2 → 8 (the nearest 4 GPU(s) allow)');
    const six = keepEffectiveBatch(trainingConfig('qlora', { batchSize: 3, gradientAccumulationSteps: 2 }), 1, 2)!;
    expect(args(six.config)).toMatchObject({ per_device_train_batch_size: 3, gradient_accumulation_steps: 1 });
  });
});
