// An endpoint's Kubernetes objects: a Deployment whose pods run vLLM (localhost only, runtime LoRA
// updating on) next to the adapter-router sidecar (the worker image), the Service clients call
// (port 80 → the router), and the ConfigMap with the desired state every router reconciles to.
// Owned by the endpoint workflow's id alone (no run id): it continues-as-new and keeps them.
import { createHash } from 'node:crypto';
import type { V1ConfigMap, V1Deployment, V1PodTemplateSpec, V1Service } from '@kubernetes/client-node';
import { adapterMountPath, type DesiredState, desiredStateConfigMapName, desiredStateKey, routerPaths, routerPort, vllmPort } from '../../domain/adapter-router.js';
import type { EndpointSpec } from '../../domain/endpoint.js';
import { findModelPreset } from '../../domain/models.js';
import { vllmServerCommand } from '../../domain/vllm-server.js';
import { servingService, servingVolumes, weightsInitContainer, weightsPath } from './inference.js';
import { modelLabel, ownedMetadata, roleLabel, roles, runLabels } from './labels.js';
import { onPool } from './placement.js';
import type { ContainerImages } from './tuning-job.js';

/** The router's identity in each run namespace (deploy/run-namespace): get/list/watch ConfigMaps, AcrPull through workload identity. */
export const adapterRouterServiceAccount = 'aks-finetune-adapter-router';
export const adapterRouterContainer = 'adapter-router';
/**
 * On the Deployment: a hash of the pod template it was last given. applyEndpoint replaces an
 * adopted Deployment whose hash differs (a new worker or vLLM image, new flags), so an upgrade
 * reaches a live endpoint at its next change; comparing templates field by field would trip on
 * the API server's defaults.
 */
export const podTemplateHashAnnotation = 'aks-finetune.io/pod-template-hash';

/**
 * A replaced or scaled-down replica keeps serving for a few seconds after its deletion, while the
 * endpoints controller and every node's kube-proxy stop sending it traffic (the pod's removal from
 * the Service and its containers' SIGTERM happen in parallel: kubernetes.io, "Pod Lifecycle",
 * "Termination of Pods"). The sleep action needs no shell in the image (beta from Kubernetes 1.30,
 * on by default: "Container Lifecycle Hooks").
 */
const drainBeforeStop = { preStop: { sleep: { seconds: 5 } } };

const podTemplateHash = (template: V1PodTemplateSpec) => createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 16);

export interface EndpointObjectsParams {
  endpoint: EndpointSpec;
  namespace: string;
  /** The endpoint workflow's id only: the objects outlive each of its runs (continue-as-new). */
  owner: { workflowId: string };
  pool: string;
  taints: string[];
  gpus: number;
  /** 0 while scaled to zero. */
  replicas: number;
  desired: DesiredState;
  /** The worker image: the router sidecar runs its `adapter-router` command. */
  workerImage: string;
}

export interface EndpointObjects {
  deployment: V1Deployment;
  service: V1Service;
  configMap: V1ConfigMap;
}

/** The desired-state ConfigMap alone: the workflow rewrites it on every change. */
export function desiredStateConfigMap(p: Pick<EndpointObjectsParams, 'endpoint' | 'namespace' | 'owner' | 'desired'>): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: desiredStateConfigMapName(p.endpoint.name), namespace: p.namespace, ...ownedMetadata(p.owner) },
    data: { [desiredStateKey]: JSON.stringify(p.desired) },
  };
}

export function endpointObjects(p: EndpointObjectsParams, images: ContainerImages): EndpointObjects {
  const model = findModelPreset(p.endpoint.baseModel);
  if (!model) throw new Error(`unknown base model ${p.endpoint.baseModel}`);
  const name = p.endpoint.name;
  const selector = { ...runLabels(p.owner), [roleLabel]: roles.inference, app: name };
  const labels = { ...selector, [modelLabel]: model.name };
  const vllm = vllmServerCommand({ servedModelName: model.name, weightsPath, port: vllmPort, maxLoras: p.endpoint.maxLoras, maxLoraRank: p.endpoint.maxLoraRank });
  const template: V1PodTemplateSpec = {
    // The AKS workload identity webhook gives the router its service account's Azure identity (AcrPull).
    metadata: { labels: { ...labels, 'azure.workload.identity/use': 'true' } },
    spec: {
      ...onPool(p.pool, p.taints),
      serviceAccountName: adapterRouterServiceAccount,
      initContainers: [weightsInitContainer(images, model)],
      containers: [
        {
          // First: the gpu-simulator reads the server's flags from the first container, as from inference.ts's.
          name: 'vllm',
          image: images.vllm,
          // --host (vllm/entrypoints/openai/cli_args.py): only the router, in the same pod's network namespace,
          // reaches vLLM, so its load/unload routes stay private.
          args: [...vllm.args, '--host', '127.0.0.1'],
          env: vllm.env,
          // No probes here: the kubelet probes the pod IP, which vLLM does not listen on; the router's readiness implies vLLM's.
          lifecycle: drainBeforeStop,
          resources: { requests: { 'nvidia.com/gpu': String(p.gpus) }, limits: { 'nvidia.com/gpu': String(p.gpus) } },
          volumeMounts: [
            { name: 'weights', mountPath: weightsPath },
            { name: 'adapters', mountPath: adapterMountPath, readOnly: true },
            { name: 'dshm', mountPath: '/dev/shm' },
          ],
        },
        {
          name: adapterRouterContainer,
          image: p.workerImage,
          command: ['node', '--import', 'tsx', 'workers/main.ts', 'adapter-router'],
          env: [
            { name: 'ADAPTER_ROUTER_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'ADAPTER_ROUTER_CONFIGMAP', value: desiredStateConfigMapName(name) },
            { name: 'ADAPTER_ROUTER_VLLM_URL', value: `http://127.0.0.1:${vllmPort}` },
            { name: 'ADAPTER_ROUTER_ADAPTER_DIR', value: adapterMountPath },
            { name: 'ADAPTER_ROUTER_BASE_MODEL', value: model.name },
            { name: 'ADAPTER_ROUTER_MAX_LORA_RANK', value: String(p.endpoint.maxLoraRank) },
            { name: 'ADAPTER_ROUTER_PORT', value: String(routerPort) },
          ],
          ports: [{ name: 'http', containerPort: routerPort }],
          readinessProbe: { httpGet: { path: routerPaths.ready, port: routerPort }, periodSeconds: 2, failureThreshold: 1 },
          lifecycle: drainBeforeStop,
          // As the worker runs (deploy/worker-deployment.yaml): the image's `node` user, nothing writable but its volumes.
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: [
            { name: 'adapters', mountPath: adapterMountPath },
            { name: 'router-tmp', mountPath: '/tmp' }, // tsx's compile cache
          ],
        },
      ],
      volumes: [...servingVolumes(), { name: 'router-tmp', emptyDir: {} }],
    },
  };
  const owned = ownedMetadata(p.owner, labels);
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: p.namespace, ...owned, annotations: { ...owned.annotations, [podTemplateHashAnnotation]: podTemplateHash(template) } },
    spec: {
      replicas: p.replicas,
      // The pool has a node per replica and no more: a surge pod would never schedule, so a new pod
      // template (e.g. a new worker image) replaces one replica at a time instead.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      selector: { matchLabels: selector },
      template,
    },
  };
  const service = servingService({ name, namespace: p.namespace, ...owned }, selector, routerPort);
  return { deployment, service, configMap: desiredStateConfigMap(p) };
}
