// The GPU check Job: runs nvidia-smi on a node of the pool, which proves that the node joined,
// the NVIDIA device plugin advertises its GPUs, and a pod can use them.
import type { V1Job } from '@kubernetes/client-node';
import { managedBy, runIdLabel } from './labels.js';
import { onPool } from './placement.js';

export interface GpuCheckJobParams {
  name: string;
  runId: string;
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
    metadata: { name: p.name, labels: { [runIdLabel]: p.runId, ...managedBy } },
    spec: {
      backoffLimit: 1,
      ttlSecondsAfterFinished: 3600,
      template: {
        metadata: { labels: { [runIdLabel]: p.runId } },
        spec: {
          restartPolicy: 'Never',
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
