// ARM tags on the node pools this product creates. The idle-GPU reaper acts only on pools
// tagged managed, and reads the owner run, release policy and idle grace from the tags.
import type { ReleasePolicy } from './fine-tune-request.js';

export const poolTags = {
  managed: 'aks-finetune.io/managed',
  workflowId: 'aks-finetune.io/workflow-id',
  releasePolicy: 'aks-finetune.io/release-policy',
  idleGraceMinutes: 'aks-finetune.io/idle-grace-minutes',
} as const;

export function managedPoolTags(workflowId: string, release: { policy: ReleasePolicy; idleGraceMinutes?: number }): Record<string, string> {
  return {
    [poolTags.managed]: 'true',
    [poolTags.workflowId]: workflowId,
    [poolTags.releasePolicy]: release.policy,
    ...(release.idleGraceMinutes !== undefined ? { [poolTags.idleGraceMinutes]: String(release.idleGraceMinutes) } : {}),
  };
}
