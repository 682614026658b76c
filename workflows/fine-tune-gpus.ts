// The GPU pool of a fineTune run: getting it (a pool the request names, an idle warm pool
// claimed atomically, or a new pool of its own), getting it back when its nodes go away, and
// releasing it, only while it is still the run's, after success, failure or cancellation.
import { ActivityFailure, ApplicationFailure, log, patched, proxyActivities, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { GpuQuota } from '../activities/azure/compute-quota.js';
import type { ManagedPool, NodePoolSpec } from '../activities/azure/node-pools.js';
import { clustersOf } from '../domain/cluster-targets.js';
import { failureTypes } from '../domain/failure-types.js';
import {
  capacityRefusals,
  capacityRoundDelayMs,
  type GpuAttempt,
  type GpuAttemptRecord,
  keepEffectiveBatch,
  maxAttemptRecords,
  noCapacityMessage,
  nodePoolLimitShortfall,
  quotaShortfall,
  quotasOfAttempts,
  usageLine,
} from '../domain/gpu-candidates.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { type GpuHold, gpuTime, gpuUsage } from '../domain/gpu-usage.js';
import { gpuNodeLabels, managedPoolTags, poolOwner } from '../domain/pool-tags.js';
import { isOwnedBy, ownerIsOpen, type RecordedOwner } from '../domain/run-identity.js';
import { warmPoolCandidates } from '../domain/warm-pool.js';
import { apiCalls, armCapacityAttempts, armOperations, clusterWaits } from './activity-options.js';
import { perCluster } from './cluster-activities.js';
import type { FineTuneStatus, PlannedRun } from './fine-tune-run.js';
import { countGpuTime } from './metrics.js';
import { GpuVmSize } from './search-attributes.js';

// Pools, their nodes and the quota of their region: in the cluster named (domain/cluster-targets.ts).
const arm = perCluster<Pick<Activities, 'ensureNodePool' | 'deleteNodePool' | 'scaleNodePoolToZero' | 'describeNodePool' | 'listManagedPools' | 'claimNodePool'>>(armOperations);
const capacity = perCluster<Pick<Activities, 'ensureNodePool'>>(armCapacityAttempts);
const inCluster = perCluster<Pick<Activities, 'gpuPodsOnPool' | 'readGpuQuota'>>(apiCalls);
const waits = perCluster<Pick<Activities, 'waitForPoolNodes'>>(clusterWaits);
const runs = proxyActivities<Pick<Activities, 'openRunsAmong' | 'provisioningSecondsOf'>>(apiCalls);

export const gpuTaint = 'sku=gpu:NoSchedule';
/** How often a run gets fresh capacity after its nodes went away before it gives up. */
export const maxCapacityRecoveries = 2;

const poolSpec = (run: PlannedRun, name: string, attempt: Pick<GpuAttempt, 'vmSize' | 'spot' | 'zone'> = { vmSize: run.plan.vmSize.name, spot: run.plan.spot, zone: run.pool.zone }): NodePoolSpec => ({
  name,
  vmSize: attempt.vmSize,
  count: 1,
  spot: attempt.spot,
  ...(attempt.zone ? { zones: [attempt.zone] } : {}),
  taints: [gpuTaint],
  labels: { ...gpuNodeLabels },
  tags: managedPoolTags(run.owner, run.plan.release),
});

/** Gets the run its pool: the one the request names, a claimed warm pool, or its own; returns what it did. */
export async function provision(run: PlannedRun): Promise<string> {
  const { plan, pool, status } = run;
  if (plan.existingPool) {
    const existing = await arm(undefined).describeNodePool(plan.existingPool);
    if (!existing || existing.vmSize.toLowerCase() !== plan.vmSize.name.toLowerCase() || existing.count < 1) {
      throw ApplicationFailure.nonRetryable(
        existing
          ? `Node pool ${plan.existingPool} is ${existing.count} x ${existing.vmSize}; the run needs at least one ${plan.vmSize.name}`
          : `Node pool ${plan.existingPool} does not exist`,
        failureTypes.nodePoolConflict,
      );
    }
    return `using existing pool ${plan.existingPool}`;
  }
  // Runs started before capacity fallback keep their single size and Temporal's retries on it.
  const fallback = patched('capacity-fallback');
  const attempts = fallback ? plan.gpuAttempts : [{ vmSize: plan.vmSize.name, spot: plan.spot, afterMinutes: 0, source: 'request' as const }];
  if (plan.reuseWarmPool) {
    const warm = await claimWarmPool(run, attempts.filter((a) => a.afterMinutes === 0));
    if (warm) {
      Object.assign(pool, { name: warm.name, owned: true });
      if (fallback) choose(run, warm.attempt);
      const saved = warm.previousOwner.workflowId ? await runs.provisioningSecondsOf(warm.previousOwner) : undefined;
      Object.assign(status.gpu!, { pool: warm.name, reusedPool: true, reusedFrom: warm.previousOwner.workflowId, provisioningSecondsSaved: saved });
      return `reused warm pool ${warm.name}${saved !== undefined ? `, about ${saved}s of provisioning saved` : ''}`;
    }
  }
  pool.owned = true; // before the call: a timed-out or cancelled create may still have made the pool
  status.created.push(`AgentPool/${pool.name}`);
  if (!fallback) {
    const created = await arm(pool.cluster).ensureNodePool(poolSpec(run, pool.name));
    return `${created.name}: ${created.count} x ${created.vmSize}${created.adopted ? ' (adopted)' : ''}`;
  }
  return createFromCandidates(run);
}

/**
 * Goes down the run's GPU attempts until one gets a pool: an attempt without quota is skipped
 * before any request; one Azure refuses for quota, capacity or a size not offered has its failed
 * pool deleted before the next is tried. When capacity was short, around the list again after a
 * backoff, until gpu.capacityWaitMinutes; then the run fails with every attempt listed. When only
 * quota or sizes not offered stood in the way (waiting will not change them), it fails at once;
 * a request with one size fails with Azure's own answer, as before fallback.
 */
async function createFromCandidates(run: PlannedRun): Promise<string> {
  const { plan, pool, status } = run;
  const records: GpuAttemptRecord[] = (status.gpu!.attempts = []);
  const record = (r: GpuAttemptRecord) => {
    records.push(r);
    if (records.length > maxAttemptRecords) records.splice(0, records.length - maxAttemptRecords);
  };
  const startedMs = Date.now();
  const boundMs = plan.capacityWaitMinutes * 60_000;
  const minutesLooking = () => (Date.now() - startedMs) / 60_000;
  for (let round = 0; ; round++) {
    const due = plan.gpuAttempts.filter((a) => a.afterMinutes <= minutesLooking());
    let capacityShort = false;
    let lastRefusal: unknown;
    const quotas = await readQuotas(run, due);
    for (const attempt of due) {
      if (round > 0 && Date.now() - startedMs >= boundMs) break;
      const at = new Date().toISOString();
      const { usages, nodePools } = quotas.get(attempt.cluster)!;
      const shortfall = quotaShortfall(findVmSize(attempt.vmSize)!, attempt.spot, 1, usages);
      if (shortfall) {
        record({ ...where(attempt), at, outcome: 'skipped', refusal: 'quota', code: shortfall.quota, message: shortfall.message, seconds: 0 });
        continue;
      }
      const full = nodePoolLimitShortfall(nodePools);
      if (full) {
        capacityShort = true;
        record({ ...where(attempt), at, outcome: 'skipped', refusal: 'capacity', code: full.code, message: full.message, seconds: 0 });
        continue;
      }
      const began = Date.now();
      pool.cluster = attempt.cluster; // before the call: a cancelled create is looked for there
      try {
        const created = await capacity(attempt.cluster).ensureNodePool(poolSpec(run, pool.name, attempt));
        record({ ...where(attempt), at, outcome: 'created', seconds: Math.round((Date.now() - began) / 1000) });
        choose(run, attempt);
        const other = attempt.source === 'request' ? '' : ` (${attempt.source}, after ${records.length - 1} other attempt(s))`;
        return `${created.name}: ${created.count} x ${created.vmSize}${attempt.spot ? ' Spot' : ''}${attempt.zone ? ` in zone ${attempt.zone}` : ''}${attempt.cluster ? ` in cluster ${attempt.cluster}` : ''}${created.adopted ? ' (adopted)' : ''}${other}`;
      } catch (err) {
        const refused = capacityRefusal(err);
        if (!refused) throw err;
        capacityShort ||= refused.refusal === 'capacity';
        lastRefusal = err;
        record({ ...where(attempt), at, outcome: 'refused', ...refused, seconds: Math.round((Date.now() - began) / 1000) });
        log.warn('no GPUs from this candidate, trying the next', { ...where(attempt), code: refused.code });
        // A create that failed leaves a Failed pool: it goes before the next attempt, never held while the run moves on.
        await arm(attempt.cluster).deleteNodePool(pool.name, { ownedBy: run.owner });
      }
    }
    const nextDue = plan.gpuAttempts.map((a) => a.afterMinutes * 60_000 - (Date.now() - startedMs)).filter((ms) => ms > 0);
    if (!capacityShort && nextDue.length === 0) {
      if (plan.gpuAttempts.length === 1 && lastRefusal) throw lastRefusal;
      const type = records.every((r) => r.refusal === 'quota') ? failureTypes.gpuQuotaExceeded : failureTypes.gpuSizeNotOffered;
      throw ApplicationFailure.nonRetryable(noCapacityMessage(records, Math.round(minutesLooking()), plan.capacityWaitMinutes), type);
    }
    const delayMs = Math.min(capacityRoundDelayMs(round), ...nextDue);
    if (Date.now() - startedMs + delayMs >= boundMs) {
      throw ApplicationFailure.nonRetryable(noCapacityMessage(records, Math.round(minutesLooking()), plan.capacityWaitMinutes), failureTypes.gpuCapacityUnavailable);
    }
    await sleep(delayMs);
  }
}

const where = (a: GpuAttempt) => ({ vmSize: a.vmSize, spot: a.spot, ...(a.zone ? { zone: a.zone } : {}), ...(a.cluster ? { cluster: a.cluster } : {}) });

/**
 * One read of the usages API per cluster the attempts are in (each its own region), for the quotas
 * they draw on there, and of the cluster's node pools against its limit; the status shows the
 * quotas read, per cluster when there are several. (No patched(): a run recorded before the pool
 * count has results without it, and replays as it ran.)
 */
async function readQuotas(run: PlannedRun, attempts: GpuAttempt[]): Promise<Map<string | undefined, Pick<GpuQuota, 'usages' | 'nodePools'>>> {
  const quotas = new Map<string | undefined, Pick<GpuQuota, 'usages' | 'nodePools'>>();
  const lines: string[] = [];
  for (const cluster of clustersOf(attempts)) {
    const quota = await inCluster(cluster).readGpuQuota(quotasOfAttempts(attempts.filter((a) => a.cluster === cluster)), run.pool.name);
    quotas.set(cluster, quota);
    const read = quota.unreadable ?? quota.usages.map(usageLine).join('; ');
    lines.push(cluster === undefined ? read : `${cluster} (${quota.location}): ${read}`);
  }
  run.status.gpu!.quota = lines.join('; ');
  return quotas;
}

/** A pool request's failure that says "not here, not now" (quota, capacity, size not offered), with Azure's code; undefined for any other. */
function capacityRefusal(err: unknown): Pick<GpuAttemptRecord, 'refusal' | 'code' | 'message'> | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure) || !cause.type || !capacityRefusals[cause.type]) return undefined;
  const code = typeof cause.details?.[0] === 'string' ? (cause.details[0] as string) : cause.type;
  return { refusal: capacityRefusals[cause.type], code, message: cause.message.slice(0, 500) };
}

