// reapIdleGpuPools: run by a Temporal Schedule (every minute by default).
// Pools: for each node pool this product manages (tag aks-finetune.io/managed=true; no other pool
// is ever touched), a pool whose owning run (workflow id and run id) is still open is kept,
// whatever pods are on it at that moment: the run releases it itself. Otherwise the reaper
// decides whether the pool is idle (no pod holding GPUs on its nodes, DaemonSets aside),
// remembers since when, and after the pool's grace period releases it per its release policy.
// The pool is checked again right before it is released, so a pod that just arrived wins.
// Cluster: Jobs, ConfigMaps, PVCs, Deployments and Services labelled with a run that has ended
// are deleted (the orphan sweep), except inference that a completed run deployed on purpose.
// Temporal is asked about all owners, of pools and objects alike, in one visibility query.
// Every cluster the worker serves is reaped so (its home cluster and each target of
// AKS_CLUSTERS_FILE), each with its own idle-since state. With dryRun it only reports.
import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { ManagedPool } from '../activities/azure/node-pools.js';
import type { RunObject } from '../activities/kubernetes/run-objects.js';
import { armOperationInProgress } from '../domain/pool-state.js';
import { poolOwner, poolTags } from '../domain/pool-tags.js';
import { type RecordedOwner, runOf, type RunRecord, sweepDecision } from '../domain/run-identity.js';
import { type ReaperInput, validateReaperInput } from '../domain/workflow-inputs.js';
import { apiCalls, armOperations } from './activity-options.js';
import { perCluster } from './cluster-activities.js';
import { invalidInput } from './input-checks.js';
import { countReaperDecisions } from './metrics.js';

export type { ReaperInput } from '../domain/workflow-inputs.js';

export type ReaperAction = 'released' | 'would-release' | 'idle' | 'busy' | 'kept' | 'skipped';

export interface ReaperDecision {
  pool: string;
  /** The cluster target the pool is in; absent for the worker's home cluster. */
  cluster?: string;
  action: ReaperAction;
  reason: string;
  idleSince?: string;
}

export interface ObjectDecision {
  /** "Kind namespace/name". */
  object: string;
  cluster?: string;
  action: 'deleted' | 'would-delete' | 'kept';
  reason: string;
}

export interface ReaperResult {
  checkedAt: string;
  dryRun: boolean;
  decisions: ReaperDecision[];
  /** The orphan sweep in the cluster: one entry per object a run labelled. */
  objects: ObjectDecision[];
}

const arm = perCluster<Pick<Activities, 'listManagedPools' | 'deleteNodePool' | 'scaleNodePoolToZero'>>(armOperations);
/** ConfigMap aks-finetune-idle-gpu-pools, in each cluster: pool name -> since when it has been idle. */
const stateName = 'idle-gpu-pools';
const kube = perCluster<Pick<Activities, 'gpuPodsOnPool' | 'readState' | 'writeState' | 'listRunObjects' | 'deleteRunObject'>>(apiCalls);
const lookups = proxyActivities<Pick<Activities, 'runsAmong' | 'listClusterTargets'>>(apiCalls);

interface ClusterListing {
  cluster?: string;
  pools: ManagedPool[];
  objects: RunObject[];
}

const describeRun = (owner: RecordedOwner) => `${owner.workflowId}${owner.runId ? ` (${owner.runId})` : ''}`;

export async function reapIdleGpuPools(input: ReaperInput = {}): Promise<ReaperResult> {
  const checked = validateReaperInput(input);
  if (!checked.ok) throw invalidInput('reapIdleGpuPools input', checked.problems);
  const dryRun = checked.value.dryRun ?? false;
  const defaultGraceMinutes = checked.value.defaultGraceMinutes ?? 5;
  // new Date() is deterministic in workflow code: the sandbox replays time from history.
  const now = new Date();
  // Reapers started before cluster targets look at the home cluster only.
  const clusters = patched('reap-every-cluster') ? [undefined, ...(await lookups.listClusterTargets()).targets.map((t) => t.name)] : [undefined];
  // Listed before Temporal is asked: whatever a run created, it created while it was open.
  const listings: ClusterListing[] = [];
  for (const cluster of clusters) listings.push({ cluster, pools: await arm(cluster).listManagedPools(), objects: await kube(cluster).listRunObjects() });
  const owners = listings
    .flatMap((l) => [...l.pools.map((p) => poolOwner(p.tags)), ...l.objects.map((o) => o.owner)])
    .map((o) => o.workflowId)
    .filter((id): id is string => id !== undefined);
  const runs: RunRecord[] = owners.length > 0 ? await lookups.runsAmong([...new Set(owners)]) : [];
  const result: ReaperResult = { checkedAt: now.toISOString(), dryRun, decisions: [], objects: [] };
  for (const listing of listings) await reapCluster(listing, runs, { now, dryRun, defaultGraceMinutes }, result);
  countReaperDecisions(result.decisions);
  return result;
}

