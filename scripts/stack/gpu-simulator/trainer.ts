// SIMULATION: the trainer container, step by step, without a GPU or a model. It follows the two
// trainers the tuning Job can run:
// - the product's entrypoint (trainer/aks_finetune_trainer.py, the pod's command names it): prints
//   its progress lines (domain/training-progress.ts, formatProgressLine), saves a checkpoint on the
//   results volume when AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES have passed (in simulated minutes,
//   settings.minutesPerStep a step), keeps AKS_FINETUNE_CHECKPOINTS_KEPT of them, and on start
//   resumes from the newest complete one (its marker written last), deleting half-written ones;
// - KAITO's fine_tuning.py: what transformers' ProgressCallback prints (tqdm bars and logs dicts,
//   floats as f"{v:.4g}" text in transformers 5), no checkpoints, always from step 0.
// Steps take trainingMs / total steps each, so a resumed attempt takes only what is left. The
// numbers are made up, deterministic per Job; per-run scripts (settings.trainers) make a trainer
// diverge (NaN loss), print nothing, or print garbage around its progress.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { trainerEntrypointKey } from '../../../activities/kubernetes/tuning-job.js';
import { fnv1a } from '../../../domain/hash.js';
import { formatProgressLine, type TrainerKind, type TrainerReport } from '../../../domain/training-progress.js';
import type { ContainerLog } from './trainer-log.js';

export interface TrainingConfigSections {
  TrainingArguments?: { num_train_epochs?: number; eval_strategy?: string; max_steps?: number; per_device_train_batch_size?: number };
  DatasetConfig?: { train_test_split?: number };
}

/** How one run's simulated trainers behave (settings.trainers, by the run's label aks-finetune.io/run). */
export interface SimulatedTrainerScript {
  /** Steps to train when the config sets no max_steps (default: 4 an epoch). */
  steps?: number;
  /** The loss is NaN from this step on. */
  nanFromStep?: number;
  /** What the trainer prints: its progress (default), nothing at all, or garbage around its progress (binary, partial JSON, a 2 MiB line). */
  output?: 'progress' | 'silent' | 'garbage';
}

/** The checkpoint marker the product's entrypoint writes last into a checkpoint folder: without it, the folder is half-written. */
export const checkpointMarker = 'aks-finetune-checkpoint.json';

/** The simulated final eval_loss of a Job: `override`, else a value in [0.5, 1.5) from its name. */
export const simulatedEvalLoss = (jobName: string, override?: number) => override ?? 0.5 + (fnv1a(jobName) % 1000) / 1000;

export const trainerKindOf = (pod: V1Pod): TrainerKind => (pod.spec?.containers[0]?.command?.join(' ').includes(trainerEntrypointKey) ? 'aks-finetune' : 'kaito');

const env = (pod: V1Pod, name: string) => pod.spec?.containers[0]?.env?.find((e) => e.name === name)?.value;

/** The newest complete checkpoint's step under `results`, after deleting half-written ones (reported through `skipped`). */
export function newestCompleteCheckpoint(results: string, skipped: (name: string) => void): number | undefined {
  const steps: number[] = [];
  for (const name of existsSync(results) ? readdirSync(results) : []) {
    const step = /^checkpoint-(\d+)$/.exec(name)?.[1];
    if (step === undefined) continue;
    try {
      if ((JSON.parse(readFileSync(join(results, name, checkpointMarker), 'utf8')) as { step?: number }).step === Number(step)) {
        steps.push(Number(step));
        continue;
      }
    } catch {
      // no marker, or a torn one: half-written
    }
    rmSync(join(results, name), { recursive: true, force: true });
    skipped(name);
  }
  return steps.length > 0 ? Math.max(...steps) : undefined;
}