/**
 * The run goes on with this attempt's size: the plan, the status and the search attribute say so,
 * and a size with another GPU count gets training arguments that keep the effective batch.
 */
function choose(run: PlannedRun, attempt: GpuAttempt): void {
  const { plan, pool, status } = run;
  const size = findVmSize(attempt.vmSize)!;
  const batch = keepEffectiveBatch(plan.config, plan.vmSize.gpus, size.gpus);
  if (batch) {
    plan.config = batch.config;
    status.gpu!.trainingChange = batch.change;
    log.info('training arguments follow the GPU count', { change: batch.change });
  }
  Object.assign(plan, { vmSize: size, spot: attempt.spot });
  pool.zone = attempt.zone;
  pool.cluster = attempt.cluster;
  Object.assign(status.gpu!, { vmSize: size.name, spot: attempt.spot, ...(attempt.zone ? { zone: attempt.zone } : {}), ...(attempt.cluster ? { cluster: attempt.cluster } : {}) });
  if (attempt.source !== 'request') upsertSearchAttributes([{ key: GpuVmSize, value: size.name }]);
}

/** An idle managed pool whose run has ended, claimed for this run (the first of the attempts that has one, in the attempt's cluster); undefined when there is none. */
async function claimWarmPool(run: PlannedRun, attempts: GpuAttempt[]): Promise<{ name: string; previousOwner: RecordedOwner; attempt: GpuAttempt } | undefined> {
  const poolsIn = new Map<string | undefined, (ManagedPool & { owner: RecordedOwner })[]>();
  for (const cluster of clustersOf(attempts)) poolsIn.set(cluster, (await arm(cluster).listManagedPools()).map((p) => ({ ...p, owner: poolOwner(p.tags) })));
  const owners = [...new Set([...poolsIn.values()].flat().map((p) => p.owner.workflowId).filter((o): o is string => o !== undefined))];
  // One visibility query for all owners, however many pools there are.
  const openRuns = owners.length ? await runs.openRunsAmong(owners) : [];
  const tried = new Set<string>();
  for (const attempt of attempts) {
    const key = `${attempt.cluster}/${attempt.vmSize}/${attempt.spot}`;
    if (tried.has(key)) continue; // a warm pool's zone is its own: one look per cluster, size and priority
    tried.add(key);
    const wanted = { vmSize: attempt.vmSize, spot: attempt.spot, self: run.owner };
    for (const candidate of warmPoolCandidates(poolsIn.get(attempt.cluster)!, wanted, (owner) => ownerIsOpen(owner, openRuns))) {
      if ((await inCluster(attempt.cluster).gpuPodsOnPool(candidate.name)).length > 0) continue;
      run.pool.cluster = attempt.cluster; // before the call: a claim a cancel interrupts is looked for there
      if (await arm(attempt.cluster).claimNodePool(candidate.name, candidate.eTag!, managedPoolTags(run.owner, run.plan.release))) {
        return { name: candidate.name, previousOwner: candidate.owner, attempt: { ...attempt, zone: candidate.zones?.[0] } };
      }
    }
  }
  return undefined;
}

