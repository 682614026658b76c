// Where a run looks for GPUs when Azure is short of them: the ordered attempts (VM size, spot or
// on-demand, zone) a request names or a policy derives, the quota each needs, how long the run
// may look, and how training keeps its effective batch on a size with another GPU count.
// Pure: the workflow orchestrates, this decides. Safe to import from workflow code.
import { failureTypes } from './failure-types.js';
import { estimateCost, type PriceTable } from './prices.js';
import type { TrainingConfig } from './training-config.js';
import { findVmSize, type VmSize, vmSizeNames } from './vm-sizes.js';

/** A candidate as a request lists it (gpu.candidates) or gpu.vmSize/spot/zones make it. */
export interface GpuCandidate {
  vmSize: string;
  spot?: boolean;
  /** Availability zones to try, one after the other ("1", "2", "3"); none: the region, as Azure places it. */
  zones?: string[];
  /** A cluster target of the worker (domain/cluster-targets.ts); none: the worker's home cluster. */
  cluster?: string;
}

export const gpuFallbackPolicies = ['listed', 'fitting-sizes'] as const;
export type GpuFallbackPolicy = (typeof gpuFallbackPolicies)[number];

/** One place to try: a pool of this size, priority and zone. */
export interface GpuAttempt {
  vmSize: string;
  spot: boolean;
  zone?: string;
  /** The cluster target the pool would be created in; undefined: the worker's home cluster. */
  cluster?: string;
  /** Tried only once the run has looked for capacity this long (spot's fallback to on-demand). */
  afterMinutes: number;
  /** Why it is in the list: the request's size, a listed candidate, the fitting-sizes policy, or spot's fallback. */
  source: 'request' | 'listed' | 'fitting-sizes' | 'spot-fallback';
}

/** How a pool request failed, for moving on: these say "not here, not now", not "never". */
export type CapacityRefusal = 'quota' | 'capacity' | 'size-not-offered';

/** The failure types of a pool request that move the run to its next attempt, and what each means. */
export const capacityRefusals: Record<string, CapacityRefusal> = {
  [failureTypes.gpuQuotaExceeded]: 'quota',
  [failureTypes.gpuCapacityUnavailable]: 'capacity',
  [failureTypes.gpuSizeNotOffered]: 'size-not-offered',
};

/** One try, as the run's status lists it. */
export interface GpuAttemptRecord {
  vmSize: string;
  spot: boolean;
  zone?: string;
  cluster?: string;
  at: string;
  /** created; skipped before any request (quota); or refused by Azure. */
  outcome: 'created' | 'skipped' | 'refused';
  refusal?: CapacityRefusal;
  /** Azure's code (QuotaExceeded, ZonalAllocationFailed...) or the quota family. */
  code?: string;
  message?: string;
  seconds: number;
}

/** Attempts kept in the status: a run that waits long goes around the list many times. */
export const maxAttemptRecords = 40;

/** Per hour, with the spot factor: the order of the fitting-sizes policy. */
const hourlyPrice = (prices: PriceTable, vmSize: string, spot: boolean) => estimateCost(prices, vmSize, spot, 1, 60) ?? Number.POSITIVE_INFINITY;

/**
 * The attempts in order: the request's size (each of its zones), the listed candidates, then with
 * fitting-sizes every other known size the model fits on, cheapest first. With spot and
 * spotFallbackAfterMinutes, each spot attempt gets an on-demand twin at the end, tried only once
 * the run has looked that long. A (size, priority, zone, cluster) appears once; fitting-sizes adds
 * sizes in the home cluster only (another cluster's sizes are the request's to name).
 */
