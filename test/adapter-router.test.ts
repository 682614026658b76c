// The endpoint's data plane on the local stack: the objects endpointObjects builds, created in a run
// namespace on a GPU pool of the AKS emulator; the gpu-simulator runs the product's adapter-router
// per pod (SIMULATION of the sidecar's container) in front of that pod's simulated vLLM. Replicas
// converge to the desired-state ConfigMap, the alias switches with no failed request and no pod
// restart, a replaced pod comes back with the endpoint's adapters, an adapter over max-lora-rank
// is refused and the alias keeps its version, and an API server restart does not lose the watch.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, AuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterRouterServiceAccount, desiredStateConfigMap, endpointObjects } from '../activities/kubernetes/endpoint-objects.js';
import { defaultImages } from '../activities/kubernetes/tuning-job.js';
import type { DesiredState, RouterStatus } from '../domain/adapter-router.js';
import { parseEndpointSpec } from '../domain/endpoint.js';
import { restartComponent } from '../scripts/chaos/processes.js';
import { loadStackConfig, projectRoot } from '../scripts/stack/config.js';
import { podServiceAccountKubeConfig } from '../scripts/stack/gpu-simulator/router-replica.js';
import { emptyDirPath } from '../scripts/stack/gpu-simulator/cluster.js';
import { adminKubeConfig, clusterName, containerService, core, createRunNamespace, eventually, pushSimulatedAdapter, resourceGroup, unique } from './support.js';

