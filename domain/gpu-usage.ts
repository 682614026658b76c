// GPU accounting and budgets: what a run's GPUs have cost so far, and how long it may keep them.
// Pure arithmetic on times and prices, so the workflow and the tests share one definition.
import { estimateCost, type PriceTable } from './prices.js';

export interface GpuBudget {
  maxGpuHours?: number;
  maxCost?: number;
}

export interface GpuHold {
  vmSize: string;
  spot: boolean;
  gpusPerNode: number;
  /** When the pool's node became Ready for the run (ms since the epoch). */
  readyAtMs: number;
}

export interface GpuUsage {
  gpuMinutes: number;
  estimatedCost?: number;
}

/** GPU-minutes and cost of holding one node of the pool from readyAt until `untilMs`. */
export function gpuUsage(hold: GpuHold, prices: PriceTable, untilMs: number): GpuUsage {
  const minutes = Math.max(0, untilMs - hold.readyAtMs) / 60_000;
  return {
    gpuMinutes: Math.round(minutes * hold.gpusPerNode * 100) / 100,
    estimatedCost: estimateCost(prices, hold.vmSize, hold.spot, 1, minutes),
  };
}

/** Minutes until the budget is spent at the pool's rate; undefined without a budget. */
export function budgetMinutesLeft(budget: GpuBudget | undefined, hold: GpuHold, prices: PriceTable, usage: GpuUsage): number | undefined {
  if (!budget || hold.gpusPerNode <= 0) return undefined;
  const byHours = budget.maxGpuHours !== undefined ? (budget.maxGpuHours * 60 - usage.gpuMinutes) / hold.gpusPerNode : Infinity;
  const costPerMinute = (estimateCost(prices, hold.vmSize, hold.spot, 1, 60) ?? 0) / 60;
  const byCost = budget.maxCost !== undefined && costPerMinute > 0 ? (budget.maxCost - (usage.estimatedCost ?? 0)) / costPerMinute : Infinity;
  return Math.min(byHours, byCost);
}

/** The failure message once the budget is spent: what was used, and which limit it hit. */
export function budgetExceededMessage(budget: GpuBudget, usage: GpuUsage, currency: string): string {
  const limits = [
    budget.maxGpuHours !== undefined ? `${budget.maxGpuHours} GPU-hours` : undefined,
    budget.maxCost !== undefined ? `${budget.maxCost} ${currency}` : undefined,
  ].filter(Boolean);
  return (
    `Budget exceeded after ${usage.gpuMinutes} GPU-minutes (about ${usage.estimatedCost} ${currency}; limit ${limits.join(', ')}): ` +
    "training was stopped and the run's resources released."
  );
}

/** A run's GPU time once its pool is released, in whole GPU-seconds: billed = used + idle. */
export interface GpuTime {
  billedSeconds: number;
  usedSeconds: number;
  idleSeconds: number;
}

/**
 * Splits the GPU time a run held (from its node Ready until `releasedAtMs`) into the time its
 * trainer ran (the last trainer Job, from its start until it finished, or until the release when it
 * did not) and idle time: provisioning waits, input preparation, the push, the release grace.
 */
export function gpuTime(hold: GpuHold, releasedAtMs: number, trainer?: { startedAt?: string; finishedAt?: string }): GpuTime {
  const billed = Math.max(0, releasedAtMs - hold.readyAtMs);
  const trainerStart = trainer?.startedAt ? Math.max(Date.parse(trainer.startedAt), hold.readyAtMs) : undefined;
  const trainerEnd = Math.min(trainer?.finishedAt ? Date.parse(trainer.finishedAt) : releasedAtMs, releasedAtMs);
  const used = trainerStart === undefined ? 0 : Math.max(0, trainerEnd - trainerStart);
  const seconds = (ms: number) => Math.round((ms / 1000) * hold.gpusPerNode);
  const billedSeconds = seconds(billed);
  const usedSeconds = Math.min(seconds(used), billedSeconds);
  return { billedSeconds, usedSeconds, idleSeconds: billedSeconds - usedSeconds };
}
