// reapIdleGpuPools: run by a Temporal Schedule (every minute by default). For each node pool
// this product manages (tag aks-finetune.io/managed=true; no other pool is ever touched) it
// decides whether the pool is idle (no pod holding GPUs on its nodes, DaemonSets aside),
// remembers since when, and after the pool's grace period releases it per its release policy.
// A pool whose owning run has ended is released as soon as it is idle: that is the orphan sweep
// for runs whose own cleanup never ran. The pool is checked again right before it is released,
// so a pod that just arrived wins. With dryRun it only reports.
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { poolTags } from '../domain/pool-tags.js';
import { type ReaperInput, validateReaperInput } from '../domain/workflow-inputs.js';
import { apiCalls, armOperations } from './activity-options.js';
import { invalidInput } from './input-checks.js';

export type { ReaperInput } from '../domain/workflow-inputs.js';

export type ReaperAction = 'released' | 'would-release' | 'idle' | 'busy' | 'skipped';

export interface ReaperDecision {
  pool: string;
  action: ReaperAction;
  reason: string;
  idleSince?: string;
}

export interface ReaperResult {
  checkedAt: string;
  dryRun: boolean;
  decisions: ReaperDecision[];
}

const arm = proxyActivities<Pick<Activities, 'listManagedPools' | 'deleteNodePool' | 'scaleNodePoolToZero'>>(armOperations);
/** ConfigMap aks-finetune-idle-gpu-pools: pool name -> since when it has been idle. */
const stateName = 'idle-gpu-pools';
const kube = proxyActivities<Pick<Activities, 'gpuPodsOnPool' | 'readState' | 'writeState' | 'runIsOpen'>>(apiCalls);

export async function reapIdleGpuPools(input: ReaperInput = {}): Promise<ReaperResult> {
  const checked = validateReaperInput(input);
  if (!checked.ok) throw invalidInput('reapIdleGpuPools input', checked.problems);
  const dryRun = checked.value.dryRun ?? false;
  const defaultGraceMinutes = checked.value.defaultGraceMinutes ?? 5;
  // new Date() is deterministic in workflow code: the sandbox replays time from history.
  const now = new Date();
  const pools = await arm.listManagedPools();
  const stored = await kube.readState(stateName);
  const idleSince: Record<string, string> = {};
  const decisions: ReaperDecision[] = [];
  const decide = (pool: string, action: ReaperAction, reason: string) => decisions.push({ pool, action, reason, idleSince: idleSince[pool] });

  for (const pool of pools) {
    if (pool.count === 0) {
      decide(pool.name, 'skipped', 'no nodes');
      continue;
    }
    if (pool.provisioningState !== 'Succeeded') {
      decide(pool.name, 'skipped', `an ARM operation is running (${pool.provisioningState})`);
      continue;
    }
    const gpuPods = await kube.gpuPodsOnPool(pool.name);
    if (gpuPods.length > 0) {
      decide(pool.name, 'busy', `GPU pods: ${gpuPods.join(', ')}`);
      continue;
    }
    idleSince[pool.name] = stored[pool.name] ?? now.toISOString();
    const owner = pool.tags[poolTags.workflowId];
    const ownerEnded = owner !== undefined && owner !== workflowInfo().workflowId && !(await kube.runIsOpen(owner));
    const graceTag = Number(pool.tags[poolTags.idleGraceMinutes]);
    const graceMinutes = Number.isFinite(graceTag) && pool.tags[poolTags.idleGraceMinutes] !== undefined ? graceTag : defaultGraceMinutes;
    const idleMinutes = (now.getTime() - Date.parse(idleSince[pool.name]!)) / 60_000;
    if (!ownerEnded && idleMinutes < graceMinutes) {
      decide(pool.name, 'idle', `idle ${idleMinutes.toFixed(1)} of ${graceMinutes} minutes`);
      continue;
    }
    const why = ownerEnded ? `its run ${owner} has ended` : `idle ${idleMinutes.toFixed(1)} minutes, grace ${graceMinutes}`;
    if (dryRun) {
      decide(pool.name, 'would-release', why);
      continue;
    }
    // Look again right before acting: a pod that arrived since wins.
    const arrived = await kube.gpuPodsOnPool(pool.name);
    if (arrived.length > 0) {
      delete idleSince[pool.name];
      decide(pool.name, 'busy', `GPU pods arrived: ${arrived.join(', ')}`);
      continue;
    }
    const policy = pool.tags[poolTags.releasePolicy] === 'scale-to-zero' ? 'scale-to-zero' : 'delete';
    // Only the pool as listed: if a run claimed it meanwhile, its eTag changed and ARM refuses.
    const guard = { ifMatch: pool.eTag };
    const released = policy === 'scale-to-zero' ? await arm.scaleNodePoolToZero(pool.name, guard) : await arm.deleteNodePool(pool.name, guard);
    if (released) decide(pool.name, 'released', `${policy === 'delete' ? 'deleted' : 'scaled to 0'}: ${why}`);
    else decide(pool.name, 'busy', 'claimed by a run meanwhile');
    delete idleSince[pool.name];
  }
  if (!dryRun) await kube.writeState(stateName, idleSince);
  return { checkedAt: now.toISOString(), dryRun, decisions };
}