export function gpuAttemptOrder(input: {
  primary: GpuCandidate;
  candidates?: GpuCandidate[];
  policy: GpuFallbackPolicy;
  spotFallbackAfterMinutes?: number;
  fits: (size: VmSize) => boolean;
  prices: PriceTable;
}): GpuAttempt[] {
  const attempts: GpuAttempt[] = [];
  const add = (c: GpuCandidate, source: GpuAttempt['source'], afterMinutes = 0) => {
    const vmSize = findVmSize(c.vmSize)?.name ?? c.vmSize;
    for (const zone of c.zones?.length ? c.zones : [undefined]) {
      const spot = c.spot ?? false;
      if (attempts.some((a) => a.vmSize === vmSize && a.spot === spot && a.zone === zone && a.cluster === c.cluster)) continue;
      attempts.push({ vmSize, spot, ...(zone ? { zone } : {}), ...(c.cluster ? { cluster: c.cluster } : {}), afterMinutes, source });
    }
  };
  add(input.primary, 'request');
  for (const c of input.candidates ?? []) add({ spot: input.primary.spot, ...c }, 'listed');
  if (input.policy === 'fitting-sizes') {
    const spot = input.primary.spot ?? false;
    const fitting = vmSizeNames
      .map((n) => findVmSize(n)!)
      .filter((s) => s.gpu && input.fits(s))
      .sort((a, b) => hourlyPrice(input.prices, a.name, spot) - hourlyPrice(input.prices, b.name, spot) || a.name.localeCompare(b.name));
    for (const size of fitting) add({ vmSize: size.name, spot, zones: input.primary.zones }, 'fitting-sizes');
  }
  if (input.spotFallbackAfterMinutes !== undefined) {
    for (const a of attempts.filter((x) => x.spot)) add({ vmSize: a.vmSize, spot: false, zones: a.zone ? [a.zone] : undefined, cluster: a.cluster }, 'spot-fallback', input.spotFallbackAfterMinutes);
  }
  return attempts;
}

/** A quota as the Compute usages API reports it (name.value, currentValue, limit), in vCPUs. */
export interface QuotaUsage {
  name: string;
  current: number;
  limit: number;
}

/** The usages API names of the regional totals (https://learn.microsoft.com/azure/quotas/regional-quota-requests). */
export const regionalQuota = { regular: 'cores', spot: 'lowPriorityCores' } as const;

/** The quotas a pool of this size draws on: the family and the regional total; Spot only the regional Spot quota. */
export function quotasNeeded(size: VmSize, spot: boolean): string[] {
  return spot ? [regionalQuota.spot] : [size.family, regionalQuota.regular];
}

/** Every distinct quota the attempts draw on: what one read of the usages API asks for. */
export function quotasOfAttempts(attempts: GpuAttempt[]): string[] {
  return [...new Set(attempts.flatMap((a) => quotasNeeded(findVmSize(a.vmSize)!, a.spot)))];
}

/** The usages API's row of a quota (its names are matched without regard to case). */
const usageOf = (usages: QuotaUsage[], name: string) => usages.find((u) => u.name.toLowerCase() === name.toLowerCase());

/** A usage row as plan and status print it. */
export const usageLine = (u: QuotaUsage) => `${u.name}: ${u.current} of ${u.limit} vCPUs in use`;

/**
 * Why a pool of `count` nodes of this size would exceed a quota, or undefined when every quota it
 * draws on has room (or is not reported: then Azure's own answer to the PUT decides).
 */
export function quotaShortfall(size: VmSize, spot: boolean, count: number, usages: QuotaUsage[]): { quota: string; message: string } | undefined {
  const needed = size.vCpus * count;
  for (const quota of quotasNeeded(size, spot)) {
    const usage = usageOf(usages, quota);
    if (usage && usage.current + needed > usage.limit) {
      return {
        quota: usage.name,
        message:
          `${usageLine(usage)}, ${size.name}${spot ? ' (Spot)' : ''} needs ${needed}; ` +
          `ask for at least ${usage.current + needed} (Azure portal, Quotas, or 'az quota update')`,
      };
    }
  }
  return undefined;
}

/** A cluster's node pools against its limit (ManagedClusterProperties.maxAgentPools; AKS: 100), and whether the run's own pool is among them. */
export interface NodePoolRoom {
  count: number;
  max: number;
  hasPool: boolean;
}

/**
 * Why the run's pool cannot be added to a cluster that has as many node pools as AKS allows, or
 * undefined when it can (or is there already: a retried create adopts it). A full cluster is a
 * shortage that passes: pools of other runs are released, so the run waits as for capacity.
 */
export function nodePoolLimitShortfall(room: NodePoolRoom | undefined): { code: string; message: string } | undefined {
  if (!room || room.hasPool || room.count < room.max) return undefined;
  return {
    code: 'NodePoolLimit',
    message: `the cluster has ${room.count} node pools, the most AKS allows (maxAgentPools ${room.max}); the run waits for one to be released (learn.microsoft.com/azure/aks/quotas-skus-regions)`,
  };
}