/** Waits until a node of the run's pool is Ready with allocatable GPUs; returns the nodes. */
export async function waitForGpus(run: PlannedRun): Promise<string[]> {
  const ready = await waits(run.pool.cluster).waitForPoolNodes(run.pool.name, 1);
  const gpu = run.status.gpu!;
  gpu.gpusPerNode = ready.gpusPerNode;
  // new Date() is deterministic in workflow code: the sandbox replays time from history.
  gpu.readyAt ??= new Date().toISOString();
  log.info('GPU nodes ready', { pool: run.pool.name, nodes: ready.nodes, gpusPerNode: ready.gpusPerNode });
  return ready.nodes;
}

/**
 * A node went away under a step (spot eviction, the pool deleted or scaled down by someone
 * else): gets the run's pool its node back, a bounded number of times, and records why. A pool
 * the run does not own is not the run's to grow: that fails clearly instead.
 */
export async function recoverCapacity(run: PlannedRun, step: string, reason: string): Promise<void> {
  const { status, pool } = run;
  status.capacityRecoveries.push({ at: new Date().toISOString(), step, reason });
  log.warn('node lost under a step', { step, pool: pool.name, reason });
  if (!pool.owned) {
    throw ApplicationFailure.nonRetryable(`${step}: ${reason}. Pool ${pool.name} is not managed by this run; make sure it has a node and start the run again.`, failureTypes.nodeLost);
  }
  if (status.capacityRecoveries.length > maxCapacityRecoveries) {
    throw ApplicationFailure.nonRetryable(
      `${step}: ${reason}. Nodes went away ${status.capacityRecoveries.length} times (at most ${maxCapacityRecoveries} recoveries); ` +
        (run.plan.spot ? 'Spot capacity is being evicted: try again later, or without spot.' : 'check who deletes or scales the pool.'),
      failureTypes.nodeLost,
    );
  }
  await arm(pool.cluster).ensureNodePool(poolSpec(run, pool.name));
  await waitForGpus(run);
}

