// Activity options, one block per kind of work, shared by the workflows.
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { failureTypes } from '../domain/failure-types.js';

/**
 * ARM operations: node pools take minutes; quota, conflicts and bad specs will not heal by
 * retrying. A cancelled run waits for the operation in flight to stop before its cleanup looks
 * at what exists, so a create or a claim cannot land after the cleanup has run.
 */
export const armOperations: ActivityOptions = {
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  startToCloseTimeout: '45 minutes',
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: 8,
    nonRetryableErrorTypes: [failureTypes.gpuQuotaExceeded, failureTypes.nodePoolConflict, failureTypes.invalidNodePoolSpec],
  },
};

/** Short Kubernetes and registry API calls. */
export const apiCalls: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [failureTypes.nameTaken, failureTypes.invalidRequest, failureTypes.pushFailed],
  },
};

/** Waiting inside an activity on the cluster: long, heartbeating, restarted from scratch on retry (they only read). */
export const clusterWaits: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [failureTypes.jobFailed, failureTypes.gpuNotAllocatable],
  },
};

/** Asking a freshly rolled-out server whether it serves the adapter: it may need a while to load. */
export const smokeChecks: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 1.5, maximumInterval: '30 seconds', maximumAttempts: 20 },
};
