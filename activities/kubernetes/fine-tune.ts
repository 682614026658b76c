// Kubernetes activities of the fineTune pipeline. Each is short (a few API calls) and
// idempotent: objects have deterministic names and carry the run label, a retry adopts them.
// Long waits are not activities: the workflow checks, then sleeps on a durable timer, so a
// thousand waiting runs hold no activity slots and no open watches.
import { readFileSync } from 'node:fs';
import { AppsV1Api, BatchV1Api, CoreV1Api, type KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'yaml';
import { failureTypes } from '../../domain/failure-types.js';
import type { TrainingConfig } from '../../domain/training-config.js';
import { type LogCursor, type LogLine, logSinceSeconds, newLogLines, readTrainerLines, type TrainerKind, type TrainingReadout } from '../../domain/training-progress.js';
import { type PusherJobParams, adapterPusherJob } from './adapter-pusher-job.js';
import type { RunOwner } from '../../domain/run-identity.js';
import { createOrAdopt, createOrAdoptOwned, hasStatus } from './api-errors.js';
import { type InferenceParams, inferenceObjects } from './inference.js';
import { ensureJob, type JobProgress, jobReadsOf, readJobProgress } from './jobs.js';
import type { ClusterObjects } from './object-cache.js';
import { ownedMetadata } from './labels.js';
import { tuningEgressPolicy, tuningEgressPolicyName } from './network-policy.js';
import { type ContainerImages, trainerEntrypointKey, type TuningJobParams, tuningJob } from './tuning-job.js';

/** The product's trainer entrypoint, read once: it goes into each run's parameters ConfigMap. */
let entrypoint: string | undefined;
const trainerEntrypoint = () => (entrypoint ??= readFileSync(new URL('../../trainer/aks_finetune_trainer.py', import.meta.url), 'utf8'));

/** The tuning Job's trainer container (tuning-job.ts). */
const trainerContainer = 'trainer';
/** A check reads at most this many of the trainer's newest lines, and this many bytes. */
const logTailLines = 2000;
const logLimitBytes = 1024 * 1024;

export interface TrainingCheck {
  progress: JobProgress;
  /** What the trainer reported since the last check, when its log was readable. */
  readout?: TrainingReadout;
  /** Where the next check reads the log from. */
  cursor?: LogCursor;
  /** The log could not be read (no kubelet answer, a network error): the run goes on, the status says so. */
  logUnreadable?: string;
}

export interface FineTuneKubeDeps {
  kubeConfig: KubeConfig;
  images: ContainerImages;
  /** The worker image: the pusher Job runs its push-adapter command. */
  workerImage: string;
  /** URL of an inference Service's API, with {namespace} and {service} placeholders. */
  inferenceUrlTemplate: string;
  /** The worker's object cache (object-cache.ts): checks read Jobs, pods and nodes from it. */
  objects?: ClusterObjects;
}

export function createFineTuneKubeActivities({ kubeConfig, images, workerImage, inferenceUrlTemplate, objects }: FineTuneKubeDeps) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const reads = jobReadsOf(batch, core, objects);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const networking = kubeConfig.makeApiClient(NetworkingV1Api);

  return {
    /**
     * The tuning parameters ConfigMap (KAITO's training_config.yaml, and the product's trainer
     * entrypoint unless the run uses KAITO's), the results volume and the namespace's tuning egress policy.
     */
    async ensureTuningInputs(p: { namespace: string; owner: RunOwner; configMap: string; resultsClaim: string; config: TrainingConfig; trainer?: TrainerKind }): Promise<void> {
      const { namespace, owner } = p;
      const metadata = ownedMetadata(owner);
      await createOrAdoptOwned(
        `ConfigMap ${namespace}/${p.configMap}`,
        owner,
        () =>
          core.createNamespacedConfigMap({
            namespace,
            body: {
              metadata: { name: p.configMap, ...metadata },
              data: { 'training_config.yaml': stringify(p.config), ...(p.trainer === 'kaito' ? {} : { [trainerEntrypointKey]: trainerEntrypoint() }) },
            },
          }),
        () => core.readNamespacedConfigMap({ name: p.configMap, namespace }),
      );
      await createOrAdoptOwned(
        `PersistentVolumeClaim ${namespace}/${p.resultsClaim}`,
        owner,
        () =>
          core.createNamespacedPersistentVolumeClaim({
            namespace,
            body: { metadata: { name: p.resultsClaim, ...metadata }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } } },
          }),
        () => core.readNamespacedPersistentVolumeClaim({ name: p.resultsClaim, namespace }),
      );
      await createOrAdopt(
        () => networking.createNamespacedNetworkPolicy({ namespace, body: tuningEgressPolicy() }),
        () => networking.readNamespacedNetworkPolicy({ name: tuningEgressPolicyName, namespace }),
      );
    },

    startTuningJob: (namespace: string, params: TuningJobParams) => ensureJob(batch, namespace, tuningJob(params, images)),

    startPushJob: (namespace: string, params: Omit<PusherJobParams, 'workerImage'>) =>
      ensureJob(batch, namespace, adapterPusherJob({ ...params, workerImage })),

    /**
     * One look at a Job and its latest pod: the workflow calls this between durable timers. From
     * the object cache unless `fresh` (the jobFinished signal came: this worker's watch may lag).
     */
    async checkJob(namespace: string, name: string, fresh = false): Promise<JobProgress> {
      return (await readJobProgress(reads(fresh), namespace, name)).progress;
    },

    /**
     * One look at a tuning Job, its latest pod, and the trainer's log lines written since the last
     * look (`cursor`): the Job and pod as checkJob reads them, and one API call for the log. The log is read from the cursor's time on,
     * its newest lines only and with a byte limit, so a chatty or hostile trainer costs one bounded
     * read; what comes back is a bounded summary (TrainingReadout), never the lines.
     */
    async checkTrainingJob(namespace: string, name: string, read: { trainer: TrainerKind; cursor?: LogCursor; lastStep?: number; fresh?: boolean }): Promise<TrainingCheck> {
      const { progress, pod } = await readJobProgress(reads(read.fresh ?? false), namespace, name);
      const podName = pod?.metadata?.name;
      if (!podName || !['Running', 'Succeeded', 'Failed'].includes(pod.status?.phase ?? '')) return { progress, cursor: read.cursor };
      let cursor = read.cursor?.pod === podName ? read.cursor : undefined;
      const lines: LogLine[] = [];
      try {
        // One read, unless it was cut at its byte limit (a huge line): then up to two more from past it.
        for (let reads = 0; reads < 3; reads++) {
          const sinceSeconds = logSinceSeconds(cursor, Date.now());
          if (sinceSeconds === 0) break;
          const log = await core.readNamespacedPodLog({ name: podName, namespace, container: trainerContainer, timestamps: true, tailLines: logTailLines, limitBytes: logLimitBytes, sinceSeconds });
          const text = typeof log === 'string' ? log : '';
          const chunk = newLogLines(text, podName, cursor, Buffer.byteLength(text) >= logLimitBytes);
          lines.push(...chunk.lines);
          cursor = chunk.cursor ?? cursor;
          if (!cursor?.pastSecond) break;
        }
        return { progress, readout: readTrainerLines(read.trainer, lines, read.lastStep), cursor };
      } catch (err) {
        // A refusal (403) is no unreadable log but a missing RBAC rule (pods/log): that one is raised.
        if (hasStatus(err, 403)) throw err;
        return { progress, cursor, logUnreadable: `the trainer's log could not be read: ${String((err as Error).message ?? err).slice(0, 300)}` };
      }
    },

    async deployInference(namespace: string, params: InferenceParams): Promise<void> {
      const { deployment, service } = inferenceObjects(params, images);
      await createOrAdoptOwned(
        `Deployment ${namespace}/${params.name}`,
        params.owner,
        () => apps.createNamespacedDeployment({ namespace, body: deployment }),
        () => apps.readNamespacedDeployment({ name: params.name, namespace }),
      );
      await createOrAdoptOwned(
        `Service ${namespace}/${params.name}`,
        params.owner,
        () => core.createNamespacedService({ namespace, body: service }),
        () => core.readNamespacedService({ name: params.name, namespace }),
      );
    },

    /** One look at the rollout: how many replicas are available. */
    async checkInference(namespace: string, name: string): Promise<{ available: number; wanted: number }> {
      const d = await apps.readNamespacedDeployment({ name, namespace });
      return { available: d.status?.availableReplicas ?? 0, wanted: d.spec?.replicas ?? 1 };
    },

    /** Asks the served API for its models; the adapter must be among them. */
    async smokeCheckInference(namespace: string, service: string, adapter: string): Promise<string[]> {
      const url = `${inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', service)}/v1/models`;
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
      const ids = ((await res.json()) as { data?: { id: string }[] }).data?.map((m) => m.id) ?? [];
      if (!ids.includes(adapter)) {
        throw ApplicationFailure.retryable(`${url} lists ${ids.join(', ') || 'no models'}, not the adapter ${adapter}`, failureTypes.inferenceUnhealthy);
      }
      return ids;
    },
  };
}
