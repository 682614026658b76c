// Training progress and resume on the local stack: the gpu-simulator's trainer prints the product
// entrypoint's progress lines step by step and checkpoints on the results volume; the workflow
// reads the new lines on each check (pods/log through kwok) into status.training.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLabelValue } from '../domain/hash.js';
import { checkpointMarker } from '../scripts/stack/gpu-simulator/trainer.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { TrainingProgress } from '../workflows/search-attributes.js';
import { config, core, emulator, eventually, objectsLabelled, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const run = promisify(execFile);
let trainingMs = 2000;

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  trainingMs = (await simulator.settings()).trainingMs;
});
afterAll(() => simulator.settings({ trainingMs, trainers: undefined }));

/** Starts a run with its simulated trainer's script; returns its handle and workflow id. */
async function start(taskQueue: string, request: FineTuneRequest, script: Record<string, unknown> = {}) {
  const workflowId = fineTuneWorkflowId(`progress-${unique()}`);
  const current = (await simulator.settings()).trainers ?? {};
  await simulator.settings({ trainers: { ...current, [runLabelValue(workflowId)]: script } });
  return temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [request] });
}

const statusOf = (handle: { query: (q: typeof fineTuneStatusQuery) => Promise<FineTuneStatus> }) => handle.query(fineTuneStatusQuery);

/** The host folder of the run's results volume (the simulator's disk). */
async function resultsFolder(status: FineTuneStatus, namespace: string): Promise<string> {
  const claim = status.created.find((c) => c.startsWith('PersistentVolumeClaim/'))!.split('/')[1]!;
  const pvc = await eventually(async () => {
    const c = await core.readNamespacedPersistentVolumeClaim({ name: claim, namespace });
    return c.spec?.volumeName ? c : undefined;
  }, `${claim} to be bound`);
  return (await core.readPersistentVolume({ name: pvc.spec!.volumeName! })).spec!.hostPath!.path;
}