/** The quota row of each distinct quota the attempts draw on, for plan and status. */
export function quotaSummary(attempts: GpuAttempt[], usages: QuotaUsage[]): string[] {
  return quotasOfAttempts(attempts).map((name) => {
    const u = usageOf(usages, name);
    return u ? usageLine(u) : `${name}: not reported`;
  });
}

/** How long the run waits before going around the list again: 15 s, doubling, at most 5 minutes. */
export function capacityRoundDelayMs(round: number): number {
  return Math.min(15_000 * 2 ** round, 5 * 60_000);
}

/** One line per attempt, for a failure message. */
export function attemptLines(records: GpuAttemptRecord[]): string[] {
  return records.map(
    (r) => `${r.vmSize}${r.spot ? ' (Spot)' : ''}${r.zone ? ` zone ${r.zone}` : ''}${r.cluster ? ` in ${r.cluster}` : ''}: ${r.outcome}${r.code ? ` ${r.code}` : ''}${r.seconds ? ` after ${r.seconds}s` : ''}`,
  );
}

/** The message of a run that found no GPUs within its bound. */
export function noCapacityMessage(records: GpuAttemptRecord[], waitedMinutes: number, boundMinutes: number): string {
  const quotaOnly = records.length > 0 && records.every((r) => r.refusal === 'quota');
  const capacityShort = records.some((r) => r.refusal === 'capacity');
  const lines = attemptLines(records.slice(-12));
  return (
    (capacityShort ? `No GPU capacity within ${boundMinutes} minutes (looked for ${waitedMinutes})` : 'No GPU candidate can be used') +
    `: ${records.length} attempt(s)${records.length > 12 ? ', the last' : ''}: ${lines.join('; ')}. ` +
    (quotaOnly
      ? 'Every candidate lacks quota: request a quota increase for the family named (Azure portal, Quotas), or add candidates in families with quota.'
      : 'Add candidates (gpu.candidates, gpu.fallback "fitting-sizes", other zones, spot or on-demand), raise gpu.capacityWaitMinutes, or try another region.')
  );
}

/**
 * The training arguments for a size with another GPU count, keeping the effective batch
 * (per-device batch × gradient accumulation × GPUs: the trainer runs one process per GPU).
 * The per-device batch stays when it can (it is what fits in one GPU's memory); gradient
 * accumulation takes up the difference. Undefined when the counts are the same.
 */
export function keepEffectiveBatch(
  config: TrainingConfig,
  fromGpus: number,
  toGpus: number,
): { config: TrainingConfig; change: string } | undefined {
  if (fromGpus === toGpus || fromGpus < 1 || toGpus < 1) return undefined;
  const args = config.training_config.TrainingArguments ?? {};
  const perDevice = Number(args.per_device_train_batch_size ?? 1);
  const accumulation = Number(args.gradient_accumulation_steps ?? 1);
  const effective = perDevice * accumulation * fromGpus;
  let next: { perDevice: number; accumulation: number };
  if (effective % (perDevice * toGpus) === 0) next = { perDevice, accumulation: effective / (perDevice * toGpus) };
  else if (effective % toGpus === 0) {
    // The per-device batch must shrink: the largest divisor of effective / toGpus not above it.
    const perGpu = effective / toGpus;
    const pd = Math.max(...Array.from({ length: perDevice }, (_, i) => i + 1).filter((d) => perGpu % d === 0));
    next = { perDevice: pd, accumulation: perGpu / pd };
  } else {
    next = { perDevice, accumulation: Math.max(1, Math.round(effective / (perDevice * toGpus))) };
  }
  const kept = next.perDevice * next.accumulation * toGpus;
  const trainingArguments = { ...args, per_device_train_batch_size: next.perDevice, gradient_accumulation_steps: next.accumulation };
  return {
    config: { training_config: { ...config.training_config, TrainingArguments: trainingArguments } },
    change:
      `${fromGpus} → ${toGpus} GPU(s): per-device batch ${perDevice} → ${next.perDevice}, gradient accumulation ${accumulation} → ${next.accumulation}, ` +
      (kept === effective ? `effective batch ${effective} kept` : `effective batch ${effective} → ${kept} (the nearest ${toGpus} GPU(s) allow)`),
  };
}
