// GPU node pools through Azure Resource Manager. Every call is idempotent: a retried or
// duplicated activity adopts the pool that exists instead of creating another.
import type { AgentPool, ContainerServiceClient, ManagedCluster } from '@azure/arm-containerservice';
import type { OperationState, PollerLike } from '@azure/core-lro';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { isRestError } from '@azure/core-rest-pipeline';
import { failureTypes } from '../../domain/failure-types.js';
import { armOperationInProgress } from '../../domain/pool-state.js';
import { poolOwner, poolTags } from '../../domain/pool-tags.js';
import { isOwnedBy, type RunOwner } from '../../domain/run-identity.js';
import { managedClusterRead, poolStatesOf, sharedRead, type SharedRead } from './shared-read.js';

export interface NodePoolSpec {
  name: string;
  vmSize: string;
  count: number;
  spot: boolean;
  /** Availability zones the pool's nodes go to (ARM availabilityZones); none: the region. */
  zones?: string[];
  /** "key=value:Effect" taints, as ARM takes them. */
  taints: string[];
  labels: Record<string, string>;
  /** ARM tags: mark the pool as managed by this product and name the run that owns it. */
  tags: Record<string, string>;
}

export interface NodePoolState {
  name: string;
  vmSize: string;
  count: number;
  provisioningState: string;
  /** True when the pool already existed with this spec and was adopted. */
  adopted: boolean;
}

export interface ManagedPool {
  name: string;
  eTag?: string;
  spot: boolean;
  vmSize: string;
  count: number;
  provisioningState: string;
  /** Its availability zones, when it was pinned to some. */
  zones?: string[];
  tags: Record<string, string>;
}

/** Conditions on releasing a pool: still owned by this run, and/or unchanged since it was looked at. */
export interface ReleaseGuard {
  /** Release only while the pool's owner tags name this run (workflow id and run id), or this workflow id alone (an endpoint's pool). */
  ownedBy?: Pick<RunOwner, 'workflowId'> & Partial<RunOwner>;
  ifMatch?: string;
}

const preconditionFailed = (err: unknown) => isRestError(err) && err.statusCode === 412;

/**
 * Follows an ARM long-running operation to its end, heartbeating each poll. Returns false when
 * ARM refused it because the pool changed since its eTag was read (412): another run won.
 */
async function conditionalOperation(poller: PollerLike<OperationState<unknown>, unknown>, step: string): Promise<boolean> {
  const ctx = Context.current();
  try {
    poller.onProgress((state) => ctx.heartbeat({ step, status: state.status }));
    await poller.pollUntilDone();
    return true;
  } catch (err) {
    if (preconditionFailed(err)) return false;
    throw err;
  }
}

/**
 * A guarded release whose eTag no longer matched (412). Under an ifMatch guard (the reaper's) that
 * is the answer: a run claimed the pool meanwhile. Under ownedBy alone the eTag came from this
 * call's own read, so the pool changed in between, perhaps still this owner's: the activity fails
 * and its retry reads the pool again, instead of reporting released a pool that still bills.
 */
function ownRelease(done: boolean, name: string, guard: ReleaseGuard): boolean {
  if (!done && guard.ifMatch === undefined && guard.ownedBy !== undefined) throw new Error(`node pool ${name} changed while it was being released; reading it again`);
  return done;
}

export interface NodePoolDeps {
  containerService: ContainerServiceClient;
  resourceGroup: string;
  clusterName: string;
  /** How often ARM long-running operations are polled. */
  pollIntervalMs: number;
  /** The worker's shared read of the managed cluster (shared-read.ts); one of its own when absent. */
  clusterRead?: SharedRead<ManagedCluster>;
}

/**
 * Turns what ARM said into a failure the workflow can act on:
 * - QuotaExceeded (400): the subscription's quota; retrying will not help.
 * - a size not offered in the region (400 VMSizeNotSupported, SkuNotAvailable): will not heal either.
 * - capacity (the operation fails, AKS's code wrapping Compute's ZonalAllocationFailed or
 *   AllocationFailed, https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/zonalallocationfailed-allocationfailed-error):
 *   transient, so retried with backoff.
 * - throttling (429 Throttled) and 5xx: the SDK already waited out Retry-After and retried;
 *   Temporal retries the rest.
 */
const where = (spec: NodePoolSpec) => (spec.zones?.length ? ` in zone ${spec.zones.join(', ')}` : '') + (spec.spot ? ' (Spot)' : '');

