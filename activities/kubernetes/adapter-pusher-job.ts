// The pusher Job: the worker image's push-adapter command, with the results volume mounted,
// on the training pool (the volume is there, and the pool is released right after).
import type { V1Job } from '@kubernetes/client-node';
import { managedBy, roleLabel, roles, runIdLabel, workflowIdAnnotation } from './labels.js';
import { onPool } from './placement.js';

export interface PusherJobParams {
  name: string;
  /** The run's label value (runLabelValue of the workflow id). */
  runId: string;
  /** The owning workflow, for the shared Job watcher's signal. */
  workflowId: string;
  pool: string;
  taints: string[];
  resultsClaim: string;
  workerImage: string;
  /** registry/repository:tag to push to. */
  image: string;
  annotations: Record<string, string>;
}

export function adapterPusherJob(p: PusherJobParams): V1Job {
  const labels = { [runIdLabel]: p.runId, [roleLabel]: roles.adapterPusher };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: p.name, labels: { ...labels, ...managedBy }, annotations: { [workflowIdAnnotation]: p.workflowId } },
    spec: {
      backoffLimit: 0, // the activity decides about retries: each attempt is a new Job
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          ...onPool(p.pool, p.taints),
          containers: [
            {
              name: 'push-adapter',
              image: p.workerImage,
              command: ['node', '--import', 'tsx', 'workers/main.ts', 'push-adapter'],
              args: [
                '--results',
                '/mnt/results',
                '--image',
                p.image,
                ...Object.entries(p.annotations).flatMap(([k, v]) => ['--annotation', `${k}=${v}`]),
              ],
              volumeMounts: [{ name: 'results', mountPath: '/mnt/results', readOnly: true }],
            },
          ],
          volumes: [{ name: 'results', persistentVolumeClaim: { claimName: p.resultsClaim, readOnly: true } }],
        },
      },
    },
  };
}
