// A run whose adapter goes to a user's PersistentVolumeClaim (request output.volume, KAITO's
// tuning.output.volumeSource): the claim is checked before any GPU is asked for, and after training
// a copier Job (the worker image's copy-adapter command) copies the adapter files there from the
// run's results volume, on the training pool, where that zonal disk is attached. The claim is the
// user's: it carries no run label, so no cleanup ever deletes it.
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import type { RunOwner } from '../../domain/run-identity.js';
import { type CopiedAdapter, parseCopiedAdapter } from '../../workers/copy-adapter.js';
import { annotationArgs, resultsVolumeJob } from './adapter-pusher-job.js';
import { hasStatus } from './api-errors.js';
import { ensureJob } from './jobs.js';
import { roles } from './labels.js';

export interface CopierJobParams {
  name: string;
  owner: RunOwner;
  pool: string;
  taints: string[];
  resultsClaim: string;
  /** The user's claim the adapter goes to. */
  outputClaim: string;
  workerImage: string;
  /** The lineage an adapter image would carry as annotations: written beside the files. */
  annotations: Record<string, string>;
  activeDeadlineSeconds: number;
}

const container = 'copy-adapter';

export function adapterCopierJob(p: CopierJobParams): V1Job {
  // No Azure identity: it only copies files between two volumes.
  return resultsVolumeJob({
    ...p,
    role: roles.adapterCopier,
    container: {
      name: container,
      image: p.workerImage,
      command: ['node', '--import', 'tsx', 'workers/main.ts', 'copy-adapter'],
      args: ['--results', '/mnt/results', '--output', '/mnt/output', ...annotationArgs(p.annotations)],
      terminationMessagePolicy: 'FallbackToLogsOnError',
      volumeMounts: [
        { name: 'results', mountPath: '/mnt/results', readOnly: true },
        { name: 'output', mountPath: '/mnt/output' },
      ],
    },
    volumes: [
      { name: 'results', persistentVolumeClaim: { claimName: p.resultsClaim, readOnly: true } },
      { name: 'output', persistentVolumeClaim: { claimName: p.outputClaim } },
    ],
  });
}

export function createOutputVolumeActivities({ kubeConfig, workerImage }: { kubeConfig: KubeConfig; workerImage: string }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const invalid = (message: string) => ApplicationFailure.nonRetryable(message, failureTypes.invalidRequest);

  return {
    /** The output claim exists in the run's namespace and is not Lost: checked before the run asks for GPUs. */
    async checkOutputVolume(namespace: string, claimName: string): Promise<void> {
      const field = `output.volume ${claimName}`;
      const claim = await core.readNamespacedPersistentVolumeClaim({ name: claimName, namespace }).catch((err: unknown) => {
        if (hasStatus(err, 404)) throw invalid(`${field}: no such PersistentVolumeClaim in namespace ${namespace}; create it there first (kubectl apply -n ${namespace} -f <file>)`);
        throw err;
      });
      if (claim.status?.phase === 'Lost') throw invalid(`${field} in namespace ${namespace} is Lost: its PersistentVolume is gone`);
      if (claim.metadata?.deletionTimestamp) throw invalid(`${field} in namespace ${namespace} is being deleted`);
    },

    startCopyJob: (namespace: string, params: Omit<CopierJobParams, 'workerImage'>) => ensureJob(batch, namespace, adapterCopierJob({ ...params, workerImage })),

    /** What a succeeded copier Job copied: its pod's termination message. */
    async readCopiedAdapter(namespace: string, job: string): Promise<CopiedAdapter> {
      const { items } = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
      const messages = items.map((pod) => pod.status?.containerStatuses?.find((s) => s.name === container)?.state?.terminated?.message);
      const copied = messages.map(parseCopiedAdapter).find((c) => c !== undefined);
      if (!copied) throw new Error(`copier Job ${namespace}/${job} left no summary in its termination message (${messages.filter(Boolean).join('; ') || 'none'})`);
      return copied;
    },
  };
}
