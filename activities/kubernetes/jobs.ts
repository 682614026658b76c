// Kubernetes Jobs: created under a deterministic name so a retried activity adopts the Job it
// created before instead of starting a second one.
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { createOrAdopt, createOrAdoptOwned, deleteIfPresent } from './api-errors.js';
import { type GpuCheckJobParams, gpuCheckJob } from './gpu-check-job.js';
import { runIdLabel } from './labels.js';

export interface JobOutcome {
  name: string;
  succeeded: boolean;
  /** Why the Job failed, from its condition and its pod's termination state. */
  reason?: string;
  node?: string;
}

/** Creates the Job, or adopts the one this run (its run label) created earlier. */
export async function ensureJob(batch: BatchV1Api, namespace: string, job: V1Job): Promise<{ adopted: boolean }> {
  const name = job.metadata?.name ?? '';
  const { adopted } = await createOrAdoptOwned(
    `Job ${namespace}/${name}`,
    job.metadata?.labels?.[runIdLabel] ?? '',
    () => batch.createNamespacedJob({ namespace, body: job }),
    () => batch.readNamespacedJob({ name, namespace }),
  );
  return { adopted };
}

export function createJobActivities({ kubeConfig, pollIntervalMs }: { kubeConfig: KubeConfig; pollIntervalMs: number }) {
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);

  async function outcome(namespace: string, job: V1Job): Promise<JobOutcome | undefined> {
    const name = job.metadata?.name ?? '';
    const conditions = job.status?.conditions ?? [];
    const done = conditions.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    if (!done) return undefined;
    const { items: pods } = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` });
    const pod = pods.at(-1);
    const terminated = pod?.status?.containerStatuses?.find((s) => s.state?.terminated)?.state?.terminated;
    return {
      name,
      succeeded: done.type === 'Complete',
      reason: done.type === 'Failed' ? [done.reason, done.message, terminated?.reason].filter(Boolean).join(': ') : undefined,
      node: pod?.spec?.nodeName,
    };
  }

  return {
    async ensureNamespace(namespace: string): Promise<void> {
      await createOrAdopt(
        () => core.createNamespace({ body: { metadata: { name: namespace } } }),
        () => core.readNamespace({ name: namespace }),
      );
    },

    async startGpuCheckJob(namespace: string, params: GpuCheckJobParams): Promise<{ adopted: boolean }> {
      return ensureJob(batch, namespace, gpuCheckJob(params));
    },

    /** Returns when the Job completes; fails (non-retryable) with the reason when it fails. */
    async waitForJob(namespace: string, name: string): Promise<JobOutcome> {
      const ctx = Context.current();
      for (;;) {
        const job = await batch.readNamespacedJob({ name, namespace });
        const result = await outcome(namespace, job);
        if (result?.succeeded) return result;
        if (result) throw ApplicationFailure.nonRetryable(`Job ${namespace}/${name} failed: ${result.reason}`, failureTypes.jobFailed, result);
        ctx.heartbeat({ step: 'waiting for job', job: name, active: job.status?.active ?? 0 });
        await ctx.sleep(pollIntervalMs);
      }
    },

    /** Deletes the Job and its pods; returns whether it existed. */
    async deleteJob(namespace: string, name: string): Promise<boolean> {
      return deleteIfPresent(() => batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' }));
    },
  };
}