/** What the run's GPUs are, and since when it holds them; undefined before a node was Ready (no GPU time yet). */
export function gpuHold(gpu: NonNullable<FineTuneStatus['gpu']>): GpuHold | undefined {
  return gpu.readyAt ? { vmSize: gpu.vmSize, spot: gpu.spot, gpusPerNode: gpu.gpusPerNode ?? 0, readyAtMs: Date.parse(gpu.readyAt) } : undefined;
}

/** GPU-minutes and cost so far, into the status. */
export function accountGpu(run: PlannedRun): void {
  const gpu = run.status.gpu!;
  const hold = gpuHold(gpu);
  if (hold) Object.assign(gpu, gpuUsage(hold, run.plan.prices, gpu.releasedAt ? Date.parse(gpu.releasedAt) : Date.now()));
}

/** The run's GPU time into the product metrics, once, when it releases its pool. */
function countReleasedGpuTime(run: PlannedRun, releasedAt: string): void {
  const gpu = run.status.gpu!;
  const hold = gpuHold(gpu);
  if (!hold) return; // released before a node was Ready: no GPU time
  const time = gpuTime(hold, Date.parse(releasedAt), run.status.training);
  countGpuTime(gpu, time);
  log.info('GPU time', { pool: gpu.pool, vmSize: gpu.vmSize, ...time });
}

