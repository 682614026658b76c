// Labels on everything the pipeline creates in the cluster.

/** Ties every object of a run to the workflow that created it. */
export const runIdLabel = 'aks-finetune.io/run';
/** The owning workflow's id on Jobs, where the label can only carry a cleaned form of it. */
export const workflowIdAnnotation = 'aks-finetune.io/workflow-id';
/** What a pod does: the local stack's gpu-simulator acts on these roles. */
export const roleLabel = 'aks-finetune.io/role';
export const roles = { trainer: 'trainer', adapterPusher: 'adapter-pusher', inference: 'inference' } as const;
/** The base model preset a pod works with. */
export const modelLabel = 'aks-finetune.io/model';
export const managedBy = { 'app.kubernetes.io/managed-by': 'aks-finetune' } as const;
