// The tuning Job, laid out as KAITO lays it out so KAITO's images run unchanged: an init
// container pulls the preset's weights, another fetches the dataset, and the trainer runs
// KAITO's fine_tuning.py under accelerate with all the node's GPUs.
import type { V1Container, V1Job, V1Volume } from '@kubernetes/client-node';
import { datasetUrlsSecretKey } from '../../domain/dataset-url.js';
import type { DatasetSource } from '../../domain/fine-tune-request.js';
import type { ModelPreset } from '../../domain/models.js';
import { managedBy, modelLabel, roleLabel, roles, runIdLabel, workflowIdAnnotation } from './labels.js';
import { onPool } from './placement.js';

export interface ContainerImages {
  /** Registry of KAITO's images (base trainer and model weights). */
  kaitoRegistry: string;
  kaitoBaseTag: string;
  oras: string;
  /** Runs the dataset downloader (`download-dataset`): the worker image. */
  datasetDownloader: string;
  skopeo: string;
  vllm: string;
  crane: string;
}

export const defaultImages: ContainerImages = {
  kaitoRegistry: 'mcr.microsoft.com/aks/kaito',
  kaitoBaseTag: '0.5.0',
  oras: 'ghcr.io/oras-project/oras:v1.2.2',
  datasetDownloader: 'aks-finetune/worker:0.1.0',
  skopeo: 'quay.io/skopeo/stable:v1.17.0',
  vllm: 'vllm/vllm-openai:v0.8.5',
  crane: 'gcr.io/go-containerregistry/crane:debug',
};

export interface TuningJobParams {
  name: string;
  /** The run's label value (runLabelValue of the workflow id). */
  runId: string;
  /** The owning workflow, for the shared Job watcher's signal. */
  workflowId: string;
  model: ModelPreset;
  gpus: number;
  pool: string;
  /** Taints of the pool, "key=value:Effect". */
  taints: string[];
  dataset: DatasetSource;
  configMap: string;
  resultsClaim: string;
  backoffLimit: number;
}

function datasetInit(p: TuningJobParams, images: ContainerImages): { container?: V1Container; volume: V1Volume; secretVolume?: V1Volume } {
  const { urls, urlsSecret, image, volume } = p.dataset;
  if (volume) return { volume: { name: 'data', persistentVolumeClaim: { claimName: volume, readOnly: true } } };
  const emptyDir: V1Volume = { name: 'data', emptyDir: {} };
  const mounts = [{ name: 'data', mountPath: '/mnt/data' }];
  if (urls || urlsSecret) {
    // Each URL's file lands in /mnt/data under its own name; the downloader checks every hop's
    // resolved addresses and redirects (workers/download-dataset.ts); a failed or empty download fails the pod.
    // URLs from a Secret are read from the mounted file, so they appear in no spec or history.
    const command = ['node', '--import', 'tsx', 'workers/main.ts', 'download-dataset', '--dir', '/mnt/data'];
    if (!urlsSecret) {
      return { volume: emptyDir, container: { name: 'dataset-download', image: images.datasetDownloader, command: [...command, ...urls!], volumeMounts: mounts } };
    }
    return {
      volume: emptyDir,
      container: {
        name: 'dataset-download',
        image: images.datasetDownloader,
        command: [...command, '--urls-file', '/etc/dataset-urls/urls'],
        volumeMounts: [...mounts, { name: 'dataset-urls', mountPath: '/etc/dataset-urls', readOnly: true }],
      },
      secretVolume: { name: 'dataset-urls', secret: { secretName: urlsSecret.name, items: [{ key: urlsSecret.key ?? datasetUrlsSecretKey, path: 'urls' }] } },
    };
  }
  // The dataset image's /data folder becomes /mnt/data. skopeo pulls it itself, so the pull
  // Secret goes to skopeo (--src-authfile), not to the pod's imagePullSecrets.
  const secret = p.dataset.imagePullSecret;
  const auth = secret ? ' --src-authfile /etc/dataset-pull/auth.json' : '';
  const script = `skopeo copy${auth} docker://${image} dir:/tmp/image && for l in $(ls /tmp/image | grep -v -e manifest.json -e version); do tar -xzf /tmp/image/$l -C /tmp/rootfs 2>/dev/null || tar -xf /tmp/image/$l -C /tmp/rootfs; done && cp -r /tmp/rootfs/data/. /mnt/data/`;
  return {
    volume: emptyDir,
    container: {
      name: 'dataset-pull',
      image: images.skopeo,
      command: ['sh', '-c', `set -e; mkdir -p /tmp/rootfs; ${script}`],
      volumeMounts: secret ? [...mounts, { name: 'dataset-pull-secret', mountPath: '/etc/dataset-pull', readOnly: true }] : mounts,
    },
    secretVolume: secret ? { name: 'dataset-pull-secret', secret: { secretName: secret, items: [{ key: '.dockerconfigjson', path: 'auth.json' }] } } : undefined,
  };
}

export function tuningJob(p: TuningJobParams, images: ContainerImages): V1Job {
  const labels = { [runIdLabel]: p.runId, [roleLabel]: roles.trainer, [modelLabel]: p.model.name };
  const data = datasetInit(p, images);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: p.name, labels: { ...labels, ...managedBy }, annotations: { [workflowIdAnnotation]: p.workflowId } },
    spec: {
      backoffLimit: p.backoffLimit,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          ...onPool(p.pool, p.taints),
          initContainers: [
            {
              name: 'model-weights',
              image: images.oras,
              command: ['oras', 'pull', `${images.kaitoRegistry}/kaito-${p.model.name}:${p.model.weightsTag}`, '-o', '/workspace/weights'],
              volumeMounts: [{ name: 'weights', mountPath: '/workspace/weights' }],
            },
            ...(data.container ? [data.container] : []),
          ],
          containers: [
            {
              name: 'trainer',
              image: `${images.kaitoRegistry}/kaito-base:${images.kaitoBaseTag}`,
              command: [
                '/bin/sh',
                '-c',
                `cd /workspace/tfs/ && python3 metrics_server.py & accelerate launch --num_processes=${p.gpus} /workspace/tfs/fine_tuning.py`,
              ],
              ports: [{ name: 'metrics', containerPort: 5000 }],
              env: [
                { name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' },
                { name: 'YAML_FILE_PATH', value: '/mnt/config/training_config.yaml' },
                ...(p.model.targetModules ? [{ name: 'DEFAULT_TARGET_MODULES', value: p.model.targetModules }] : []),
              ],
              resources: { requests: { 'nvidia.com/gpu': String(p.gpus) }, limits: { 'nvidia.com/gpu': String(p.gpus) } },
              volumeMounts: [
                { name: 'dshm', mountPath: '/dev/shm' },
                { name: 'weights', mountPath: '/workspace/weights' },
                { name: 'config', mountPath: '/mnt/config' },
                { name: 'data', mountPath: '/mnt/data' },
                { name: 'results', mountPath: '/mnt/results' },
              ],
            },
          ],
          volumes: [
            { name: 'dshm', emptyDir: { medium: 'Memory' } },
            { name: 'weights', emptyDir: {} },
            { name: 'config', configMap: { name: p.configMap } },
            data.volume,
            ...(data.secretVolume ? [data.secretVolume] : []),
            { name: 'results', persistentVolumeClaim: { claimName: p.resultsClaim } },
          ],
        },
      },
    },
  };
}
