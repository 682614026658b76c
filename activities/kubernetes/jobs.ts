// Kubernetes Jobs: created under a deterministic name so a retried activity adopts the Job it
// created before instead of starting a second one.
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { createOrAdoptOwned, deleteIfPresent, ensureNamespaceExists, hasStatus, objectOwner } from './api-errors.js';
import { type GpuCheckJobParams, gpuCheckJob } from './gpu-check-job.js';
import type { ClusterObjects } from './object-cache.js';
import { agentPoolLabel } from './placement.js';

export interface JobProgress {
  state: 'pending' | 'running' | 'succeeded' | 'failed';
  podPhase?: string;
  node?: string;
  restarts: number;
  /** Pods the Job has started so far (1 unless a failed pod was retried). */
  attempts: number;
  startedAt?: string;
  /** When the Job completed or failed. */
  finishedAt?: string;
  /** Why it failed: the Job's condition and the pod's termination reason and message. */
  reason?: string;
  /** Why the latest pod is not making progress, in the pod's own words: unschedulable, image pull, crash loop. */
  problem?: string;
  /** Set when a pod of the Job lost its node (spot eviction, pool deleted or scaled down): what happened. */
  nodeLost?: string;
}

function terminationReason(pod: V1Pod | undefined): string | undefined {
  const terminated = [...(pod?.status?.initContainerStatuses ?? []), ...(pod?.status?.containerStatuses ?? [])]
    .map((s) => s.state?.terminated ?? s.lastState?.terminated)
    .find((t) => t && t.exitCode !== 0);
  if (!terminated) return pod?.status?.reason;
  return [terminated.reason, terminated.message?.trim(), `exit code ${terminated.exitCode}`].filter(Boolean).join(': ');
}

/** Container waiting reasons that are part of a normal start, not a problem. */
const startingReasons = new Set(['ContainerCreating', 'PodInitializing']);

/** Why a pod cannot start or keeps failing: not schedulable, image not pullable, crash-looping, bad config. */
export function podProblem(pod: V1Pod | undefined): string | undefined {
  if (!pod || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return undefined;
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) return [unscheduled.reason ?? 'Unschedulable', unscheduled.message].filter(Boolean).join(': ');
  const waiting = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
    .map((s) => ({ container: s.name, waiting: s.state?.waiting }))
    .find((s) => s.waiting?.reason && !startingReasons.has(s.waiting.reason));
  if (waiting) return [`${waiting.waiting!.reason} (container ${waiting.container})`, waiting.waiting!.message].filter(Boolean).join(': ');
  return undefined;
}

/** What a look at a Job reads: its Job, pods and nodes, from the API or the worker's object cache. */
export interface JobReads {
  job(namespace: string, name: string): Promise<V1Job>;
  pods(namespace: string, job: string): Promise<readonly V1Pod[]>;
  nodeExists(name: string): Promise<boolean>;
  poolHasNodes(pool: string): Promise<boolean>;
}

