// Shared test setup: real clients pointed at the local stack that global-setup started.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { pushAdapterImage } from '../activities/registry/adapter-image.js';
import { EmulatorControl } from '../scripts/stack/aks-emulator/control-client.js';
import { writeAdapter } from '../scripts/stack/gpu-simulator/adapter-files.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { SimulatorControl } from '../scripts/stack/gpu-simulator/control-client.js';
import { allowRunsIn } from '../scripts/stack/worker-rbac.js';
import { createAzureCredential, createContainerServiceClient, createKubeConfig, createRegistryContentClient } from '../workers/clients.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { loadWorkerConfig } from '../workers/config.js';

export const config = loadWorkerConfig(process.env);
export const containerService = createContainerServiceClient(config);
/** The worker's identity (KUBECONFIG), with deploy/'s RBAC only: for the worker's activities and Job watcher. */
export const kubeConfig = createKubeConfig(config);
/** The stack's admin identity: what tests set up, check and clean up beyond the worker's rights. */
export const adminKubeConfig = new KubeConfig();
adminKubeConfig.loadFromFile(loadStackConfig().kubeconfig);
export const core = adminKubeConfig.makeApiClient(CoreV1Api);
export const emulator = new EmulatorControl(config.azure.armEndpoint);
export const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
export const { resourceGroup, clusterName } = config.azure;

/** A short random suffix that keeps names from different tests and runs apart. */
export const unique = (length = 6) => randomBytes(8).toString('hex').slice(0, length);

/**
 * The fineTune request the tests and the history recorder run: phi-3 QLoRA on one A100, checks
 * every second, the adapter pushed to a repository of its own in the local registry.
 */
export const testFineTuneRequest = (overrides: Partial<FineTuneRequest> = {}): FineTuneRequest => ({
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { urls: ['https://datasets.example.com/support/chats.jsonl'] },
  output: { image: `${new URL(config.registry.endpoint).host}/adapters/test-${unique()}:v1` },
  gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
  pollIntervalSeconds: 1,
  ...overrides,
});

/**
 * A new namespace, returned once pods can be created in it: the controller-manager adds its
 * `default` ServiceAccount a moment after the namespace, and until then a pod is refused (403).
 */
export async function createNamespace(namespace: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await eventually(
    () => core.readNamespacedServiceAccount({ name: 'default', namespace }).then(() => true, () => undefined),
    `the default ServiceAccount of namespace ${namespace}`,
  );
}

/** A new namespace that runs may use, made the way an operator makes one (docs/operations.md, "Deploying to AKS"). */
export async function createRunNamespace(namespace: string): Promise<void> {
  await createNamespace(namespace);
  await allowRunsIn(adminKubeConfig, namespace);
}

/** Polls `probe` until it returns a value other than undefined. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const poolNodes = async (pool: string) =>
  (await core.listNode({ labelSelector: `kubernetes.azure.com/agentpool=${pool}` })).items;

/** Pushes a one-layer image whose content is `content` to repository:v1 in the local registry. */
export async function pushDataset(repository: string, content: string): Promise<void> {
  const client = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
  const layer = await client.uploadBlob(Buffer.from(content));
  const empty = await client.uploadBlob(Buffer.from('{}'));
  await client.setManifest(
    {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: empty.digest, size: empty.sizeInBytes },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.sizeInBytes }],
    },
    { tag: 'v1' },
  );
}

/**
 * Pushes a distinct phi-3 adapter image in KAITO's layout to a repository of its own and returns
 * it by digest; its alpha makes its digest, and so the simulated vLLM's answers to it.
 */
export async function pushTestAdapter(loraAlpha: number, baseModel = 'phi-3-mini-4k-instruct', lineage: Record<string, string> = {}): Promise<string> {
  const pushed = await pushSimulatedAdapter({ r: 8, loraAlpha, loraDropout: 0.05 }, { repository: `adapters/promotion-${unique()}`, annotations: { ...lineage, 'sh.kaito.model.name': baseModel } });
  return pushed.image;
}

/**
 * A simulated adapter (its rank and alpha make its content, so the simulated vLLM's answers)
 * pushed to the stack's registry as an adapter image: its repository's client, its digest, and
 * the image by digest. Target modules q_proj,v_proj and dropout 0 unless given.
 */
export async function pushSimulatedAdapter(
  lora: { r: number; loraAlpha: number; loraDropout?: number; targetModules?: string[] },
  image: { repository: string; tag?: string; annotations: Record<string, string> },
) {
  const dir = mkdtempSync(join(tmpdir(), 'adapter-'));
  writeAdapter(dir, { loraDropout: 0, targetModules: ['q_proj', 'v_proj'], ...lora });
  const client = createRegistryContentClient(config.registry.endpoint, image.repository, createAzureCredential(config.azure.staticToken));
  const { digest } = await pushAdapterImage(client, dir, image.tag ?? 'v1', image.annotations);
  return { client, repository: image.repository, digest, image: `${new URL(config.registry.endpoint).host}/${image.repository}@${digest}` };
}

/** The agent pool, or undefined when ARM has none of that name. */
export const poolOf = (name: string) =>
  containerService.agentPools.get(resourceGroup, clusterName, name).then(
    (p) => p,
    (err: { statusCode?: number }) => (err.statusCode === 404 ? undefined : Promise.reject(err)),
  );

/** "Kind/name" of the Jobs, ConfigMaps, PVCs, Deployments and Services in the namespace that match the selector. */
export async function objectsLabelled(namespace: string, labelSelector: string): Promise<string[]> {
  const batch = adminKubeConfig.makeApiClient(BatchV1Api);
  const apps = adminKubeConfig.makeApiClient(AppsV1Api);
  const names = (kind: string, items: { metadata?: { name?: string } }[]) => items.map((i) => `${kind}/${i.metadata?.name}`);
  return [
    ...names('Job', (await batch.listNamespacedJob({ namespace, labelSelector })).items),
    ...names('ConfigMap', (await core.listNamespacedConfigMap({ namespace, labelSelector })).items),
    ...names('PersistentVolumeClaim', (await core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })).items),
    ...names('Deployment', (await apps.listNamespacedDeployment({ namespace, labelSelector })).items),
    ...names('Service', (await core.listNamespacedService({ namespace, labelSelector })).items),
  ];
}
