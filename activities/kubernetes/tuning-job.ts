// The tuning Job, laid out as KAITO lays it out so KAITO's images run unchanged: an init
// container pulls the preset's weights, another fetches the dataset, and the trainer runs
// KAITO's fine_tuning.py under accelerate with all the node's GPUs. Checked field by field
// against the Job KAITO's own code renders (scripts/kaito-render, test/kaito-contract.test.ts),
// which lists every intended difference with its reason.
import type { V1Container, V1Job, V1Volume } from '@kubernetes/client-node';
import { datasetUrlsSecretKey } from '../../domain/dataset-url.js';
import type { DatasetSource } from '../../domain/fine-tune-request.js';
import { type ModelPreset, modelWeightsImage } from '../../domain/models.js';
import type { RunOwner } from '../../domain/run-identity.js';
import type { TrainerKind } from '../../domain/training-progress.js';
import { modelLabel, ownedMetadata, roleLabel, roles, runLabels } from './labels.js';
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
  /** KAITO's weights puller image (DefaultORASToolImage, pkg/utils/common_preset.go, KAITO v0.11.0). */
  oras: 'mcr.microsoft.com/oss/v2/oras-project/oras:v1.2.3',
  datasetDownloader: 'aks-finetune/worker:0.1.0',
  skopeo: 'quay.io/skopeo/stable:v1.17.0',
  vllm: 'vllm/vllm-openai:v0.8.5',
  crane: 'gcr.io/go-containerregistry/crane:debug',
};

export interface TuningJobParams {
  name: string;
  /** The owning run: labels, and the workflow the shared Job watcher signals. */
  owner: RunOwner;
  model: ModelPreset;
  gpus: number;
  pool: string;
  /** Taints of the pool, "key=value:Effect". */
  taints: string[];
  dataset: DatasetSource;
  configMap: string;
  resultsClaim: string;
  backoffLimit: number;
  /** Kubernetes fails the Job (DeadlineExceeded) once it has run this long: the request's tuning.maxHours. */
  activeDeadlineSeconds: number;
  /** Which trainer runs (tuning.trainer), and how often the product's checkpoints; absent (runs started before it existed): KAITO's. */
  trainer?: { kind: TrainerKind; checkpoint?: { everyMinutes: number; kept: number } };
}

/** The product's trainer entrypoint (trainer/aks_finetune_trainer.py): a key of the parameters ConfigMap, so it lands in /mnt/config. */
export const trainerEntrypointKey = 'aks_finetune_trainer.py';

/**
 * The trainer's command: KAITO's, with the product's entrypoint in place of fine_tuning.py unless
 * the request chose KAITO's trainer. The entrypoint imports KAITO's own config parser and dataset
 * code from /workspace/tfs, so both read training_config.yaml and /mnt/data alike.
 */
function trainerCommand(p: TuningJobParams): { script: string; env: { name: string; value: string }[] } {
  const checkpoint = p.trainer?.checkpoint;
  if (p.trainer?.kind !== 'aks-finetune' || !checkpoint) return { script: '/workspace/tfs/fine_tuning.py', env: [] };
  return {
    script: `/mnt/config/${trainerEntrypointKey}`,
    env: [
      { name: 'AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES', value: String(checkpoint.everyMinutes) },
      { name: 'AKS_FINETUNE_CHECKPOINTS_KEPT', value: String(checkpoint.kept) },
    ],
  };
}

