// The pusher Job: the worker image's push-adapter command, with the results volume mounted,
// on the training pool (the volume is there, and the pool is released right after).
import type { V1Container, V1Job, V1Volume } from '@kubernetes/client-node';
import type { RunOwner } from '../../domain/run-identity.js';
import { ownedMetadata, roleLabel, roles, runLabels } from './labels.js';
import { onPool } from './placement.js';

export interface PusherJobParams {
  name: string;
  /** The owning run: labels, and the workflow the shared Job watcher signals. */
  owner: RunOwner;
  pool: string;
  taints: string[];
  resultsClaim: string;
  workerImage: string;
  /** registry/repository:tag to push to. */
  image: string;
  annotations: Record<string, string>;
  /** Kubernetes fails the pusher (DeadlineExceeded) once it has run this long. */
  activeDeadlineSeconds: number;
  /** A docker-config Secret in the run's namespace to log in with (KAITO's imagePushSecret); without it, workload identity. */
  pushSecret?: string;
}

/**
 * The pusher's identity in each run namespace (deploy/run-namespace): no Kubernetes API access, and
 * through workload identity AcrPush on the output registry for its DefaultAzureCredential.
 */
export const pusherServiceAccount = 'aks-finetune-pusher';

/** Where the push Secret is mounted: docker's config folder, as KAITO's pusher has it (pkg/utils/common_preset.go). */
const dockerConfigDir = '/root/.docker';

/** The lineage as the push-adapter and copy-adapter commands take it: --annotation key=value, each. */
export const annotationArgs = (annotations: Record<string, string>) => Object.entries(annotations).flatMap(([k, v]) => ['--annotation', `${k}=${v}`]);

/**
 * A Job that works on the run's results volume after training (the pusher's, the copier's): one
 * attempt a Job (the workflow decides about retries), on the training pool, where that zonal disk
 * is attached, without Kubernetes API access.
 */
export function resultsVolumeJob(p: {
  name: string;
  owner: RunOwner;
  role: string;
  pool: string;
  taints: string[];
  activeDeadlineSeconds: number;
  /** Labels only the pod gets (the workload identity webhook's). */
  podLabels?: Record<string, string>;
  container: V1Container;
  volumes: V1Volume[];
}): V1Job {
  const labels = { ...runLabels(p.owner), [roleLabel]: p.role };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: p.name, ...ownedMetadata(p.owner, labels) },
    spec: {
      backoffLimit: 0, // the workflow decides about retries: each attempt is a new Job
      activeDeadlineSeconds: p.activeDeadlineSeconds,
      template: {
        metadata: { labels: { ...labels, ...p.podLabels } },
        spec: {
          restartPolicy: 'Never',
          serviceAccountName: pusherServiceAccount,
          automountServiceAccountToken: false,
          ...onPool(p.pool, p.taints),
          containers: [p.container],
          volumes: p.volumes,
        },
      },
    },
  };
}

export function adapterPusherJob(p: PusherJobParams): V1Job {
  // The Secret's .dockerconfigjson as config.json; with it, no Azure identity is needed.
  const secretVolume = p.pushSecret
    ? { name: 'docker-config', projected: { sources: [{ secret: { name: p.pushSecret, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } }] } }
    : undefined;
  return resultsVolumeJob({
    ...p,
    role: roles.adapterPusher,
    // The AKS workload identity webhook gives pods with this label the service account's Azure identity.
    podLabels: p.pushSecret ? {} : { 'azure.workload.identity/use': 'true' },
    container: {
      name: 'push-adapter',
      image: p.workerImage,
      command: ['node', '--import', 'tsx', 'workers/main.ts', 'push-adapter'],
      args: [
        '--results',
        '/mnt/results',
        '--image',
        p.image,
        ...annotationArgs(p.annotations),
        ...(p.pushSecret ? ['--push-secret', p.pushSecret] : []),
      ],
      ...(secretVolume ? { env: [{ name: 'DOCKER_CONFIG', value: dockerConfigDir }] } : {}),
      volumeMounts: [
        { name: 'results', mountPath: '/mnt/results', readOnly: true },
        ...(secretVolume ? [{ name: secretVolume.name, mountPath: dockerConfigDir, readOnly: true }] : []),
      ],
    },
    volumes: [{ name: 'results', persistentVolumeClaim: { claimName: p.resultsClaim, readOnly: true } }, ...(secretVolume ? [secretVolume] : [])],
  });
}
