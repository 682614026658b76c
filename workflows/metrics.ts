// The product's metrics that workflows emit, through the workflow metric meter: it is
// replay-safe (nothing is emitted while a workflow replays its history, e.g. after a worker
// restart) and exports through the worker's Prometheus endpoint with Temporal's own metrics.
// Every name is listed in docs/operations.md, "Logs and metrics".
import { metricMeter } from '@temporalio/workflow';
import type { GpuTime } from '../domain/gpu-usage.js';

/** A run entered a phase (provisioning, ..., succeeded, failed, cancelled; runs start in their first phase without entering it). */
export function countPhaseEntered(phase: string): void {
  metricMeter.createCounter('aks_finetune_phase_entered', 'runs', 'runs that entered a phase').add(1, { phase });
}

/** What a run's GPUs cost, once it released its pool: billed, used by the trainer, idle. */
export function countGpuTime(pool: { pool: string; vmSize: string; spot: boolean }, time: GpuTime): void {
  const labels = { pool: pool.pool, vm_size: pool.vmSize, spot: String(pool.spot) };
  metricMeter.createCounter('aks_finetune_gpu_billed_seconds', 'GPU-seconds', "GPU-seconds a run held its pool's GPUs (nodes Ready until released)").add(time.billedSeconds, labels);
  metricMeter.createCounter('aks_finetune_gpu_used_seconds', 'GPU-seconds', 'GPU-seconds the trainer ran').add(time.usedSeconds, labels);
  metricMeter.createCounter('aks_finetune_gpu_idle_seconds', 'GPU-seconds', 'GPU-seconds billed while no trainer ran').add(time.idleSeconds, labels);
}

/** One reaper pass's decisions, by action (released, would-release, idle, busy, skipped). */
export function countReaperDecisions(decisions: { action: string }[]): void {
  const counter = metricMeter.createCounter('aks_finetune_reaper_decisions', 'pools', 'idle-GPU reaper decisions about a pool');
  for (const { action } of decisions) counter.add(1, { action });
}

/** A run's training progress, per run (label workflow_id): the step, its loss and the latest eval loss. */
export function recordTrainingProgress(workflowId: string, training: { step?: number; loss?: number; evalLoss?: number }): void {
  const labels = { workflow_id: workflowId };
  const gauge = (name: string, description: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) metricMeter.createGauge(name, 'float', '', description).set(value, labels);
  };
  gauge('aks_finetune_training_step', "the trainer's latest global step", training.step);
  gauge('aks_finetune_training_loss', "the trainer's latest training loss", training.loss);
  gauge('aks_finetune_training_eval_loss', "the trainer's latest loss on the held-out split", training.evalLoss);
}