function datasetInit(p: TuningJobParams, images: ContainerImages): { container?: V1Container; volumes: V1Volume[] } {
  const { urls, urlsSecret, image, volume, imagePullSecret } = p.dataset;
  if (volume) return { volumes: [{ name: 'data-volume', persistentVolumeClaim: { claimName: volume, readOnly: true } }] };
  const emptyDir: V1Volume = { name: 'data-volume', emptyDir: {} };
  const mounts = [{ name: 'data-volume', mountPath: '/mnt/data' }];
  if (urls || urlsSecret) {
    // Each URL's file lands in /mnt/data under its own name; the downloader checks every hop's
    // resolved addresses and redirects (workers/download-dataset.ts); a failed or empty download fails the pod.
    // URLs from a Secret are read from the mounted file, so they appear in no spec or history.
    const command = ['node', '--import', 'tsx', 'workers/main.ts', 'download-dataset', '--dir', '/mnt/data'];
    if (!urlsSecret) {
      return { volumes: [emptyDir], container: { name: 'dataset-download', image: images.datasetDownloader, command: [...command, ...urls!], volumeMounts: mounts } };
    }
    return {
      volumes: [{ name: 'dataset-urls', secret: { secretName: urlsSecret.name, items: [{ key: urlsSecret.key ?? datasetUrlsSecretKey, path: 'urls' }] } }, emptyDir],
      container: {
        name: 'dataset-download',
        image: images.datasetDownloader,
        command: [...command, '--urls-file', '/etc/dataset-urls/urls'],
        volumeMounts: [{ name: 'dataset-urls', mountPath: '/etc/dataset-urls', readOnly: true }, ...mounts],
      },
    };
  }
  // The dataset image's /data folder becomes /mnt/data. skopeo reads a private image's pull
  // Secret itself, as KAITO's puller does (ConfigImagePullSecretVolume, pkg/utils/common_preset.go):
  // a pod's imagePullSecrets only authenticate the kubelet's pulls of the containers' images.
  const authDir = '/etc/dataset-pull-secret';
  const secretVolume: V1Volume[] = imagePullSecret
    ? [{ name: 'dataset-pull-secret', secret: { secretName: imagePullSecret, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } }]
    : [];
  const auth = imagePullSecret ? `--authfile ${authDir}/config.json ` : '';
  const script = `skopeo copy ${auth}docker://${image} dir:/tmp/image && for l in $(ls /tmp/image | grep -v -e manifest.json -e version); do tar -xzf /tmp/image/$l -C /tmp/rootfs 2>/dev/null || tar -xf /tmp/image/$l -C /tmp/rootfs; done && cp -r /tmp/rootfs/data/. /mnt/data/`;
  return {
    volumes: [...secretVolume, emptyDir],
    container: {
      name: 'dataset-pull',
      image: images.skopeo,
      command: ['sh', '-c', `set -e; mkdir -p /tmp/rootfs; ${script}`],
      volumeMounts: [...(imagePullSecret ? [{ name: 'dataset-pull-secret', mountPath: authDir, readOnly: true }] : []), ...mounts],
    },
  };
}

export function tuningJob(p: TuningJobParams, images: ContainerImages): V1Job {
  const labels = { ...runLabels(p.owner), [roleLabel]: roles.trainer, [modelLabel]: p.model.name };
  const data = datasetInit(p, images);
  const trainer = trainerCommand(p);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: p.name, ...ownedMetadata(p.owner, labels) },
    spec: {
      backoffLimit: p.backoffLimit,
      activeDeadlineSeconds: p.activeDeadlineSeconds,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          // Nothing in it calls the Kubernetes API: no token for the trainer image (KAITO's, or the user's) to use.
          automountServiceAccountToken: false,
          ...onPool(p.pool, p.taints),
          initContainers: [
            {
              name: 'model-weights-downloader',
              image: images.oras,
              command: ['oras', 'pull', modelWeightsImage(images.kaitoRegistry, p.model), '-o', '/workspace/weights'],
              volumeMounts: [{ name: 'model-weights-volume', mountPath: '/workspace/weights' }],
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
                `cd /workspace/tfs/ && python3 metrics_server.py & accelerate launch --num_processes=${p.gpus} ${trainer.script}`,
              ],
              ports: [{ containerPort: 5000 }],
              // KAITO sets no YAML_FILE_PATH: the trainer's default is /mnt/config/training_config.yaml
              // (presets/workspace/tuning/text-generation/fine_tuning.py, CONFIG_YAML).
              env: [
                ...(p.model.targetModules ? [{ name: 'DEFAULT_TARGET_MODULES', value: p.model.targetModules }] : []),
                { name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' },
                ...trainer.env,
              ],
              resources: { requests: { 'nvidia.com/gpu': String(p.gpus) }, limits: { 'nvidia.com/gpu': String(p.gpus) } },
              volumeMounts: [
                { name: 'dshm', mountPath: '/dev/shm' },
                { name: 'model-weights-volume', mountPath: '/workspace/weights' },
                { name: 'config-volume', mountPath: '/mnt/config' },
                { name: 'results-volume', mountPath: '/mnt/results' },
                { name: 'data-volume', mountPath: '/mnt/data' },
              ],
            },
          ],
          volumes: [
            { name: 'dshm', emptyDir: { medium: 'Memory' } },
            { name: 'model-weights-volume', emptyDir: {} },
            { name: 'config-volume', configMap: { name: p.configMap } },
            { name: 'results-volume', persistentVolumeClaim: { claimName: p.resultsClaim } },
            ...data.volumes,
          ],
        },
      },
    },
  };
}
