// How workflows take their input: a Workspace given as text is parsed by an activity (workflow
// code never parses text), and a bad input fails the run at once, before anything is created.
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { failureTypes } from '../domain/failure-types.js';
import { apiCalls } from './activity-options.js';

const parsing = proxyActivities<Pick<Activities, 'parseWorkspaceText'>>(apiCalls);

/** The request with its `workspace` text, if any, parsed into an object; unreadable text fails the run as invalid. */
export async function withParsedWorkspace<T>(request: T, what: string): Promise<T> {
  const workspace = (request as { workspace?: unknown } | undefined)?.workspace;
  if (typeof workspace !== 'string') return request;
  return { ...request, workspace: await checkedInActivity(what, parsing.parseWorkspaceText(workspace)) };
}

/** The result of a check an activity makes on the input; its InvalidRequest fails the run as invalid input. */
export async function checkedInActivity<T>(what: string, check: Promise<T>): Promise<T> {
  try {
    return await check;
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === failureTypes.invalidRequest) throw invalidInput(what, problemsOf(cause));
    throw err;
  }
}

/** An activity's InvalidRequest problems: its details' list when it gave one (invalidRequestFailure), else its message. */
function problemsOf(failure: ApplicationFailure): string[] {
  const problems = (failure.details?.[0] as { problems?: unknown } | undefined)?.problems;
  return Array.isArray(problems) && problems.every((p) => typeof p === 'string') ? problems : [failure.message];
}

/** The non-retryable InvalidRequest failure for `what` (e.g. "fineTune request"), listing every problem. */
export function invalidInput(what: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `Invalid ${what} (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${problems.join('; ')}`,
    failureTypes.invalidRequest,
    { problems },
  );
}
