// Training-time evaluation on the local stack: a run that asks for a held-out split gets KAITO's
// DatasetConfig.train_test_split and an eval strategy, its (simulated) trainer prints eval_loss,
// and the worker reads it through pods/log (kwok's kubelet API) into the run's status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerActivities } from '../workers/worker.js';
import { fineTune } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { config, emulator, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  // 0.8125 prints exactly as transformers' f"{v:.4g}" text.
  await simulator.settings({ trainingMs: 500, evalLoss: 0.8125 });
});
afterAll(() => simulator.settings({ evalLoss: undefined }));

describe('training-time eval loss', () => {
  it("holds out the requested split and reports the trainer's final eval_loss in the status", { timeout: 120_000 }, async () => {
    const workflowId = fineTuneWorkflowId(`eval-${unique()}`);
    const request = testFineTuneRequest({ evaluation: { testSplit: 0.1 }, tuning: { epochs: 2 } });
    const status = await temporal.withWorker(activities, (taskQueue) => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [request] }));

    expect(status.phase).toBe('succeeded');
    expect(status.evalLoss).toBe(0.8125);
    expect(status.training).toMatchObject({ state: 'succeeded', evalLoss: 0.8125, step: 8 });
    expect(status.steps.find((s) => s.name === 'train')?.detail).toContain('eval loss 0.8125');
  });
});
