// Why a run failed, as its user needs it: the ARM, Kubernetes or validation message with its
// advice, not Temporal's wrappers ("Workflow execution failed", "Activity task failed",
// "Child Workflow execution failed"). The CLI and the typed client show this; the run's own
// status.error carries the same message.
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/common';

export interface RunFailure {
  /** The ApplicationFailure's type (e.g. GpuQuotaExceeded, TrainingFailed), else the failure's class (CancelledFailure, TerminatedFailure, TimeoutFailure). */
  type?: string;
  /** What went wrong and, where the product knows it, what to change. */
  message: string;
}

/** The first failure under the wrappers: a run's error as it raised it (with a cleanup failure, that one, which names the original). */
export function runFailure(err: unknown): RunFailure {
  let failure = err;
  while ((failure instanceof WorkflowFailedError || failure instanceof ActivityFailure || failure instanceof ChildWorkflowFailure) && failure.cause) {
    failure = failure.cause;
  }
  if (!(failure instanceof Error)) return { message: String(failure) };
  const type = failure instanceof ApplicationFailure ? (failure.type ?? undefined) : failure.name;
  return { type, message: failure.message };
}

export const describeRunFailure = ({ type, message }: RunFailure): string => (type ? `${type}: ${message}` : message);
