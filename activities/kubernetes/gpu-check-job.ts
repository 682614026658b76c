// The GPU check Job: runs nvidia-smi on a node of the pool, which proves that the node joined,
// the NVIDIA device plugin advertises its GPUs, and a pod can use them.
import type { V1Job } from '@kubernetes/client-node';
import type { RunOwner } from '../../domain/run-identity.js';
import { ownedMetadata, runLabels } from './labels.js';
import { onPool } from './placement.js';

export interface GpuCheckJobParams {
  name: string;
  owner: RunOwner;
  pool: string;
  gpus: number;
  /** Taints of the pool the pod must tolerate, as "key=value:Effect". */
  taints: string[];
  image: string;
}

export function gpuCheckJob(p: GpuCheckJobParams): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: p.name, ...ownedMetadata(p.owner) },
    spec: {
      backoffLimit: 1,
      ttlSecondsAfterFinished: 3600,
      template: {
        metadata: { labels: runLabels(p.owner) },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false, // nvidia-smi needs no Kubernetes API
          ...onPool(p.pool, p.taints),
          containers: [
            {
              name: 'nvidia-smi',
              image: p.image,
              command: ['nvidia-smi'],
              resources: { limits: { 'nvidia.com/gpu': String(p.gpus) }, requests: { 'nvidia.com/gpu': String(p.gpus) } },
            },
          ],
        },
      },
    },
  };
}