/** One cluster's orphan sweep and pool decisions, into `result`. */
async function reapCluster(
  { cluster, pools, objects }: ClusterListing,
  runs: RunRecord[],
  { now, dryRun, defaultGraceMinutes }: { now: Date; dryRun: boolean; defaultGraceMinutes: number },
  result: ReaperResult,
): Promise<void> {
  const stored = await kube(cluster).readState(stateName);
  const idleSince: Record<string, string> = {};
  const inCluster = cluster ? { cluster } : {};
  const decide = (pool: string, action: ReaperAction, reason: string) => result.decisions.push({ pool, ...inCluster, action, reason, idleSince: idleSince[pool] });

  // The cluster first: an ended run's Jobs are what may still hold its pool.
  for (const object of objects) {
    const { remove, reason } = sweepDecision(object.kind, object.owner, runs);
    const what = { object: `${object.kind} ${object.namespace}/${object.name}`, ...inCluster };
    if (!remove) result.objects.push({ ...what, action: 'kept', reason });
    else if (dryRun) result.objects.push({ ...what, action: 'would-delete', reason });
    else if (await kube(cluster).deleteRunObject(object)) result.objects.push({ ...what, action: 'deleted', reason });
  }

  for (const pool of pools) {
    const owner = poolOwner(pool.tags);
    const run = owner.workflowId !== undefined ? runOf(owner, runs) : undefined;
    // An open run's pool is its own to release, whatever pods are on it right now (between
    // steps, while nodes come up, during a push that requests no GPU).
    if (run?.status === 'RUNNING') {
      decide(pool.name, 'kept', `its run ${describeRun(owner)} is open`);
      continue;
    }
    if (pool.count === 0) {
      decide(pool.name, 'skipped', 'no nodes');
      continue;
    }
    // A pool whose last operation failed (a create its run never saw end: the run was
    // terminated, capacity ran out) is garbage like any other; only one with an operation in
    // flight is left alone. (Patched: reaper runs in flight replay the old decision.)
    if (armOperationInProgress(pool.provisioningState) || (pool.provisioningState !== 'Succeeded' && !patched('release-failed-pools'))) {
      decide(pool.name, 'skipped', `an ARM operation is running (${pool.provisioningState})`);
      continue;
    }
    const gpuPods = await kube(cluster).gpuPodsOnPool(pool.name);
    if (gpuPods.length > 0) {
      decide(pool.name, 'busy', `GPU pods: ${gpuPods.join(', ')}`);
      continue;
    }
    // Idle grace counts only here: the pool's run has ended, or it has no owner.
    idleSince[pool.name] = stored[pool.name] ?? now.toISOString();
    const graceTag = Number(pool.tags[poolTags.idleGraceMinutes]);
    const graceMinutes = Number.isFinite(graceTag) && pool.tags[poolTags.idleGraceMinutes] !== undefined ? graceTag : defaultGraceMinutes;
    const idleMinutes = (now.getTime() - Date.parse(idleSince[pool.name]!)) / 60_000;
    if (idleMinutes < graceMinutes) {
      decide(pool.name, 'idle', `idle ${idleMinutes.toFixed(1)} of ${graceMinutes} minutes`);
      continue;
    }
    const whose = owner.workflowId !== undefined ? `its run ${describeRun(owner)} has ended` : 'no owner';
    const why = `${whose}, idle ${idleMinutes.toFixed(1)} minutes, grace ${graceMinutes}`;
    if (dryRun) {
      decide(pool.name, 'would-release', why);
      continue;
    }
    // Look again right before acting: a pod that arrived since wins.
    const arrived = await kube(cluster).gpuPodsOnPool(pool.name);
    if (arrived.length > 0) {
      delete idleSince[pool.name];
      decide(pool.name, 'busy', `GPU pods arrived: ${arrived.join(', ')}`);
      continue;
    }
    const policy = pool.tags[poolTags.releasePolicy] === 'scale-to-zero' ? 'scale-to-zero' : 'delete';
    // Only the pool as listed: if a run claimed it meanwhile, its eTag changed and ARM refuses.
    const guard = { ifMatch: pool.eTag };
    const released = policy === 'scale-to-zero' ? await arm(cluster).scaleNodePoolToZero(pool.name, guard) : await arm(cluster).deleteNodePool(pool.name, guard);
    if (released) decide(pool.name, 'released', `${policy === 'delete' ? 'deleted' : 'scaled to 0'}: ${why}`);
    else decide(pool.name, 'busy', 'claimed by a run meanwhile');
    delete idleSince[pool.name];
  }

  if (!dryRun) await kube(cluster).writeState(stateName, idleSince);
}
