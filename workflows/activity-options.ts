// Activity options, one block per kind of work, shared by the workflows.
//
// Every block has a heartbeat timeout of 20 s, and every activity heartbeats at least every 5 s
// while it runs (activities/liveness.ts; the worker sends one at most every 5 s,
// workers/worker.ts): a worker that dies with an activity in flight is noticed within 20 s,
// and the activity is retried on another worker after its retry interval, so a run waits at
// most about half a minute, not the 2 minutes a heartbeat timeout was before (docs/chaos.md, "Recovery
// after a worker is lost"). The start-to-close timeouts bound the work itself.
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { failureTypes } from '../domain/failure-types.js';

/** How long an activity may go without a heartbeat before Temporal retries it elsewhere. */
export const livenessTimeout = '20 seconds';

/**
 * ARM operations: node pools take minutes; quota, conflicts and bad specs will not heal by
 * retrying. A cancelled run waits for the operation in flight to stop before its cleanup looks
 * at what exists, so a create or a claim cannot land after the cleanup has run.
 */
export const armOperations: ActivityOptions = {
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  startToCloseTimeout: '45 minutes',
  heartbeatTimeout: livenessTimeout,
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: 8,
    nonRetryableErrorTypes: [failureTypes.gpuQuotaExceeded, failureTypes.gpuSizeNotOffered, failureTypes.nodePoolConflict, failureTypes.invalidNodePoolSpec],
  },
};

/**
 * A pool request that is one attempt among the run's GPU candidates: no capacity here is the
 * run's cue to try the next candidate (domain/gpu-candidates.ts), so it is not retried in place.
 * Throttling, 5xx and lost workers are retried as for any ARM operation.
 */
export const armCapacityAttempts: ActivityOptions = {
  ...armOperations,
  retry: { ...armOperations.retry, nonRetryableErrorTypes: [...armOperations.retry!.nonRetryableErrorTypes!, failureTypes.gpuCapacityUnavailable] },
};

/** Short Kubernetes and registry API calls. */
export const apiCalls: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: livenessTimeout,
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
  heartbeatTimeout: livenessTimeout,
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

/**
 * Waiting until an endpoint's replicas have applied a desired state. An adapter a router could
 * not load (a rank over max-lora-rank, another base model) will not load on a retry either.
 */
export const replicaConvergence: ActivityOptions = {
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: livenessTimeout,
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [failureTypes.adapterLoadFailed],
  },
};

/**
 * Updates a promotion sends to its endpoint's workflow: a load waits until every replica serves
 * the adapter, and may first wake the endpoint (a node pool to create), so minutes. What the
 * endpoint refuses (its validator, a replica's load error) does not heal by retrying.
 */
export const endpointUpdates: ActivityOptions = {
  startToCloseTimeout: '45 minutes',
  heartbeatTimeout: livenessTimeout,
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [failureTypes.invalidRequest, failureTypes.endpointRefused],
  },
};

/** A prompt suite through an endpoint (a request per case and model), or one reading of a watch window. */
export const evaluations: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: livenessTimeout,
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
};