describe('training progress and resume', () => {
  it('resumes from the newest complete checkpoint after a spot eviction at about 60 %, skipping a half-written one', { timeout: 180_000 }, async () => {
    await simulator.settings({ trainingMs: 8000 });
    const request = testFineTuneRequest({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', spot: true }, tuning: { maxSteps: 20, checkpointEveryMinutes: 2 } });
    const namespace = request.namespace ?? 'aks-finetune';
    await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await start(taskQueue, request);
      const before = await eventually(async () => {
        const s = await statusOf(handle);
        return (s.training?.step ?? 0) >= 12 ? s : undefined;
      }, 'training to pass 60 %');
      // A node that died while saving leaves a checkpoint without its marker, newer than every complete one.
      const results = await resultsFolder(before, namespace);
      mkdirSync(join(results, 'checkpoint-19'), { recursive: true });
      writeFileSync(join(results, 'checkpoint-19', 'adapter_model.safetensors'), 'torn');
      const eviction = await emulator.evictSpotNodes(before.gpu!.pool, 1);
      expect(eviction.evicted).toHaveLength(1);
      // The status lags the trainer by up to a check, so the trainer's own word is its complete checkpoints.
      const stepAtEviction = (await statusOf(handle)).training!.step!;
      const newestCompleteAtEviction = Math.max(
        0,
        ...readdirSync(results)
          .filter((n) => /^checkpoint-\d+$/.test(n) && existsSync(join(results, n, checkpointMarker)))
          .map((n) => Number(n.slice('checkpoint-'.length))),
      );

      const status = await handle.result();
      const t = status.training!;
      expect(status.capacityRecoveries).toHaveLength(1);
      expect(t.starts).toHaveLength(2);
      expect(t.starts[0]!.resumedFromStep).toBe(0);
      const resumedFrom = t.starts[1]!.resumedFromStep;
      // The newest complete checkpoint: every 2 steps, at most 2 steps behind the eviction.
      expect(resumedFrom % 2).toBe(0);
      expect(resumedFrom).toBeGreaterThanOrEqual(Math.min(stepAtEviction, 19) - 3);
      // Never behind a checkpoint that was complete; at most the one being saved as the node went.
      expect(resumedFrom).toBeGreaterThanOrEqual(newestCompleteAtEviction);
      expect(resumedFrom).toBeLessThanOrEqual(newestCompleteAtEviction + 2);
      expect(t.starts[1]!.gpuMinutesSaved).toBeGreaterThan(0);
      expect(t.skippedCheckpoints).toEqual(['checkpoint-19']);
      // Trained: up to the eviction, then from the checkpoint to the end, not 20 + 12.
      expect(t).toMatchObject({ step: 20, totalSteps: 20, percent: 100, state: 'succeeded' });
      const trainedSteps = stepAtEviction + (20 - resumedFrom);
      expect(trainedSteps).toBeLessThanOrEqual(20 + 3);
      // The loss curve has each step once, in order.
      const steps = t.lossHistory.map(([s]) => s);
      expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
      // Nothing left behind: the pool released, the run's objects gone, at most the kept checkpoints on the (deleted) volume.
      expect(status.released.some((r) => r.startsWith('AgentPool/'))).toBe(true);
      expect(await objectsLabelled(namespace, `aks-finetune.io/run=${runLabelValue(handle.workflowId)}`)).toEqual([]);
      if (existsSync(results)) expect(readdirSync(results).filter((n) => n.startsWith('checkpoint-')).length).toBeLessThanOrEqual(2);
    });
  });

  it('shows progress in the status, the CLI and the search attribute within a check of the report', { timeout: 120_000 }, async () => {
    await simulator.settings({ trainingMs: 10_000 });
    await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await start(taskQueue, testFineTuneRequest({ tuning: { maxSteps: 40 } }));
      const midway = await eventually(async () => {
        const s = await statusOf(handle);
        return (s.training?.percent ?? 0) >= 25 && s.training!.percent! < 80 ? s : undefined;
      }, 'training to be a quarter done');
      const t = midway.training!;
      expect(t).toMatchObject({ trainer: 'aks-finetune', totalSteps: 40, state: 'running' });
      expect(t.loss).toBeGreaterThan(0);
      expect(t.learningRate).toBeGreaterThan(0);
      expect(t.samplesPerSecond).toBeGreaterThan(0);
      expect(Date.parse(t.eta!)).toBeGreaterThan(Date.parse(t.reportedAt!));
      // Checks come every second this early in the run: the status is at most a check (and the query's trip) behind the trainer.
      expect(Date.now() - Date.parse(t.reportedAt!)).toBeLessThan(4000);
      const described = await eventually(async () => {
        const value = (await handle.describe()).typedSearchAttributes.get(TrainingProgress);
        return value !== undefined && value > 0 ? value : undefined;
      }, 'the TrainingProgress search attribute to move');
      expect(described % 5).toBe(0);
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'status', handle.workflowId]);
      expect(stdout).toMatch(/train \[#*\.*\] \d+\/40 steps \(\d+%\), ETA \d+s, loss [0-9.]+/);

      const done = await handle.result();
      expect(done.training).toMatchObject({ step: 40, percent: 100 });
      expect((await handle.describe()).typedSearchAttributes.get(TrainingProgress)).toBe(100);
      const { stdout: chart } = await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'status', handle.workflowId]);
      expect(chart).toMatch(/loss\n.*│.*•/);
    });
  });

  it('fails a run whose loss turns NaN within a check of the report, and releases its GPUs', { timeout: 120_000 }, async () => {
    await simulator.settings({ trainingMs: 20_000 });
    await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await start(taskQueue, testFineTuneRequest({ tuning: { maxSteps: 40 } }), { nanFromStep: 6 });
      const err = await handle.result().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const status = await statusOf(handle);
      expect(status.error).toMatch(/the training loss is NaN at step \d+.*lower tuning\.learningRate/);
      // Steps take half a second and checks come every second: stopped long before the 40th step.
      expect(status.training!.step).toBeLessThan(12);
      expect(status.released.some((r) => r.startsWith('AgentPool/'))).toBe(true);
    });
  });

  it('goes on through a trainer that prints nothing, and through garbage, a 2 MiB line among it', { timeout: 120_000 }, async () => {
    await simulator.settings({ trainingMs: 3000 });
    await temporal.withWorker(activities, async (taskQueue) => {
      const silent = await start(taskQueue, testFineTuneRequest({ tuning: { maxSteps: 10 } }), { output: 'silent' });
      const garbled = await start(taskQueue, testFineTuneRequest({ tuning: { maxSteps: 10 } }), { output: 'garbage' });
      const [quiet, noisy] = await Promise.all([silent.result(), garbled.result()]);
      expect(quiet.phase).toBe('succeeded');
      expect(quiet.training).toMatchObject({ reports: 0, state: 'succeeded' });
      expect(quiet.training!.step).toBeUndefined();
      expect(quiet.training!.logUnreadable).toBeUndefined();
      expect(noisy.phase).toBe('succeeded');
      // Progress came through the garbage (an unreadable 2 MiB line drops the lines of its own second).
      expect(noisy.training).toMatchObject({ totalSteps: 10 });
      expect(noisy.training!.step).toBeGreaterThanOrEqual(5);
    });
  });

  it("reads KAITO's own trainer output when the request picks it", { timeout: 120_000 }, async () => {
    await simulator.settings({ trainingMs: 2000 });
    const status = await temporal.withWorker(activities, (taskQueue) =>
      temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`kaito-${unique()}`), args: [testFineTuneRequest({ tuning: { trainer: 'kaito', epochs: 2 } })] }),
    );
    expect(status.training).toMatchObject({ trainer: 'kaito', step: 8, totalSteps: 8, starts: [] });
    expect(status.training!.lossHistory.length).toBeGreaterThan(1);
  });

  it('keeps the history of a run with thousands of progress reports bounded', { timeout: 180_000 }, async () => {
    await simulator.settings({ trainingMs: 20_000 });
    await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await start(taskQueue, testFineTuneRequest({ tuning: { epochs: 1 } }), { steps: 3000 });
      const status = await handle.result();
      expect(status.training!.reports).toBeGreaterThanOrEqual(3000);
      expect(status.training!.lossHistory.length).toBeLessThanOrEqual(60);
      const history = await handle.fetchHistory();
      // About a dozen events a check, and checks grow with the log of the run's length: never an event per report.
      expect(history.events!.length).toBeLessThan(600);
    });
  });
});
