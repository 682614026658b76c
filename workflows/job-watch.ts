// Watching a run's Job without holding anything: short checks between durable timers that
// double from pollIntervalSeconds to 10 minutes, cut short by the jobFinished signal. Every wait
// is bounded: a pod that cannot start fails the run after the plan's podStartTimeoutMinutes with
// the pod's own reason, a lost node ends the watch at once, and the Job itself has a deadline.
import { ApplicationFailure, condition } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import { failureTypes } from '../domain/failure-types.js';
import { apiCalls } from './activity-options.js';
import { perCluster } from './cluster-activities.js';
import type { PlannedRun } from './fine-tune-run.js';

const kube = perCluster<Pick<Activities, 'checkJob'>>(apiCalls);

/** Checks of a running Job back off to this: the jobFinished signal, not polling, ends the wait. */
export const maxCheckIntervalMs = 10 * 60_000;

export type JobOutcome =
  | { state: 'succeeded' | 'failed'; progress: JobProgress }
  /** A node went away under the Job's pod: the step may start again on fresh capacity. */
  | { state: 'node-lost'; progress: JobProgress; reason: string };

export interface WatchOptions {
  /** What runs in the Job, for messages: "trainer", "pusher". */
  what: string;
  onProgress: (progress: JobProgress) => void;
  /** When the next check must happen at the latest (a budget running out), in ms from now. */
  checkWithinMs?: () => number | undefined;
  /** One look at the Job (default: checkJob); `fresh` once the jobFinished signal came, so the look skips the worker's cache. */
  check?: (fresh: boolean) => Promise<JobProgress>;
  /** The wait before the next check, given the last one (default: doubling up to maxCheckIntervalMs). */
  nextIntervalMs?: (intervalMs: number) => number;
}

/** A pod is stuck when the Job has none yet, or its latest pod reports a problem (unschedulable, image pull, crash loop). */
const isStuck = (p: JobProgress) => p.state !== 'succeeded' && p.state !== 'failed' && (p.attempts === 0 || p.problem !== undefined);

export async function watchJob(run: PlannedRun, job: string, options: WatchOptions): Promise<JobOutcome> {
  const { plan, finishedJobs } = run;
  const podStartTimeoutMs = plan.podStartTimeoutMinutes * 60_000;
  let stuckSinceMs: number | undefined;
  const check = options.check ?? ((fresh: boolean) => kube(run.pool.cluster).checkJob(plan.namespace, job, fresh));
  const nextIntervalMs = options.nextIntervalMs ?? ((ms: number) => Math.min(ms * 2, maxCheckIntervalMs));
  for (let intervalMs = plan.pollIntervalSeconds * 1000; ; intervalMs = nextIntervalMs(intervalMs)) {
    const progress = await check(finishedJobs.has(job));
    options.onProgress(progress);
    if (progress.state === 'succeeded') return { state: 'succeeded', progress };
    if (progress.nodeLost) return { state: 'node-lost', progress, reason: progress.nodeLost };
    if (progress.state === 'failed') return { state: 'failed', progress };

    // Date.now() is deterministic in workflow code: the sandbox replays time from history.
    const now = Date.now();
    stuckSinceMs = isStuck(progress) ? (stuckSinceMs ?? now) : undefined;
    if (stuckSinceMs !== undefined && now - stuckSinceMs >= podStartTimeoutMs) {
      throw ApplicationFailure.nonRetryable(
        `The ${options.what} pod of Job ${job} has not started after ${plan.podStartTimeoutMinutes} minutes: ` +
          `${progress.problem ?? 'no pod was created (see the Job\'s events)'}`,
        failureTypes.podNotStarting,
        progress,
      );
    }
    const bounds = [intervalMs, options.checkWithinMs?.() ?? Infinity, stuckSinceMs !== undefined ? stuckSinceMs + podStartTimeoutMs - now : Infinity];
    await condition(() => finishedJobs.has(job), Math.max(Math.min(...bounds), 1000));
  }
}
