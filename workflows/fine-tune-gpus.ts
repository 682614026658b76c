// The GPU pool of a fineTune run: getting it (a pool the request names, an idle warm pool
// claimed atomically, or a new pool of its own), getting it back when its nodes go away, and
// releasing it, only while it is still the run's, after success, failure or cancellation.
import { ApplicationFailure, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { NodePoolSpec } from '../activities/azure/node-pools.js';
import { failureTypes } from '../domain/failure-types.js';
import { type GpuHold, gpuTime, gpuUsage } from '../domain/gpu-usage.js';
import { managedPoolTags, poolOwner } from '../domain/pool-tags.js';
import { isOwnedBy, ownerIsOpen, type RecordedOwner } from '../domain/run-identity.js';
import { warmPoolCandidates } from '../domain/warm-pool.js';
import { apiCalls, armOperations, clusterWaits } from './activity-options.js';
import type { FineTuneStatus, PlannedRun } from './fine-tune-run.js';
import { countGpuTime } from './metrics.js';

const arm = proxyActivities<
  Pick<Activities, 'ensureNodePool' | 'deleteNodePool' | 'scaleNodePoolToZero' | 'describeNodePool' | 'listManagedPools' | 'claimNodePool'>
>(armOperations);
const lookups = proxyActivities<Pick<Activities, 'openRunsAmong' | 'provisioningSecondsOf' | 'gpuPodsOnPool'>>(apiCalls);
const waits = proxyActivities<Pick<Activities, 'waitForPoolNodes'>>(clusterWaits);

export const gpuTaint = 'sku=gpu:NoSchedule';
/** How often a run gets fresh capacity after its nodes went away before it gives up. */
export const maxCapacityRecoveries = 2;

const poolSpec = (run: PlannedRun, name: string): NodePoolSpec => ({
  name,
  vmSize: run.plan.vmSize.name,
  count: 1,
  spot: run.plan.spot,
  taints: [gpuTaint],
  labels: { 'aks-finetune.io/purpose': 'fine-tuning' },
  tags: managedPoolTags(run.owner, run.plan.release),
});

/** Gets the run its pool: the one the request names, a claimed warm pool, or its own; returns what it did. */
export async function provision(run: PlannedRun): Promise<string> {
  const { plan, pool, status } = run;
  if (plan.existingPool) {
    const existing = await arm.describeNodePool(plan.existingPool);
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
  if (plan.reuseWarmPool) {
    const warm = await claimWarmPool(run);
    if (warm) {
      Object.assign(pool, { name: warm.name, owned: true });
      const saved = warm.previousOwner.workflowId ? await lookups.provisioningSecondsOf(warm.previousOwner) : undefined;
      Object.assign(status.gpu!, { pool: warm.name, reusedPool: true, reusedFrom: warm.previousOwner.workflowId, provisioningSecondsSaved: saved });
      return `reused warm pool ${warm.name}${saved !== undefined ? `, about ${saved}s of provisioning saved` : ''}`;
    }
  }
  pool.owned = true; // before the call: a timed-out or cancelled create may still have made the pool
  status.created.push(`AgentPool/${pool.name}`);
  const created = await arm.ensureNodePool(poolSpec(run, pool.name));
  return `${created.name}: ${created.count} x ${created.vmSize}${created.adopted ? ' (adopted)' : ''}`;
}

/** An idle managed pool whose run has ended, claimed for this run; undefined when there is none. */
async function claimWarmPool(run: PlannedRun): Promise<{ name: string; previousOwner: RecordedOwner } | undefined> {
  const pools = (await arm.listManagedPools()).map((p) => ({ ...p, owner: poolOwner(p.tags) }));
  const owners = [...new Set(pools.map((p) => p.owner.workflowId).filter((o): o is string => o !== undefined))];
  // One visibility query for all owners, however many pools there are.
  const openRuns = owners.length ? await lookups.openRunsAmong(owners) : [];
  const wanted = { vmSize: run.plan.vmSize.name, spot: run.plan.spot, self: run.owner };
  for (const candidate of warmPoolCandidates(pools, wanted, (owner) => ownerIsOpen(owner, openRuns))) {
    if ((await lookups.gpuPodsOnPool(candidate.name)).length > 0) continue;
    if (await arm.claimNodePool(candidate.name, candidate.eTag!, managedPoolTags(run.owner, run.plan.release))) {
      return { name: candidate.name, previousOwner: candidate.owner };
    }
  }
  return undefined;
}

/** Waits until a node of the run's pool is Ready with allocatable GPUs; returns the nodes. */
export async function waitForGpus(run: PlannedRun): Promise<string[]> {
  const ready = await waits.waitForPoolNodes(run.pool.name, 1);
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
  await arm.ensureNodePool(poolSpec(run, pool.name));
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
  const names = pool.owned && !pool.released ? [pool.name] : [];
  if (options.includeUnconfirmed) {
    const tagged = (await arm.listManagedPools()).filter((p) => isOwnedBy(poolOwner(p.tags), run.owner)).map((p) => p.name);
    names.push(...tagged.filter((n) => !names.includes(n) && !(n === pool.name && pool.released)));
  }
  const guard = { ownedBy: run.owner };
  for (const name of names) {
    if (run.plan.release.policy === 'scale-to-zero') {
      if (await arm.scaleNodePoolToZero(name, guard)) status.released.push(`AgentPool/${name} (scaled to 0)`);
    } else if (await arm.deleteNodePool(name, guard)) {
      status.released.push(`AgentPool/${name} (deleted)`);
    }
    if (name === pool.name) {
      pool.released = true;
      status.gpu!.releasedAt = new Date().toISOString();
      accountGpu(run);
      countReleasedGpuTime(run, status.gpu!.releasedAt);
    }
  }
}
