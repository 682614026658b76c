// ARM tags on the node pools this product creates. The idle-GPU reaper acts only on pools
// tagged managed, and reads the owner run, release policy and idle grace from the tags.
import type { ReleasePolicy } from './fine-tune-request.js';
import { recordedOwner, type RecordedOwner, type RunOwner, runOwnerKeys } from './run-identity.js';

export const poolTags = {
  managed: 'aks-finetune.io/managed',
  workflowId: runOwnerKeys.workflowId,
  runId: runOwnerKeys.runId,
  releasePolicy: 'aks-finetune.io/release-policy',
  idleGraceMinutes: 'aks-finetune.io/idle-grace-minutes',
} as const;

/** Node labels of the GPU pools runs create: the worker's node cache watches these nodes (activities/kubernetes/object-cache.ts). */
export const gpuNodeLabels = { 'aks-finetune.io/purpose': 'fine-tuning' } as const;

/** The owner is one run, or a workflow id alone (a long-lived workflow, e.g. an endpoint, whose pool outlives continue-as-new). */
export function managedPoolTags(owner: Pick<RunOwner, 'workflowId'> & Partial<RunOwner>, release: { policy: ReleasePolicy; idleGraceMinutes?: number }): Record<string, string> {
  return {
    [poolTags.managed]: 'true',
    [poolTags.workflowId]: owner.workflowId,
    ...(owner.runId !== undefined ? { [poolTags.runId]: owner.runId } : {}),
    [poolTags.releasePolicy]: release.policy,
    ...(release.idleGraceMinutes !== undefined ? { [poolTags.idleGraceMinutes]: String(release.idleGraceMinutes) } : {}),
  };
}

/** The run a pool's tags name as its owner. */
export const poolOwner = (tags: Record<string, string> | undefined): RecordedOwner => recordedOwner(tags, tags);
