// Inference as KAITO serves it: vLLM's OpenAI-compatible server on container port 5000
// (Service port 80) with the base model's weights and the adapter, pulled by digest into
// /mnt/adapter/<name>, loaded as a LoRA module clients select with `model: <name>`.
import type { V1Container, V1Deployment, V1Service, V1Volume } from '@kubernetes/client-node';
import { type ModelPreset, modelWeightsImage } from '../../domain/models.js';
import type { RunOwner } from '../../domain/run-identity.js';
import { modelLabel, ownedMetadata, roleLabel, roles, runLabels } from './labels.js';
import { onPool } from './placement.js';
import type { ContainerImages } from './tuning-job.js';

export interface InferenceParams {
  name: string;
  owner: RunOwner;
  model: ModelPreset;
  /** The adapter's name in the API, and its image by digest (registry/repo@sha256:...). */
  adapter: { name: string; image: string };
  pool: string;
  taints: string[];
  gpus: number;
  replicas: number;
}

/** Where a vLLM pod holds the base model's weights. */
export const weightsPath = '/workspace/weights';

/** Pulls the base model's weights (KAITO's weights image) into the pod's `weights` volume. */
export const weightsInitContainer = (images: ContainerImages, model: ModelPreset): V1Container => ({
  name: 'model-weights',
  image: images.oras,
  command: ['oras', 'pull', modelWeightsImage(images.kaitoRegistry, model), '-o', weightsPath],
  volumeMounts: [{ name: 'weights', mountPath: weightsPath }],
});

/** A vLLM pod's volumes: the base weights, the adapters, and shared memory for its workers. */
export const servingVolumes = (): V1Volume[] => [
  { name: 'weights', emptyDir: {} },
  { name: 'adapters', emptyDir: {} },
  { name: 'dshm', emptyDir: { medium: 'Memory' } },
];

/** The Service clients call: port 80 to the pods' `targetPort`. */
export const servingService = (metadata: V1Service['metadata'], selector: Record<string, string>, targetPort: number): V1Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata,
  spec: { selector, ports: [{ name: 'http', port: 80, targetPort }] },
});

export function inferenceObjects(p: InferenceParams, images: ContainerImages): { deployment: V1Deployment; service: V1Service } {
  const selector = { ...runLabels(p.owner), [roleLabel]: roles.inference, app: p.name };
  const labels = { ...selector, [modelLabel]: p.model.name };
  const adapterDir = `/mnt/adapter/${p.adapter.name}`;
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: p.name, ...ownedMetadata(p.owner, labels) },
    spec: {
      replicas: p.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false, // vLLM and the adapter pull need no Kubernetes API
          ...onPool(p.pool, p.taints),
          initContainers: [
            weightsInitContainer(images, p.model),
            {
              // The adapter image's /data folder (KAITO's layout) becomes the LoRA module's folder.
              name: `adapter-${p.adapter.name}`.slice(0, 63),
              image: images.crane,
              command: ['sh', '-c', `mkdir -p ${adapterDir} && crane export ${p.adapter.image} - | tar -xf - -C ${adapterDir} --strip-components=1 data`],
              volumeMounts: [{ name: 'adapters', mountPath: '/mnt/adapter' }],
            },
          ],
          containers: [
            {
              name: 'inference',
              image: images.vllm,
              args: ['--model', weightsPath, '--served-model-name', p.model.name, '--port', '5000', '--enable-lora', '--lora-modules', `${p.adapter.name}=${adapterDir}`],
              ports: [{ name: 'http', containerPort: 5000 }],
              readinessProbe: { httpGet: { path: '/v1/models', port: 5000 }, periodSeconds: 10 },
              resources: { requests: { 'nvidia.com/gpu': String(p.gpus) }, limits: { 'nvidia.com/gpu': String(p.gpus) } },
              volumeMounts: [
                { name: 'weights', mountPath: weightsPath },
                { name: 'adapters', mountPath: '/mnt/adapter' },
                { name: 'dshm', mountPath: '/dev/shm' },
              ],
            },
          ],
          volumes: servingVolumes(),
        },
      },
    },
  };
  return { deployment, service: servingService({ name: p.name, ...ownedMetadata(p.owner, labels) }, selector, 5000) };
}