/**
 * Releases every pool this run owns, per its release policy, and only while the run still owns
 * it (a released pool may already be the next run's). Besides the pool the run knows, that is
 * any pool tagged with the run: a create or a warm-pool claim that a cancellation interrupted
 * may have gone through without the run hearing back.
 */
export async function releasePools(run: PlannedRun, options: { includeUnconfirmed: boolean }): Promise<void> {
  const { pool, status } = run;
  const isRunPool = (p: { name: string; cluster?: string }) => p.name === pool.name && p.cluster === pool.cluster;
  const pools: { name: string; cluster?: string }[] = pool.owned && !pool.released ? [{ name: pool.name, cluster: pool.cluster }] : [];
  if (options.includeUnconfirmed) {
    // Every cluster the run asked for a pool in: a refused attempt's pool goes before the next, but a cancel may come between.
    for (const cluster of clustersOf([pool, ...(status.gpu!.attempts ?? [])])) {
      const tagged = (await arm(cluster).listManagedPools()).filter((p) => isOwnedBy(poolOwner(p.tags), run.owner)).map((p) => ({ name: p.name, cluster }));
      pools.push(...tagged.filter((p) => !pools.some((q) => q.name === p.name && q.cluster === p.cluster) && !(isRunPool(p) && pool.released)));
    }
  }
  const guard = { ownedBy: run.owner };
  for (const { name, cluster } of pools) {
    const inTarget = cluster ? ` in ${cluster}` : '';
    if (run.plan.release.policy === 'scale-to-zero') {
      if (await arm(cluster).scaleNodePoolToZero(name, guard)) status.released.push(`AgentPool/${name} (scaled to 0)${inTarget}`);
    } else if (await arm(cluster).deleteNodePool(name, guard)) {
      status.released.push(`AgentPool/${name} (deleted)${inTarget}`);
    }
    if (isRunPool({ name, cluster })) {
      pool.released = true;
      status.gpu!.releasedAt = new Date().toISOString();
      accountGpu(run);
      countReleasedGpuTime(run, status.gpu!.releasedAt);
    }
  }
}
