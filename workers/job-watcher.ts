// One watch on the Jobs of all runs, shared by every run this worker orchestrates: when a
// Job completes or fails, the run that owns it (its run label names the workflow) gets the
// jobFinished signal at once. Runs still check on a slow, growing timer in case a signal is
// missed, so waiting costs neither an open watch nor an activity slot per run, and a run's
// Kubernetes calls grow with the logarithm of training time, not with training time.
import { type KubeConfig, type V1Job, Watch } from '@kubernetes/client-node';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { runIdLabel, temporalRunIdLabel, workflowIdAnnotation } from '../activities/kubernetes/labels.js';
import { jobFinishedSignal } from '../workflows/fine-tune.js';

export interface JobWatcher {
  stop(): void;
}

const finished = (job: V1Job) => job.status?.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') ?? false;

export function startJobWatcher(kubeConfig: KubeConfig, client: Client, log: (line: string) => void = () => undefined): JobWatcher {
  const watch = new Watch(kubeConfig);
  const signalled = new Set<string>();
  let current: AbortController | undefined;
  let stopped = false;

  const onEvent = (phase: string, job: V1Job) => {
    const runId = job.metadata?.annotations?.[workflowIdAnnotation] ?? job.metadata?.labels?.[runIdLabel];
    /** The Job's own run: a Job an earlier run under the same workflow id left never signals the new run. */
    const temporalRunId = job.metadata?.labels?.[temporalRunIdLabel];
    const uid = job.metadata?.uid ?? '';
    if (phase === 'DELETED') {
      signalled.delete(uid);
      return;
    }
    if (!runId || !finished(job) || signalled.has(uid)) return;
    signalled.add(uid);
    const target = { namespace: job.metadata!.namespace!, name: job.metadata!.name! };
    client.workflow
      .getHandle(runId, temporalRunId)
      .signal(jobFinishedSignal, target)
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) {
          signalled.delete(uid); // try again when the Job is seen next
          log(`job watcher: signalling ${runId} failed: ${String(err)}`);
        }
      });
  };

  const connect = async (): Promise<void> => {
    if (stopped) return;
    try {
      // Without a resourceVersion the watch starts with every existing Job: nothing finished
      // while the worker was away goes unnoticed.
      current = await watch.watch('/apis/batch/v1/jobs', { labelSelector: runIdLabel }, onEvent, () => {
        if (!stopped) setTimeout(() => void connect(), 1000);
      });
    } catch (err) {
      log(`job watcher: ${String(err)}; reconnecting`);
      setTimeout(() => void connect(), 2000);
    }
  };
  void connect();
  return {
    stop() {
      stopped = true;
      current?.abort();
    },
  };
}
