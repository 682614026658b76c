// What a node pool's provisioningState says about ARM operations on it.

/** AKS's provisioning states while an operation on the pool runs; Succeeded, Failed and Canceled are ends. */
const operationInProgressStates = new Set(['Creating', 'Updating', 'Scaling', 'Upgrading', 'Deleting']);

/** Whether an ARM operation on the pool is running now (so acting on it would conflict or preempt it). */
export const armOperationInProgress = (provisioningState: string | undefined): boolean => operationInProgressStates.has(provisioningState ?? '');