function toFailure(err: unknown, spec: NodePoolSpec): unknown {
  const code = isRestError(err) ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'QuotaExceeded' || /quota/i.test(message)) {
    return ApplicationFailure.nonRetryable(
      `Azure refused GPU node pool ${spec.name}: the subscription's ${spec.vmSize}${spec.spot ? ' Spot' : ''} quota is exhausted. ` +
        `Request a quota increase for that VM family, or choose another vmSize (gpu.candidates lists sizes to fall back to). (${message})`,
      failureTypes.gpuQuotaExceeded,
      'QuotaExceeded',
    );
  }
  if (code === 'VMSizeNotSupported' || code === 'SkuNotAvailable') {
    return ApplicationFailure.nonRetryable(
      `Azure does not offer ${spec.vmSize}${where(spec)} for node pool ${spec.name}: add another size to gpu.candidates ` +
        `('az vm list-skus -l <region> --resource-type virtualMachines' lists what is offered), or use a cluster in another region. (${message})`,
      failureTypes.gpuSizeNotOffered,
      code,
    );
  }
  const allocation = /\b((?:Zonal)?AllocationFailed|Overconstrained(?:Zonal)?AllocationRequest)\b/.exec(`${code} ${message}`);
  if (allocation) {
    return ApplicationFailure.retryable(
      `Azure has no ${spec.vmSize}${where(spec)} capacity for node pool ${spec.name} right now. ` +
        `Other zones, Spot or on-demand, another GPU size or another region may have it (gpu.candidates). (${message})`,
      failureTypes.gpuCapacityUnavailable,
      allocation[1],
    );
  }
  if (isRestError(err) && err.statusCode === 400) {
    return ApplicationFailure.nonRetryable(`ARM rejected node pool ${spec.name}: ${message}`, failureTypes.invalidNodePoolSpec);
  }
  return err;
}

/**
 * The fields this product sets on a pool, and only those: a PUT never echoes what a GET returned
 * (nodeImageVersion there would roll the nodes' image back on AKS; provisioningState, eTag and
 * the like are read-only).
 */
const poolParameters = (spec: NodePoolSpec): AgentPool => ({
  count: spec.count,
  vmSize: spec.vmSize,
  mode: 'User',
  osType: 'Linux',
  nodeTaints: spec.taints,
  nodeLabels: spec.labels,
  tags: spec.tags,
  scaleSetPriority: spec.spot ? 'Spot' : 'Regular',
  ...(spec.spot ? { scaleSetEvictionPolicy: 'Delete', spotMaxPrice: -1 } : {}),
  ...(spec.zones?.length ? { availabilityZones: spec.zones } : {}),
});

/** The product's fields of an existing pool, for a PUT that changes its count or tags. */
const productFields = (pool: AgentPool): AgentPool => ({
  count: pool.count,
  vmSize: pool.vmSize,
  mode: pool.mode,
  osType: pool.osType,
  nodeTaints: pool.nodeTaints,
  nodeLabels: pool.nodeLabels,
  tags: pool.tags,
  scaleSetPriority: pool.scaleSetPriority,
  ...(pool.scaleSetPriority === 'Spot' ? { scaleSetEvictionPolicy: pool.scaleSetEvictionPolicy, spotMaxPrice: pool.spotMaxPrice } : {}),
  ...(pool.availabilityZones?.length ? { availabilityZones: pool.availabilityZones } : {}),
});

/** What the shared read says of a pool it does not list: not created yet, or deleted meanwhile. */
const notListed = 'not listed';

const stateOf = (pool: AgentPool, adopted: boolean): NodePoolState => ({
  name: pool.name ?? '',
  vmSize: pool.vmSize ?? '',
  count: pool.count ?? 0,
  provisioningState: pool.provisioningState ?? 'Unknown',
  adopted,
});

