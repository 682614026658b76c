// Labels on everything the pipeline creates in the cluster.
import { runLabelValue } from '../../domain/hash.js';
import { runOwnerKeys } from '../../domain/run-identity.js';

/** An owner as objects record it: one run, or (a long-lived workflow that continues-as-new, e.g. an endpoint) a workflow id only. */
export interface ObjectOwner {
  workflowId: string;
  runId?: string;
}

/** Ties every object of a run to the workflow that created it (a label-safe form of the workflow id). */
export const runIdLabel = 'aks-finetune.io/run';
/** The owning workflow's id, exactly (a label can only carry a cleaned form of it). */
export const workflowIdAnnotation = runOwnerKeys.workflowId;
/** The owning run's Temporal run id: tells apart the runs of one workflow id. */
export const temporalRunIdLabel = runOwnerKeys.runId;
/** What a pod does: the local stack's gpu-simulator acts on these roles. */
export const roleLabel = 'aks-finetune.io/role';
export const roles = { trainer: 'trainer', adapterPusher: 'adapter-pusher', adapterCopier: 'adapter-copier', inference: 'inference' } as const;
/** The base model preset a pod works with. */
export const modelLabel = 'aks-finetune.io/model';
export const managedBy = { 'app.kubernetes.io/managed-by': 'aks-finetune' } as const;

/** The labels that name the owning run: its workflow (label-safe) and its run id, when the owner is one run. */
export const runLabels = (owner: ObjectOwner): Record<string, string> => ({
  [runIdLabel]: runLabelValue(owner.workflowId),
  ...(owner.runId === undefined ? {} : { [temporalRunIdLabel]: owner.runId }),
});
/** Labels and annotations of an object a run (or a workflow id, across its runs) owns. */
export const ownedMetadata = (owner: ObjectOwner, extraLabels: Record<string, string> = {}) => ({
  labels: { ...runLabels(owner), ...extraLabels, ...managedBy },
  annotations: { [workflowIdAnnotation]: owner.workflowId },
});
/** The label selector of one run's objects. */
export const runSelector = (owner: ObjectOwner): string =>
  Object.entries(runLabels(owner))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
