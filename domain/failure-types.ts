// ApplicationFailure types that activities raise and workflows list as non-retryable.
// Kept here, free of I/O, so workflow code can import them.

export const failureTypes = {
  invalidRequest: 'InvalidRequest',
  gpuQuotaExceeded: 'GpuQuotaExceeded',
  gpuCapacityUnavailable: 'GpuCapacityUnavailable',
  nodePoolConflict: 'NodePoolConflict',
  invalidNodePoolSpec: 'InvalidNodePoolSpec',
  gpuNotAllocatable: 'GpuNotAllocatable',
  jobFailed: 'JobFailed',
  nameTaken: 'NameTaken',
  trainingFailed: 'TrainingFailed',
  pushFailed: 'AdapterPushFailed',
  inferenceUnhealthy: 'InferenceUnhealthy',
  budgetExceeded: 'BudgetExceeded',
} as const;