export function createNodePoolActivities({ containerService, resourceGroup, clusterName, pollIntervalMs, clusterRead = managedClusterRead(containerService, resourceGroup, clusterName, pollIntervalMs) }: NodePoolDeps) {
  const pools = containerService.agentPools;
  /** Each pool's provisioningState from the shared read; undefined when the read failed. */
  const nextPoolState = (name: string, cancelled: Promise<never>) =>
    Promise.race([clusterRead.next().then((cluster) => poolStatesOf(cluster).get(name) ?? notListed, () => undefined), cancelled]);

  const managedPoolsRead = sharedRead(async () => {
    const managed: ManagedPool[] = [];
    for await (const pool of pools.list(resourceGroup, clusterName)) {
      const tags = pool.tags ?? {};
      if (tags[poolTags.managed] !== 'true') continue;
      managed.push({
        name: pool.name ?? '',
        eTag: pool.eTag,
        spot: pool.scaleSetPriority === 'Spot',
        vmSize: pool.vmSize ?? '',
        count: pool.count ?? 0,
        provisioningState: pool.provisioningState ?? 'Unknown',
        ...(pool.availabilityZones?.length ? { zones: pool.availabilityZones } : {}),
        tags,
      });
    }
    return managed;
  }, pollIntervalMs);

  async function getPool(name: string): Promise<AgentPool | undefined> {
    try {
      return await pools.get(resourceGroup, clusterName, name);
    } catch (err) {
      if (isRestError(err) && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * Waits until the operation `poller` follows on pool `name` has ended, on the worker's shared
   * read of the cluster's pools (shared-read.ts) rather than polls of its own. A pool the read
   * does not list (not yet, or deleted meanwhile), or a read that failed, gets one poll of the
   * operation itself instead, so the wait never hangs on the shared read.
   */
  async function untilOperationEnds(name: string, poller: PollerLike<OperationState<AgentPool>, AgentPool>): Promise<void> {
    const ctx = Context.current();
    for (;;) {
      const state = await nextPoolState(name, ctx.cancelled);
      ctx.heartbeat({ step: 'provisioning node pool', status: state ?? 'unread' });
      if (state === undefined || state === notListed) {
        await poller.poll({ abortSignal: ctx.cancellationSignal });
        if (poller.isDone) return;
      } else if (!armOperationInProgress(state)) {
        return;
      }
    }
  }

  /**
   * Waits until an ARM operation in progress on the pool has ended, on the same shared read, and
   * returns the pool as it then is (one read of its own). A retried activity (its worker died
   * while the SDK followed the operation) so adopts the operation instead of sending a second
   * PUT, which ARM refuses with 409 OperationNotAllowed while one runs, and a worker kill costs
   * no extra ARM calls. A failed shared read falls back to reading the pool itself.
   */
  async function settled(pool: AgentPool, step: string): Promise<AgentPool | undefined> {
    if (!armOperationInProgress(pool.provisioningState)) return pool;
    const ctx = Context.current();
    for (let state = pool.provisioningState; ; ) {
      ctx.heartbeat({ step, status: state });
      const shared = await nextPoolState(pool.name!, ctx.cancelled);
      if (shared === undefined || shared === notListed || !armOperationInProgress(shared)) {
        const current = await getPool(pool.name!);
        if (!current || !armOperationInProgress(current.provisioningState)) return current;
        state = current.provisioningState;
      } else {
        state = shared;
      }
    }
  }

  /** The pool, if it exists and the guard allows releasing it. */
  async function guarded(name: string, guard: ReleaseGuard): Promise<AgentPool | undefined> {
    const pool = await getPool(name);
    if (!pool) return undefined;
    if (guard.ownedBy !== undefined && !isOwnedBy(poolOwner(pool.tags), guard.ownedBy)) return undefined;
    if (guard.ifMatch !== undefined && pool.eTag !== guard.ifMatch) return undefined;
    return pool;
  }

  return {
    /** Creates the pool, or adopts it when one with the same spec exists; returns once it is Succeeded. */
    async ensureNodePool(spec: NodePoolSpec): Promise<NodePoolState> {
      const ctx = Context.current();
      const found = await getPool(spec.name);
      const existing = found && isOwnedBy(poolOwner(found.tags), poolOwner(spec.tags)) ? await settled(found, 'adopting node pool operation') : found;
      if (existing) {
        const recorded = poolOwner(existing.tags);
        const owner = poolOwner(spec.tags);
        if (!isOwnedBy(recorded, owner)) {
          // Another run's pool (an earlier run under this workflow id included): never adopted.
          throw ApplicationFailure.nonRetryable(
            `Node pool ${spec.name} already exists and belongs to run ${recorded.workflowId ?? '(none)'} (${recorded.runId ?? 'no run id'}), ` +
              `not ${owner.workflowId} (${owner.runId}); it is not adopted.`,
            failureTypes.nodePoolConflict,
          );
        }
        const zones = (z?: string[]) => [...(z ?? [])].sort().join(',');
        const sameShape =
          existing.vmSize?.toLowerCase() === spec.vmSize.toLowerCase() &&
          (existing.scaleSetPriority === 'Spot') === spec.spot &&
          zones(existing.availabilityZones) === zones(spec.zones);
        if (!sameShape) {
          throw ApplicationFailure.nonRetryable(
            `Node pool ${spec.name} already exists as ${existing.vmSize} (${existing.scaleSetPriority ?? 'Regular'}${existing.availabilityZones?.length ? `, zones ${zones(existing.availabilityZones)}` : ''}), ` +
              `not ${spec.vmSize}${where(spec)}; ` +
              'delete it or choose another pool name.',
            failureTypes.nodePoolConflict,
          );
        }
        if (existing.provisioningState === 'Succeeded' && existing.count === spec.count) return stateOf(existing, true);
      }
      try {
        const poller = pools.createOrUpdate(resourceGroup, clusterName, spec.name, poolParameters(spec), {
          updateIntervalInMs: pollIntervalMs,
          abortSignal: ctx.cancellationSignal,
        });
        poller.onProgress((state) => ctx.heartbeat({ step: 'provisioning node pool', status: state.status }));
        await poller.submitted();
        clusterRead.invalidate(); // the pool counts now: the next quota read must see it
        await untilOperationEnds(spec.name, poller);
        const pool = await poller.pollUntilDone();
        return stateOf(pool, existing !== undefined);
      } catch (err) {
        throw toFailure(err, spec);
      }
    },

    /**
     * The pools this product manages (tagged managed), with what the idle-GPU reaper needs to
     * know: from a LIST sent after the call, shared by every caller meanwhile, so a burst
     * of cancelled runs' cleanups makes one LIST per poll interval, not one each (AKS allows 500,
     * then 1 per second per subscription).
     */
    listManagedPools: () => managedPoolsRead.fresh(),

    /** What an existing pool is, for a run asked to use it; undefined when there is none. */
    async describeNodePool(name: string): Promise<{ vmSize: string; count: number; spot: boolean; provisioningState: string } | undefined> {
      const pool = await getPool(name);
      if (!pool) return undefined;
      return { vmSize: pool.vmSize ?? '', count: pool.count ?? 0, spot: pool.scaleSetPriority === 'Spot', provisioningState: pool.provisioningState ?? 'Unknown' };
    },

    /**
     * Claims an idle pool for a run: one PUT, conditional on the pool's eTag, that makes the run
     * its owner (tags) and gives it a node. Of two runs claiming the same pool, ARM lets exactly
     * one through (the other gets 412). Returns whether this run got it.
     */
    async claimNodePool(name: string, eTag: string, tags: Record<string, string>): Promise<boolean> {
      const pool = await getPool(name);
      const claimant = poolOwner(tags);
      // An earlier attempt's claim went through (its worker died while following it): adopt it.
      if (pool && claimant.runId !== undefined && isOwnedBy(poolOwner(pool.tags), claimant)) return (await settled(pool, 'adopting warm pool claim')) !== undefined;
      if (!pool || pool.eTag !== eTag) return false;
      const poller = pools.createOrUpdate(
        resourceGroup,
        clusterName,
        name,
        { ...productFields(pool), count: Math.max(pool.count ?? 0, 1), tags: { ...pool.tags, ...tags } },
        { ifMatch: eTag, updateIntervalInMs: pollIntervalMs, abortSignal: Context.current().cancellationSignal },
      );
      return conditionalOperation(poller, 'claiming warm node pool');
    },

    /** Scales the pool to zero nodes, keeping its definition for the next run. Returns whether it did. */
    async scaleNodePoolToZero(name: string, guard: ReleaseGuard = {}): Promise<boolean> {
      const pool = await guarded(name, guard);
      if (!pool) return false;
      if (pool.count === 0 && pool.provisioningState === 'Succeeded') return true;
      const poller = pools.createOrUpdate(resourceGroup, clusterName, name, { ...productFields(pool), count: 0 }, {
        ifMatch: guard.ownedBy || guard.ifMatch ? pool.eTag : undefined,
        updateIntervalInMs: pollIntervalMs,
        abortSignal: Context.current().cancellationSignal,
      });
      return ownRelease(await conditionalOperation(poller, 'scaling node pool to 0'), name, guard);
    },

    /**
     * Deletes the pool; one already gone counts as deleted. Returns whether it deleted one
     * (false also when the guard says the pool is no longer this caller's to delete).
     */
    async deleteNodePool(name: string, guard: ReleaseGuard = {}): Promise<boolean> {
      const ctx = Context.current();
      // A DELETE preempts a create or scale in progress (its operation fails with
      // AKSOperationPreemptedByDelete), so a cancelled run stops paying for a pool still being made.
      const pool = await guarded(name, guard);
      if (!pool) return false;
      const poller = pools.delete(resourceGroup, clusterName, name, {
        ifMatch: guard.ownedBy || guard.ifMatch ? pool.eTag : undefined,
        updateIntervalInMs: pollIntervalMs,
        abortSignal: ctx.cancellationSignal,
      });
      return ownRelease(await conditionalOperation(poller, 'deleting node pool'), name, guard);
    },
  };
}
