// The innermost cause of a failure: the ARM, Kubernetes, registry or validation message, not
// "Activity task failed". Workflows report it in their status and wrap their own failures with it.
import { ApplicationFailure, TemporalFailure } from '@temporalio/workflow';

/** The innermost cause: the ARM, Kubernetes or validation message, not "Activity task failed". */
function rootCause(err: unknown): unknown {
  let cause = err;
  while (cause instanceof TemporalFailure && cause.cause) cause = cause.cause;
  return cause;
}

export const rootMessage = (err: unknown): string => {
  const cause = rootCause(err);
  return cause instanceof Error ? cause.message : String(cause);
};

export const rootType = (err: unknown): string | undefined => {
  const cause = rootCause(err);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
};
