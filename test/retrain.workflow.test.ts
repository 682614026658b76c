// Scheduled retraining on the local stack: skip when the dataset (an image in the local
// registry) is unchanged, train when it changed; and the schedule commands of the CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { createWorkerActivities } from '../workers/worker.js';
import { retrain } from '../workflows/retrain.js';
import { config, eventually, pushDataset, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { retrainChildWorkflowId, retrainWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const registryHost = new URL(config.registry.endpoint).host;
const run = promisify(execFile);

const request = (dataset: string): FineTuneRequest => ({
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { image: `${registryHost}/${dataset}:v1` },
  output: { image: `${registryHost}/adapters/retrain-${unique()}:v1` },
  gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
  pollIntervalSeconds: 1,
});

describe('retrain', () => {
  it('trains on the first run, skips while the dataset is unchanged, and trains again once it changes', async () => {
    const dataset = `datasets/retrain-${unique()}`;
    const schedule = `sched-${unique()}`;
    await pushDataset(dataset, 'first version');
    const input = { schedule, request: request(dataset) };
    await temporal.withWorker(activities, async (taskQueue) => {
      const once = (n: number) => temporal.env.client.workflow.execute(retrain, { taskQueue, workflowId: retrainWorkflowId(`${schedule}-${n}`), args: [input] });
      const first = await once(1);
      expect(first).toMatchObject({ trained: true, reason: 'first run of this schedule', fineTuneWorkflowId: retrainChildWorkflowId(retrainWorkflowId(`${schedule}-1`)) });
      expect(first.fingerprint).toMatch(/^image sha256:/);
      expect(first.adapter).toMatch(/@sha256:[0-9a-f]{64}$/);

      const second = await once(2);
      expect(second).toMatchObject({ trained: false, reason: expect.stringMatching(new RegExp(`^dataset unchanged since retrain-${schedule}-1-fine-tune`)) });

      await pushDataset(dataset, 'second version');
      expect(await once(3)).toMatchObject({ trained: true, reason: 'the dataset changed', fineTuneWorkflowId: retrainChildWorkflowId(retrainWorkflowId(`${schedule}-3`)) });
    });
  });

  it('is managed with the CLI: create, describe, pause, unpause, trigger, list, delete', async () => {
    const dataset = `datasets/cli-${unique()}`;
    await pushDataset(dataset, 'v1');
    const id = `nightly-${unique()}`;
    const spec = join(mkdtempSync(join(tmpdir(), 'schedule-')), 'spec.yaml');
    writeFileSync(spec, stringify(request(dataset)));
    await temporal.withWorker(activities, async (taskQueue) => {
      const cli = async (...args: string[]) =>
        (await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'schedule', ...args], { env: { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue } })).stdout;
      try {
        expect(await cli('create', id, spec, '--cron', '0 3 * * 1', '--timezone', 'Europe/Paris', '--jitter', '5m')).toContain(`Schedule ${id} created`);
        const described = await cli('describe', id);
        expect(described).toContain(`${id}: active`);
        expect(described).toMatch(/when {6}minute 0 hour 3 day 1-31 month JANUARY-DECEMBER weekday MONDAY \(Europe\/Paris\), jitter 300 s/);
        expect(described).toContain("catch-up window 60 s");
        expect(described).toContain('overlap   SKIP');

        await cli('pause', id);
        expect(await cli('describe', id)).toContain(`${id}: paused`);
        await cli('unpause', id);
        // The listing is read from visibility, which the schedule's new state reaches asynchronously.
        await eventually(async () => (new RegExp(`${id}\\s+active`).test(await cli('list')) ? true : undefined), 'the list to show the schedule active');

        await cli('trigger', id);
        const started = await eventually(async () => {
          const d = await temporal.env.client.schedule.getHandle(id).describe();
          const action = d.info.recentActions[0]?.action;
          return action?.type === 'startWorkflow' ? action.workflow.workflowId : undefined;
        }, 'the triggered run');
        expect(await temporal.env.client.workflow.getHandle(started).result()).toMatchObject({ schedule: id, trained: true });
      } finally {
        await cli('delete', id).catch(() => undefined);
      }
      await expect(temporal.env.client.schedule.getHandle(id).describe()).rejects.toThrow();
    });
  });
});