/** Every read an API call. */
export function apiReads(batch: BatchV1Api, core: CoreV1Api): JobReads {
  return {
    job: (namespace, name) => batch.readNamespacedJob({ name, namespace }),
    pods: async (namespace, job) => (await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` })).items,
    nodeExists: (name) =>
      core.readNode({ name }).then(
        () => true,
        (err: unknown) => (hasStatus(err, 404) ? false : Promise.reject(err)),
      ),
    poolHasNodes: async (pool) => (await core.listNode({ labelSelector: `${agentPoolLabel}=${pool}` })).items.length > 0,
  };
}

/**
 * From the object cache what it holds, else from the API. A node or pool it lacks is asked of
 * the API before it counts as gone: only what is there is taken from memory.
 */
export function cachedReads(objects: ClusterObjects, api: JobReads): JobReads {
  return {
    job: async (namespace, name) => objects.job(namespace, name) ?? api.job(namespace, name),
    pods: async (namespace, job) => objects.jobPods(namespace, job) ?? api.pods(namespace, job),
    nodeExists: async (name) => objects.node(name) !== undefined || api.nodeExists(name),
    poolHasNodes: async (pool) => Boolean(objects.poolNodes(pool)?.length) || api.poolHasNodes(pool),
  };
}

/**
 * How Kubernetes shows that a pod's node went away. The pod garbage collector marks a pod on a
 * deleted node Failed with the DisruptionTarget condition (DeletionByPodGC), about 40 s later,
 * then deletes it (https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions);
 * before that the pod's node simply no longer exists; after it, the Job's replacement pod cannot
 * be scheduled because its pool (the node selector) has no node left.
 */
async function nodeLoss(reads: JobReads, pods: readonly V1Pod[]): Promise<string | undefined> {
  for (const pod of pods) {
    const disruption = pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
    if (disruption) return `pod ${pod.metadata?.name} was disrupted on node ${pod.spec?.nodeName ?? '?'}: ${[disruption.reason, disruption.message].filter(Boolean).join(': ')}`;
  }
  const live = pods.filter((p) => p.spec?.nodeName && p.status?.phase !== 'Succeeded');
  for (const node of new Set(live.map((p) => p.spec!.nodeName!))) {
    if (!(await reads.nodeExists(node))) return `node ${node} is gone (pod ${live.find((p) => p.spec?.nodeName === node)?.metadata?.name})`;
  }
  const latest = pods.at(-1);
  const pool = latest?.spec?.nodeSelector?.[agentPoolLabel];
  if (pool && !latest.spec?.nodeName && podProblem(latest)?.startsWith('Unschedulable') && !(await reads.poolHasNodes(pool))) {
    return `pool ${pool} has no node left (pod ${latest.metadata?.name} cannot be scheduled)`;
  }
  return undefined;
}

/** One look at a Job and its pods: state, attempts, restarts, and why it failed. */
export async function readJobProgress(reads: JobReads, namespace: string, name: string): Promise<{ progress: JobProgress; pod?: V1Pod }> {
  const job = await reads.job(namespace, name);
  const pods = [...(await reads.pods(namespace, name))];
  pods.sort((a, b) => String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)));
  const pod = pods.at(-1);
  const done = (job.status?.conditions ?? []).find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  const progress: JobProgress = {
    state: done?.type === 'Complete' ? 'succeeded' : done?.type === 'Failed' ? 'failed' : pod?.status?.phase === 'Running' ? 'running' : 'pending',
    podPhase: pod?.status?.phase,
    node: pod?.spec?.nodeName,
    restarts: pods.reduce((n, p) => n + (p.status?.containerStatuses ?? []).reduce((m, s) => m + (s.restartCount ?? 0), 0), 0),
    attempts: pods.length,
    startedAt: job.status?.startTime ? new Date(job.status.startTime).toISOString() : undefined,
    finishedAt: done?.lastTransitionTime ? new Date(done.lastTransitionTime).toISOString() : undefined,
  };
  if (progress.state !== 'succeeded') {
    progress.problem = podProblem(pod);
    progress.nodeLost = await nodeLoss(reads, pods);
  }
  if (progress.state === 'failed') {
    const failedPod = [...pods].reverse().find((p) => p.status?.phase === 'Failed') ?? pod;
    progress.reason = [done?.reason, terminationReason(failedPod)].filter(Boolean).join(': ');
  }
  return { progress, pod };
}

/** The reads of a worker with (`objects`) or without an object cache: the API's when `fresh`. */
export function jobReadsOf(batch: BatchV1Api, core: CoreV1Api, objects?: ClusterObjects): (fresh: boolean) => JobReads {
  const api = apiReads(batch, core);
  const cached = objects ? cachedReads(objects, api) : api;
  return (fresh) => (fresh ? api : cached);
}

/** Creates the Job, or adopts the one this run (the owner its metadata names) created earlier. */
export async function ensureJob(batch: BatchV1Api, namespace: string, job: V1Job): Promise<{ adopted: boolean }> {
  const name = job.metadata?.name ?? '';
  const { adopted } = await createOrAdoptOwned(
    `Job ${namespace}/${name}`,
    objectOwner(job),
    () => batch.createNamespacedJob({ namespace, body: job }),
    () => batch.readNamespacedJob({ name, namespace }),
  );
  return { adopted };
}

export function createJobActivities({ kubeConfig, pollIntervalMs, objects }: { kubeConfig: KubeConfig; pollIntervalMs: number; objects?: ClusterObjects }) {
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const reads = jobReadsOf(batch, core, objects);

  return {
    ensureNamespace: (namespace: string) => ensureNamespaceExists(core, namespace),

    async startGpuCheckJob(namespace: string, params: GpuCheckJobParams): Promise<{ adopted: boolean }> {
      return ensureJob(batch, namespace, gpuCheckJob(params));
    },

    /** Returns when the Job completes; fails (non-retryable) with the reason when it fails. */
    async waitForJob(namespace: string, name: string): Promise<JobProgress> {
      const ctx = Context.current();
      for (;;) {
        const { progress } = await readJobProgress(reads(false), namespace, name);
        if (progress.state === 'succeeded') return progress;
        if (progress.state === 'failed') {
          throw ApplicationFailure.nonRetryable(`Job ${namespace}/${name} failed: ${progress.reason}`, failureTypes.jobFailed, progress);
        }
        ctx.heartbeat({ step: 'waiting for job', job: name, state: progress.state });
        await ctx.sleep(pollIntervalMs);
      }
    },

    /** Deletes the Job and its pods; returns whether it existed. */
    async deleteJob(namespace: string, name: string): Promise<boolean> {
      return deleteIfPresent(() => batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' }));
    },
  };
}
