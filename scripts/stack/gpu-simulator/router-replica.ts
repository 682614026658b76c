// SIMULATION of an endpoint pod (activities/kubernetes/endpoint-objects.ts): kwok runs no
// containers, so for a pod with an `adapter-router` container the gpu-simulator runs the
// PRODUCT's router (workers/adapter-router.ts, imported, a real HTTP server on an ephemeral
// loopback port) next to the pod's simulated vLLM (served on another ephemeral loopback port,
// as vLLM on 127.0.0.1:5000 in the pod). The router's adapter folder is the host folder behind
// the pod's /mnt/adapters emptyDir, which the simulated vLLM resolves lora_path through; it reads
// the desired state with a token of its own ServiceAccount, minted through the TokenRequest API
// and bound to the pod (as the kubelet's projected token is), so deploy/run-namespace's Role is
// what it may do.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CoreV1Api, KubeConfig, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { adapterRouterContainer } from '../../../activities/kubernetes/endpoint-objects.js';
import { adapterMountPath } from '../../../domain/adapter-router.js';
import { type AdapterRouter, startAdapterRouter } from '../../../workers/adapter-router.js';
import { createAzureCredential } from '../../../workers/clients.js';

export const hasAdapterRouter = (pod: V1Pod): boolean => (pod.spec?.containers ?? []).some((c) => c.name === adapterRouterContainer);

export interface RoutedReplica {
  router: AdapterRouter;
  stop(): Promise<void>;
}

const listen = (server: Server) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });

/** A kubeconfig for the pod's ServiceAccount: the API server of `admin`, a token bound to the pod. */
export async function podServiceAccountKubeConfig(admin: KubeConfig, pod: V1Pod): Promise<KubeConfig> {
  const { name, namespace, uid } = pod.metadata!;
  const request = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? 'default',
    namespace: namespace!,
    // A day: longer than any test or bench run; the token dies with the pod anyway.
    body: { spec: { audiences: [], expirationSeconds: 86_400, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid } } },
  });
  const cluster = admin.getCurrentCluster()!;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'adapter-router', token: request.status!.token }],
    contexts: [{ name: 'adapter-router', cluster: cluster.name, user: 'adapter-router' }],
    currentContext: 'adapter-router',
  });
  return kubeConfig;
}

export async function startRoutedReplica(args: {
  pod: V1Pod;
  admin: KubeConfig;
  /** Answers a request to this pod's simulated vLLM. */
  serveVllm: (req: IncomingMessage, res: ServerResponse) => void;
  /** The host folder behind the pod's /mnt/adapters. */
  adapterHostDir: string;
  log: (line: string) => void;
}): Promise<RoutedReplica> {
  const { pod } = args;
  const env = Object.fromEntries((pod.spec!.containers.find((c) => c.name === adapterRouterContainer)!.env ?? []).map((e) => [e.name, e.value]));
  const vllm = createServer(args.serveVllm);
  const vllmPort = await listen(vllm);
  try {
    const router = await startAdapterRouter({
      kubeConfig: await podServiceAccountKubeConfig(args.admin, pod),
      namespace: pod.metadata!.namespace!,
      configMap: env.ADAPTER_ROUTER_CONFIGMAP!,
      vllmUrl: `http://127.0.0.1:${vllmPort}`,
      adapterDir: args.adapterHostDir,
      vllmAdapterDir: env.ADAPTER_ROUTER_ADAPTER_DIR ?? adapterMountPath,
      baseModel: env.ADAPTER_ROUTER_BASE_MODEL!,
      maxLoraRank: Number(env.ADAPTER_ROUTER_MAX_LORA_RANK),
      registryCredential: createAzureCredential('local-stack'),
      host: '127.0.0.1',
      port: 0,
      resyncMs: 2_000,
      log: (line) => args.log(`adapter-router ${pod.metadata!.namespace}/${pod.metadata!.name}: ${line}`),
    });
    return {
      router,
      stop: async () => {
        await router.stop();
        vllm.closeAllConnections();
        await new Promise<void>((resolve) => vllm.close(() => resolve()));
      },
    };
  } catch (err) {
    vllm.close();
    throw err;
  }
}

const mergePatch = setHeaderOptions('Content-Type', 'application/merge-patch+json');

/**
 * Writes a pod's readiness into its Ready condition and the ready flag of each container with a
 * readiness probe, as the kubelet's prober does (kwok starts such a pod not Ready,
 * scripts/stack/kwok-stages.yaml): the Deployment's readyReplicas and a rollout then wait for
 * replicas that serve. Changes nothing when it agrees.
 */
export async function reflectReadiness(core: CoreV1Api, pod: V1Pod, ready: boolean): Promise<void> {
  const conditions = pod.status?.conditions ?? [];
  if (conditions.find((c) => c.type === 'Ready')?.status === (ready ? 'True' : 'False')) return;
  const now = new Date();
  const flip = (c: (typeof conditions)[number]) => (c.type === 'Ready' || c.type === 'ContainersReady' ? { ...c, status: ready ? 'True' : 'False', lastTransitionTime: now } : c);
  const probed = new Set((pod.spec?.containers ?? []).filter((c) => c.readinessProbe).map((c) => c.name));
  const containerStatuses = (pod.status?.containerStatuses ?? []).map((c) => (probed.has(c.name) ? { ...c, ready } : c));
  await core.patchNamespacedPodStatus({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { status: { conditions: conditions.map(flip), containerStatuses } } }, mergePatch);
}
