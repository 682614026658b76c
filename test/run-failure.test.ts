// The root cause under Temporal's wrappers, for chains the CLI test does not run end to end:
// a retrain run whose fineTune child failed, a cleanup failure added to the original, a
// terminated run. The failures are the SDK's own classes, chained as the client receives them.
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, RetryState, TerminatedFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { describeRunFailure, runFailure } from '../client/run-failure.js';

const oom = ApplicationFailure.nonRetryable('Training Job r-train failed: OOMKilled. The trainer ran out of memory: use method qlora', 'TrainingFailed');
const activity = (cause: Error) => new ActivityFailure('Activity task failed', 'startTuningJob', '7', RetryState.NON_RETRYABLE_FAILURE, 'worker', cause);
const workflowFailed = (cause: Error) => new WorkflowFailedError('Workflow execution failed', cause, RetryState.NON_RETRYABLE_FAILURE);

describe('runFailure', () => {
  it("finds a retrain child's activity failure under the child and activity wrappers", () => {
    const child = new ChildWorkflowFailure('default', { workflowId: 'retrain-x-fine-tune', runId: 'r' }, 'fineTune', RetryState.NON_RETRYABLE_FAILURE, activity(oom));
    expect(runFailure(workflowFailed(child))).toEqual({ type: 'TrainingFailed', message: oom.message });
    expect(describeRunFailure(runFailure(workflowFailed(child)))).toBe(`TrainingFailed: ${oom.message}`);
  });

  it('keeps a cleanup failure that the run added to its original error, and the original type', () => {
    const withCleanup = ApplicationFailure.create({ message: `${oom.message} (cleanup also failed: release GPU pool: 409)`, type: 'TrainingFailed', nonRetryable: true, cause: activity(oom) });
    expect(runFailure(workflowFailed(withCleanup))).toEqual({ type: 'TrainingFailed', message: withCleanup.message });
  });

  it("names a failure that is not an application's by its class", () => {
    expect(runFailure(workflowFailed(new TerminatedFailure('killed by an operator')))).toEqual({ type: 'TerminatedFailure', message: 'killed by an operator' });
  });
});
