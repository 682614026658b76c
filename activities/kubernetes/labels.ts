/** The label that ties every object of a run to the workflow that created it. */
export const runIdLabel = 'aks-finetune.io/run';