/** A checkpoint as the entrypoint leaves it: its state, then the marker, written last and atomically. */
function saveCheckpoint(results: string, step: number, kept: number): void {
  const dir = join(results, `checkpoint-${step}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ global_step: step, simulated: true }));
  writeFileSync(join(dir, `${checkpointMarker}.tmp`), JSON.stringify({ step }));
  renameSync(join(dir, `${checkpointMarker}.tmp`), join(dir, checkpointMarker));
  const all = readdirSync(results)
    .map((n) => Number(/^checkpoint-(\d+)$/.exec(n)?.[1] ?? NaN))
    .filter((n) => !Number.isNaN(n))
    .sort((a, b) => b - a);
  for (const old of all.slice(kept)) rmSync(join(results, `checkpoint-${old}`), { recursive: true, force: true });
}

const g4 = (v: number) => String(Number(v.toPrecision(4)));
const kaitoDict = (entries: Record<string, number>) => `{${Object.entries(entries).map(([k, v]) => `'${k}': '${Number.isFinite(v) ? g4(v) : String(v).toLowerCase().replace('infinity', 'inf')}'`).join(', ')}}`;
const garbage = ['\u0000\u0001\u00ff binary \u001b[31m', `{"event":"log","step":`, 'aks-finetune-progress {not json', "{'loss': }"];
/** Longer than a check reads (1 MiB): printed once, first. */
const hugeLine = 'x'.repeat(2 * 1024 * 1024);

export interface TrainingRun {
  pod: V1Pod;
  jobName: string;
  config: TrainingConfigSections;
  /** The trainer pod's results volume on this machine. */
  results: string;
  trainingMs: number;
  minutesPerStep: number;
  finalEvalLoss: number;
  script: SimulatedTrainerScript;
  print: ContainerLog;
  /** False once the pod's node is gone or the pod is no longer running: the process died with it. */
  alive: () => Promise<boolean>;
}

/** Trains step by step; returns false when the trainer died (its node went away) before the end. */
export async function simulateTrainer(run: TrainingRun): Promise<boolean> {
  const kind = trainerKindOf(run.pod);
  const args = run.config.TrainingArguments ?? {};
  const epochs = Math.max(1, Math.ceil(args.num_train_epochs ?? 3)); // transformers' default: 3
  const total = args.max_steps ?? run.script.steps ?? epochs * 4;
  const stepsPerEpoch = Math.max(1, Math.ceil(total / epochs));
  const evaluates = (run.config.DatasetConfig?.train_test_split ?? 1) < 1 && (args.eval_strategy ?? 'no') !== 'no';
  const stepMs = run.trainingMs / total;
  const checkpointEvery = Number(env(run.pod, 'AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES') ?? NaN);
  const kept = Number(env(run.pod, 'AKS_FINETUNE_CHECKPOINTS_KEPT') ?? 2);
  const output = run.script.output ?? 'progress';
  if (output === 'garbage') run.print([hugeLine]);
  const print = (lines: string[]) => {
    if (output === 'silent') return;
    run.print(output === 'garbage' ? lines.flatMap((l) => [garbage[fnv1a(l) % garbage.length]!, l]) : lines);
  };
  const report = (r: TrainerReport) => print([formatProgressLine(r)]);
  const loss = (step: number) => (run.script.nanFromStep !== undefined && step >= run.script.nanFromStep ? Number.NaN : run.finalEvalLoss + 0.3 + 1.2 * Math.exp((-3 * step) / total));

  let from = 0;
  if (kind === 'aks-finetune') {
    from = newestCompleteCheckpoint(run.results, (name) => report({ event: 'checkpoint-skipped', checkpoint: name, reason: 'incomplete' })) ?? 0;
    report({ event: 'start', step: from, totalSteps: total, resumedFromStep: from > 0 ? from : null, checkpoint: from > 0 ? `checkpoint-${from}` : null });
  }
  const stepsPerSecond = 1000 / Math.max(stepMs, 1);
  const batch = args.per_device_train_batch_size ?? 1;
  let minutesSinceCheckpoint = 0;
  let lastLook = Date.now();
  for (let step = from + 1; step <= total; step++) {
    await new Promise((r) => setTimeout(r, stepMs));
    if (Date.now() - lastLook >= 250 || step === total) {
      lastLook = Date.now();
      if (!(await run.alive())) return false;
    }
    const epoch = Number((step / stepsPerEpoch).toFixed(2));
    const numbers = { loss: loss(step), learningRate: 5e-5 * (1 - step / (total + 1)), gradNorm: 0.1, epoch };
    if (kind === 'aks-finetune') report({ event: 'log', step, totalSteps: total, ...numbers, samplesPerSecond: stepsPerSecond * batch, stepsPerSecond });
    else print([`${Math.round((100 * step) / total)}%| | ${step}/${total} [00:01<00:02,  ${g4(stepsPerSecond)}it/s]`, kaitoDict({ loss: numbers.loss, grad_norm: 0.1, learning_rate: numbers.learningRate, epoch })]);
    if (evaluates && (step % stepsPerEpoch === 0 || step === total)) {
      const evalLoss = run.finalEvalLoss + 0.1 * (epochs - Math.ceil(step / stepsPerEpoch));
      if (kind === 'aks-finetune') report({ event: 'eval', step, totalSteps: total, epoch, evalLoss });
      else print([kaitoDict({ eval_loss: evalLoss, eval_runtime: 0.78, eval_samples_per_second: 20.56, eval_steps_per_second: 2.569, epoch })]);
    }
    minutesSinceCheckpoint += run.minutesPerStep;
    if (kind === 'aks-finetune' && minutesSinceCheckpoint >= checkpointEvery && step < total) {
      saveCheckpoint(run.results, step, kept);
      minutesSinceCheckpoint = 0;
      report({ event: 'checkpoint', step, checkpoint: `checkpoint-${step}` });
    }
  }
  const trainLoss = run.finalEvalLoss + 0.3;
  if (kind === 'aks-finetune') report({ event: 'done', step: total, totalSteps: total, trainLoss });
  else print([kaitoDict({ train_runtime: run.trainingMs / 1000, train_samples_per_second: 32.87, train_steps_per_second: stepsPerSecond, train_loss: trainLoss, epoch: epochs })]);
  print(['Fine-Tuning completed']);
  return true;
}
