// The trainer's progress while the tuning Job runs: each check reads the trainer's new log lines
// (activity checkTrainingJob, from a cursor the run keeps) and folds what they say into
// status.training: the latest numbers, a loss curve of at most maxLossHistory points, the ETA,
// and each trainer start with the step it resumed from. The search attribute TrainingProgress
// moves in 5 % steps (at most 20 upserts a run), the metrics on every check that read something.
// A NaN, infinite or exploding loss fails the run at once (unless the request turned that off),
// so the cleanup releases the GPUs instead of paying for the remaining epochs.
import { ApplicationFailure, log, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import type { TrainingCheck } from '../activities/kubernetes/fine-tune.js';
import { divergedTrainingMessage } from '../domain/advice.js';
import { failureTypes } from '../domain/failure-types.js';
import {
  appendLossHistory,
  type LogCursor,
  type LossPoint,
  lossDivergence,
  type TrainerKind,
  trainingCheckIntervalMs,
  trainingEta,
  trainingPercent,
} from '../domain/training-progress.js';
import { apiCalls } from './activity-options.js';
import { perCluster } from './cluster-activities.js';
import type { PlannedRun } from './fine-tune-run.js';
import { maxCheckIntervalMs, type WatchOptions } from './job-watch.js';
import { recordTrainingProgress } from './metrics.js';
import { TrainingProgress } from './search-attributes.js';

const kube = perCluster<Pick<Activities, 'checkTrainingJob'>>(apiCalls);

/** A trainer process that started: where it resumed, and what resuming saved. */
export interface TrainerStart {
  job: string;
  at: string;
  /** The checkpoint step it resumed from: 0 when it started from scratch. */
  resumedFromStep: number;
  checkpoint?: string;
  /** GPU-minutes the steps it did not train again cost before (at the pace then). */
  gpuMinutesSaved: number;
}

/** What status.training shows: the Job's state (JobProgress) and what the trainer reported. */
export interface TrainingStatus extends JobProgress {
  job: string;
  trainer: TrainerKind;
  step?: number;
  totalSteps?: number;
  /** Whole percent of totalSteps done. */
  percent?: number;
  epoch?: number;
  loss?: number;
  evalLoss?: number;
  learningRate?: number;
  gradNorm?: number;
  samplesPerSecond?: number;
  stepsPerSecond?: number;
  /** When training should end at the current pace. */
  eta?: string;
  /** When the trainer printed the numbers above. */
  reportedAt?: string;
  /** [step, loss] points, at most maxLossHistory: thinned evenly as the run goes on. */
  lossHistory: LossPoint[];
  /** The newest checkpoint the trainer completed. */
  checkpointStep?: number;
  /** Half-written checkpoints the trainer skipped (a node died while saving). */
  skippedCheckpoints: string[];
  /** Each trainer process that started, across pod retries and restarts on fresh capacity. */
  starts: TrainerStart[];
  /** GPU-minutes resuming from checkpoints saved, all starts together. */
  gpuMinutesSaved: number;
  /** Progress reports read so far. */
  reports: number;
  /** Set while the trainer's log cannot be read: the run goes on without progress. */
  logUnreadable?: string;
}

/** What the watch keeps between checks, across the run's tuning Jobs: the log cursor, the first loss (the yardstick of an exploding one), the last upserted percent. */
export interface TrainingWatchState {
  cursor?: LogCursor;
  firstLoss?: number;
  startedMs?: number;
  lastPercentUpserted?: number;
}

/** The training status the run shows before the first check. */
export function newTrainingStatus(trainer: TrainerKind, job: string): TrainingStatus {
  return { job, trainer, state: 'pending', restarts: 0, attempts: 0, lossHistory: [], skippedCheckpoints: [], starts: [], gpuMinutesSaved: 0, reports: 0 };
}

/** Watch options for a tuning Job: checks that read the trainer's progress, at intervals that grow with the run. */
export function trainingWatch(run: PlannedRun, job: string, state: TrainingWatchState, rest: Pick<WatchOptions, 'onProgress' | 'checkWithinMs'>): WatchOptions {
  const { plan } = run;
  const training = run.status.training!;
  training.job = job;
  return {
    what: 'trainer',
    ...rest,
    check: async (fresh) => {
      const check = await kube(run.pool.cluster).checkTrainingJob(plan.namespace, job, { trainer: plan.trainer.kind, cursor: state.cursor, lastStep: training.step, ...(fresh ? { fresh } : {}) });
      applyCheck(run, state, job, check);
      return check.progress;
    },
    nextIntervalMs: () => {
      state.startedMs ??= Date.now();
      return trainingCheckIntervalMs(Date.now() - state.startedMs, plan.pollIntervalSeconds * 1000, maxCheckIntervalMs);
    },
  };
}

function applyCheck(run: PlannedRun, state: TrainingWatchState, job: string, check: TrainingCheck): void {
  const training = run.status.training!;
  // The Job's fields are this check's: a problem or a lost node the last check saw is gone unless this one sees it too.
  for (const field of ['problem', 'nodeLost', 'reason', 'finishedAt'] as const) delete training[field];
  Object.assign(training, check.progress);
  state.cursor = check.cursor;
  if (check.logUnreadable) training.logUnreadable = check.logUnreadable;
  const readout = check.readout;
  if (!readout) return;
  delete training.logUnreadable;
  if (readout.reports === 0) return;
  training.reports += readout.reports;
  const paceBefore = training.stepsPerSecond;
  if (readout.latest) {
    const { at, ...numbers } = readout.latest;
    Object.assign(training, numbers, { reportedAt: at });
    training.percent = trainingPercent(training.step, training.totalSteps);
    training.eta = trainingEta(at, training.step, training.totalSteps, training.stepsPerSecond);
  }
  if (training.evalLoss !== undefined) run.status.evalLoss = training.evalLoss;
  for (const start of readout.starts) {
    const gpuMinutesSaved = paceBefore && start.resumedFromStep > 0 ? round2((start.resumedFromStep / paceBefore / 60) * (run.status.gpu?.gpusPerNode ?? 1)) : 0;
    training.starts.push({ job, ...start, gpuMinutesSaved });
    training.gpuMinutesSaved = round2(training.gpuMinutesSaved + gpuMinutesSaved);
    if (start.resumedFromStep > 0) log.info('trainer resumed from a checkpoint', { job, step: start.resumedFromStep, checkpoint: start.checkpoint, gpuMinutesSaved });
  }
  if (readout.checkpointStep !== undefined) training.checkpointStep = readout.checkpointStep;
  training.skippedCheckpoints = [...training.skippedCheckpoints, ...readout.skippedCheckpoints].slice(-10);
  training.lossHistory = appendLossHistory(training.lossHistory, readout.lossPoints);
  recordTrainingProgress(run.owner.workflowId, training);
  upsertPercent(state, training.percent);

  state.firstLoss ??= readout.firstLoss;
  const divergence = lossDivergence(state.firstLoss, readout.worst);
  if (divergence && run.plan.trainer.stopOnDivergence) {
    throw ApplicationFailure.nonRetryable(divergedTrainingMessage(job, divergence, run.plan.config), failureTypes.trainingDiverged, { step: readout.worst?.step, loss: readout.worst?.loss });
  }
  if (divergence) log.warn('training loss diverged; the request keeps training (tuning.stopOnDivergence false)', { job, divergence });
}

/** The Temporal UI's run list shows TrainingProgress: moved in 5 % steps, so a run upserts it at most 20 times. */
function upsertPercent(state: TrainingWatchState, percent: number | undefined): void {
  if (percent === undefined) return;
  const stepped = Math.floor(percent / 5) * 5;
  if (stepped === state.lastPercentUpserted) return;
  state.lastPercentUpserted = stepped;
  upsertSearchAttributes([{ key: TrainingProgress, value: stepped }]);
}

const round2 = (n: number) => Math.round(n * 100) / 100;