const simulatorUrl = process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080';
const apps = adminKubeConfig.makeApiClient(AppsV1Api);
const namespace = `router-${unique()}`;
const pool = `rt${unique()}`;
const fast = { updateIntervalInMs: 200 };
const endpoint = parseEndpointSpec({ name: 'support', baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4', replicas: 2, maxLoraRank: 16 });
const owner = { workflowId: `endpoint-${namespace}` };
const repository = `adapters/router-${unique()}`;
const images: Record<'v1' | 'v2' | 'wide', string> = { v1: '', v2: '', wide: '' };

/** Pushes an adapter image and returns it by digest; `alpha` tells same-rank adapters apart. */
async function pushAdapter(tag: string, r: number, alpha: number): Promise<string> {
  return (await pushSimulatedAdapter({ r, loraAlpha: alpha }, { repository, tag, annotations: { 'sh.kaito.model.name': endpoint.baseModel } })).image;
}

async function call(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const res = await fetch(`${simulatorUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // metrics are text
  }
  return { status: res.status, json, text };
}

const complete = (via: string) => call(`${via}/v1/completions`, { model: 'bot', prompt: 'name a colour', max_tokens: 8 });
const service = `/services/${namespace}/${endpoint.name}`;
const podPath = (pod: V1Pod) => `/pods/${namespace}/${pod.metadata!.name}`;
const routerStatus = async (pod: V1Pod) => (await call(`${podPath(pod)}/_router/status`)).json as unknown as RouterStatus;

async function runningPods(): Promise<V1Pod[]> {
  const { items } = await core.listNamespacedPod({ namespace, labelSelector: `app=${endpoint.name}` });
  return items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
}

async function writeDesired(desired: DesiredState): Promise<void> {
  const configMap = desiredStateConfigMap({ endpoint, namespace, owner, desired });
  await core.replaceNamespacedConfigMap({ name: configMap.metadata!.name!, namespace, body: configMap });
}

/** The replicas once every one of them has applied `generation`. */
const converged = (generation: number) =>
  eventually(async () => {
    const pods = await runningPods();
    if (pods.length !== endpoint.replicas) return undefined;
    const statuses = await Promise.all(pods.map(routerStatus));
    return statuses.every((s) => s.appliedGeneration >= generation) ? pods : undefined;
  }, `every replica applied generation ${generation}`);

beforeAll(async () => {
  await createRunNamespace(namespace);
  await containerService.agentPools.beginCreateOrUpdateAndWait(
    resourceGroup, clusterName, pool, { count: endpoint.replicas, vmSize: endpoint.vmSize, mode: 'User', nodeTaints: ['sku=gpu:NoSchedule'] }, fast,
  );
  images.v1 = await pushAdapter('v1', 8, 8);
  images.v2 = await pushAdapter('v2', 8, 16);
  images.wide = await pushAdapter('wide', 32, 32);
  const desired = { generation: 1, adapters: [{ versionName: 'bot-v1', image: images.v1 }], aliases: { bot: 'bot-v1' } };
  const objects = endpointObjects(
    { endpoint, namespace, owner, pool, taints: ['sku=gpu:NoSchedule'], gpus: 1, replicas: endpoint.replicas, desired, workerImage: 'aks-finetune/worker:0.1.0' },
    defaultImages,
  );
  await core.createNamespacedConfigMap({ namespace, body: objects.configMap });
  await core.createNamespacedService({ namespace, body: objects.service });
  await apps.createNamespacedDeployment({ namespace, body: objects.deployment });
}, 180_000);

afterAll(async () => {
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, fast).catch(() => undefined);
});

describe('the adapter-router sidecar (product code, run per simulated pod)', () => {
  it("may read its namespace's ConfigMaps and nothing else", async () => {
    const authorization = adminKubeConfig.makeApiClient(AuthorizationV1Api);
    const may = async (verb: string, resource: string, ns: string) =>
      (await authorization.createSubjectAccessReview({
        body: { spec: { user: `system:serviceaccount:${namespace}:${adapterRouterServiceAccount}`, resourceAttributes: { verb, resource, namespace: ns } } },
      })).status?.allowed;
    expect(await may('watch', 'configmaps', namespace)).toBe(true);
    expect(await may('update', 'configmaps', namespace)).toBe(false);
    expect(await may('get', 'secrets', namespace)).toBe(false);
    expect(await may('list', 'configmaps', 'kube-system')).toBe(false);
  });

  it('loads the desired adapters on every replica and resolves the alias, counting per alias and version', async () => {
    const pods = await converged(1);
    for (const pod of pods) {
      expect(await routerStatus(pod)).toMatchObject({ appliedGeneration: 1, loaded: ['bot-v1'], aliases: { bot: 'bot-v1' }, errors: [] });
      const models = (await call(`${podPath(pod)}/v1/models`)).json.data as { id: string; root: string }[];
      expect(models.map((m) => m.id)).toEqual([endpoint.baseModel, 'bot-v1', 'bot']);
      expect(models.find((m) => m.id === 'bot')?.root).toBe('bot-v1');
      // vLLM's load route is the router's alone.
      expect((await call(`${podPath(pod)}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: '/tmp' })).status).toBe(403);
    }
    const answer = await complete(service);
    expect(answer).toMatchObject({ status: 200, json: { model: 'bot-v1' } });
    const metrics = (await call(`${podPath(pods[0]!)}/metrics`)).text + (await call(`${podPath(pods[1]!)}/metrics`)).text;
    expect(metrics).toMatch(/^adapter_router_requests_total\{model="bot",version="bot-v1",code="200"\} 1$/m);
    expect(metrics).toMatch(/^vllm:request_success_total\{/m);
  });

  it('switches the alias to a new version under load with no failed request and no pod restart', async () => {
    const before = (await converged(1)).map((p) => p.metadata!.uid).sort();
    const served: string[] = [];
    const failures: string[] = [];
    let stop = false;
    // Four clients calling the alias back to back, through the Service (both replicas in turn).
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          const { status, json, text } = await complete(service);
          if (status === 200) served.push(json.model as string);
          else failures.push(`${status} ${text}`);
        }
      }),
    );
    try {
      // The load must reach v1 before the switch: on a busy machine the first answers can come after it.
      await eventually(async () => (served.includes('bot-v1') ? true : undefined), 'requests before the switch');
      await writeDesired({ generation: 2, adapters: [{ versionName: 'bot-v1', image: images.v1 }, { versionName: 'bot-v2', image: images.v2 }], aliases: { bot: 'bot-v2' } });
      await converged(2);
      await writeDesired({ generation: 3, adapters: [{ versionName: 'bot-v2', image: images.v2 }], aliases: { bot: 'bot-v2' } });
      await converged(3);
      const requestsBefore = served.length;
      await eventually(async () => (served.length > requestsBefore + 5 ? true : undefined), 'requests after the switch');
    } finally {
      stop = true;
      await load;
    }
    expect(failures).toEqual([]);
    expect(served).toContain('bot-v1');
    expect(served.at(-1)).toBe('bot-v2');
    const after = await runningPods();
    expect(after.map((p) => p.metadata!.uid).sort()).toEqual(before);
    for (const pod of after) {
      const vllmModels = (await call(`/pods-vllm/${namespace}/${pod.metadata!.name}/v1/models`)).json.data as { id: string }[];
      expect(vllmModels.map((m) => m.id)).toEqual([endpoint.baseModel, 'bot-v2']); // the leftover was unloaded, its files removed
      expect(readdirSync(emptyDirPath(join(loadStackConfig().stateDir, 'data', 'volumes'), pod.metadata!.uid!, 'adapters')).sort()).toEqual(['bot-v2']);
    }
  });

  it('brings a replaced pod back with the same adapters before it takes traffic', async () => {
    const pods = await converged(3);
    const before = new Set(pods.map((p) => p.metadata!.uid));
    await core.deleteNamespacedPod({ name: pods[0]!.metadata!.name!, namespace });
    const replacement = await eventually(async () => (await runningPods()).find((p) => !before.has(p.metadata!.uid)), 'a replacement pod');
    // Each time the replacement is Ready (its router's readiness, as the probe reports it), it already serves the endpoint's adapters.
    const podReady = async () => (await core.readNamespacedPod({ name: replacement.metadata!.name!, namespace })).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    await eventually(async () => {
      const ready = (await call(`${podPath(replacement)}/_router/ready`)).status === 200 && (await podReady());
      const status = await routerStatus(replacement);
      if (ready) expect(status).toMatchObject({ appliedGeneration: 3, loaded: ['bot-v2'], aliases: { bot: 'bot-v2' } });
      return ready ? true : undefined;
    }, 'the replacement ready');
    await eventually(async () => ((await apps.readNamespacedDeployment({ name: endpoint.name, namespace })).status?.readyReplicas === endpoint.replicas ? true : undefined), 'the Deployment counting both replicas ready');
    expect((await complete(podPath(replacement))).json.model).toBe('bot-v2');
  });

  it('refuses an adapter over max-lora-rank: the status says why and the alias keeps its version', async () => {
    await converged(3);
    await writeDesired({ generation: 4, adapters: [{ versionName: 'bot-v2', image: images.v2 }, { versionName: 'bot-v3', image: images.wide }], aliases: { bot: 'bot-v3' } });
    const pods = await eventually(async () => {
      const all = await runningPods();
      const statuses = await Promise.all(all.map(routerStatus));
      return all.length === endpoint.replicas && statuses.every((s) => s.seenGeneration === 4 && s.errors.length > 0) ? all : undefined;
    }, 'every replica to report generation 4 failed');
    for (const pod of pods) {
      const status = await routerStatus(pod);
      expect(status).toMatchObject({ appliedGeneration: 3, aliases: { bot: 'bot-v2' }, loaded: ['bot-v2'] });
      expect(status.errors).toEqual([{ versionName: 'bot-v3', message: "rank 32 exceeds the endpoint's max-lora-rank 16" }]);
    }
    expect((await complete(service)).json.model).toBe('bot-v2');
  });

  it('follows the desired state across an API server restart (watch ends, list again)', async () => {
    await restartComponent(loadStackConfig(), 'kube-apiserver', 1_000);
    await writeDesired({ generation: 5, adapters: [{ versionName: 'bot-v2', image: images.v2 }, { versionName: 'bot-v4', image: images.v1 }], aliases: { bot: 'bot-v4' } });
    for (const pod of await converged(5)) expect(await routerStatus(pod)).toMatchObject({ loaded: ['bot-v2', 'bot-v4'], aliases: { bot: 'bot-v4' }, errors: [] });
    expect((await complete(service)).json.model).toBe('bot-v4');
  });

  it('adopts what vLLM already serves when the router restarts: the adapter-router command loads nothing again', async () => {
    const [pod] = await converged(5);
    const vllm = `/pods-vllm/${namespace}/${pod!.metadata!.name}`;
    const loadCalls = async () => [...(await call(`${vllm}/metrics`)).text.matchAll(/^http_requests_total\{handler="\/v1\/load_lora_adapter".*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const loadsBefore = await loadCalls();
    expect(loadsBefore).toBeGreaterThan(0); // the first router loaded them
    // The worker image's command, as the sidecar container runs it, with the pod's ServiceAccount token.
    const dir = mkdtempSync(join(tmpdir(), 'router-restart-'));
    writeFileSync(join(dir, 'kubeconfig'), (await podServiceAccountKubeConfig(adminKubeConfig, pod!)).exportConfig());
    const env = {
      ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), ADAPTER_ROUTER_NAMESPACE: namespace, ADAPTER_ROUTER_CONFIGMAP: 'support-adapters', ADAPTER_ROUTER_PORT: '0',
      ADAPTER_ROUTER_VLLM_URL: `${simulatorUrl}${vllm}`, ADAPTER_ROUTER_ADAPTER_DIR: dir, ADAPTER_ROUTER_BASE_MODEL: endpoint.baseModel, ADAPTER_ROUTER_MAX_LORA_RANK: '16',
    };
    const router = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts', 'adapter-router'], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let output = '';
      router.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const port = await eventually(async () => /listening on :(\d+)/.exec(output)?.[1], 'the router listening');
      const status = await eventually(async () => {
        const s = (await fetch(`http://127.0.0.1:${port}/_router/status`).then((r) => r.json())) as RouterStatus;
        return s.appliedGeneration === 5 ? s : undefined;
      }, 'the restarted router to apply generation 5');
      expect(status).toMatchObject({ loaded: ['bot-v2', 'bot-v4'], aliases: { bot: 'bot-v4' }, errors: [] });
      expect(await loadCalls()).toBe(loadsBefore);
    } finally {
      router.kill('SIGTERM');
    }
  });
});
