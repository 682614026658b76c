// Kubernetes activities of the fineTune pipeline. Each is short (a few API calls) and
// idempotent: objects have deterministic names and carry the run label, a retry adopts them.
// Long waits are not activities: the workflow checks, then sleeps on a durable timer, so a
// thousand waiting runs hold no activity slots and no open watches.
import { AppsV1Api, BatchV1Api, CoreV1Api, type KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'yaml';
import { failureTypes } from '../../domain/failure-types.js';
import type { TrainingConfig } from '../../domain/training-config.js';
import { parseTrainerLog } from '../../domain/trainer-log.js';
import { type PusherJobParams, adapterPusherJob } from './adapter-pusher-job.js';
import type { RunOwner } from '../../domain/run-identity.js';
import { createOrAdopt, createOrAdoptOwned, hasStatus } from './api-errors.js';
import { type InferenceParams, inferenceObjects } from './inference.js';
import { ensureJob, type JobProgress, readJobProgress } from './jobs.js';
import { ownedMetadata } from './labels.js';
import { tuningEgressPolicy, tuningEgressPolicyName } from './network-policy.js';
import { type ContainerImages, type TuningJobParams, tuningJob } from './tuning-job.js';

export interface FineTuneKubeDeps {
  kubeConfig: KubeConfig;
  images: ContainerImages;
  /** The worker image: the pusher Job runs its push-adapter command. */
  workerImage: string;
  /** URL of an inference Service's API, with {namespace} and {service} placeholders. */
  inferenceUrlTemplate: string;
}

export function createFineTuneKubeActivities({ kubeConfig, images, workerImage, inferenceUrlTemplate }: FineTuneKubeDeps) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const networking = kubeConfig.makeApiClient(NetworkingV1Api);

  return {
    /** The tuning parameters ConfigMap (KAITO's training_config.yaml), the results volume and the namespace's tuning egress policy. */
    async ensureTuningInputs(p: { namespace: string; owner: RunOwner; configMap: string; resultsClaim: string; config: TrainingConfig }): Promise<void> {
      const { namespace, owner } = p;
      const metadata = ownedMetadata(owner);
      await createOrAdoptOwned(
        `ConfigMap ${namespace}/${p.configMap}`,
        owner,
        () => core.createNamespacedConfigMap({ namespace, body: { metadata: { name: p.configMap, ...metadata }, data: { 'training_config.yaml': stringify(p.config) } } }),
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

    /** One look at a Job and its latest pod: the workflow calls this between durable timers. */
    async checkJob(namespace: string, name: string): Promise<JobProgress> {
      const { progress, pod } = await readJobProgress(batch, core, namespace, name);
      if ((pod?.status?.phase === 'Running' || pod?.status?.phase === 'Succeeded') && pod.metadata?.name) {
        // The trainer's progress, when its log is readable (a kubelet serves it), and once it has
        // succeeded its final eval_loss, which only its log holds (KAITO saves no trainer_state.json).
        // A refusal (403) is no unreadable log but a missing RBAC rule (pods/log): that one is raised.
        const log = await core
          .readNamespacedPodLog({ name: pod.metadata.name, namespace, tailLines: 100 })
          .catch((err: unknown) => (hasStatus(err, 403) ? Promise.reject(err) : ''));
        Object.assign(progress, parseTrainerLog(typeof log === 'string' ? log : ''));
      }
      return progress;
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
