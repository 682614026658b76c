// ApplicationFailure types that activities raise and workflows list as non-retryable.
// Kept here, free of I/O, so workflow code can import them.

export const failureTypes = {
  invalidRequest: 'InvalidRequest',
  gpuQuotaExceeded: 'GpuQuotaExceeded',
  gpuCapacityUnavailable: 'GpuCapacityUnavailable',
  /** Azure does not offer the VM size in the region (or zone) to this subscription: another candidate may be. */
  gpuSizeNotOffered: 'GpuSizeNotOffered',
  nodePoolConflict: 'NodePoolConflict',
  invalidNodePoolSpec: 'InvalidNodePoolSpec',
  gpuNotAllocatable: 'GpuNotAllocatable',
  jobFailed: 'JobFailed',
  nameTaken: 'NameTaken',
  trainingFailed: 'TrainingFailed',
  /** The training loss became NaN, infinite or exploded: the run stopped instead of paying for the remaining steps. */
  trainingDiverged: 'TrainingDiverged',
  pushFailed: 'AdapterPushFailed',
  inferenceUnhealthy: 'InferenceUnhealthy',
  budgetExceeded: 'BudgetExceeded',
  /** A trainer or pusher pod could not be scheduled, pull its image, or kept crashing, for too long. */
  podNotStarting: 'PodNotStarting',
  /** Nodes went away under a step more often than the run may recover from. */
  nodeLost: 'NodeLost',
  /** An endpoint's workflow refused an Update (its validator, or a replica that could not load the adapter). */
  endpointRefused: 'EndpointRefused',
  /** An endpoint replica's adapter-router could not pull, check or load an adapter (e.g. a rank over max-lora-rank). */
  adapterLoadFailed: 'AdapterLoadFailed',
  /** Tearing something down left parts of it (each part's error in the message); trying again may finish it. */
  teardownIncomplete: 'TeardownIncomplete',
  /** A bug in workflow code (or a value validation let through): the run fails after its cleanup instead of retrying forever. */
  workflowCodeError: 'WorkflowCodeError',
} as const;
