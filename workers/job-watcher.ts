// The Jobs of all runs, as the worker's object cache sees them (one watch, shared by every run
// this worker orchestrates): when a Job completes or fails, the run that owns it (its run label
// names the workflow) gets the jobFinished signal at once. Runs still check on a slow, growing
// timer in case a signal is missed, so waiting costs neither an open watch nor an activity slot
// per run, and a run's Kubernetes calls grow with the logarithm of training time, not with it.
import type { KubeConfig, V1Job } from '@kubernetes/client-node';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { runIdLabel, temporalRunIdLabel, workflowIdAnnotation } from '../activities/kubernetes/labels.js';
import { type ClusterObjects, startClusterObjects } from '../activities/kubernetes/object-cache.js';
import { jobFinishedSignal } from '../workflows/fine-tune.js';

const finished = (job: V1Job) => job.status?.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') ?? false;

/**
 * Signals each finished Job's run once. The cache's first list, and each resync, hand it every
 * existing Job: nothing that finished while the worker was away goes unnoticed.
 */
function watchJobs(objects: ClusterObjects, client: Client, log: (line: string) => void = () => undefined): void {
  const signalled = new Set<string>();
  objects.onJob((job, deleted) => {
    const runId = job.metadata?.annotations?.[workflowIdAnnotation] ?? job.metadata?.labels?.[runIdLabel];
    /** The Job's own run: a Job an earlier run under the same workflow id left never signals the new run. */
    const temporalRunId = job.metadata?.labels?.[temporalRunIdLabel];
    const uid = job.metadata?.uid ?? '';
    if (deleted) {
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
  });
}

/** The worker's object cache of one cluster, with its Job watcher: pass it to the cluster's activities; stop() ends both. */
export function startJobWatcher(kubeConfig: KubeConfig, client: Client, log: (line: string) => void = () => undefined): ClusterObjects {
  const objects = startClusterObjects(kubeConfig, log);
  watchJobs(objects, client, log);
  return objects;
}
