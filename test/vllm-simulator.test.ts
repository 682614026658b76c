// The gpu-simulator's vLLM contract, per replica: /v1/models, runtime LoRA load/unload with
// vLLM's checks and error codes, completions that differ per adapter, the bad-adapter knob,
// Prometheus counters, and a replaced pod that comes back with no runtime-loaded adapters.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { roleLabel, roles, modelLabel } from '../activities/kubernetes/labels.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { writeAdapter } from '../scripts/stack/gpu-simulator/adapter-files.js';
import { emptyDirPath } from '../scripts/stack/gpu-simulator/cluster.js';
import { pushAdapterImage } from '../activities/registry/adapter-image.js';
import { kwokNodeAnnotation } from '../scripts/stack/components.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { startLoad } from '../scripts/load-generator.js';
import { config, core, createNamespace, eventually, simulator, unique } from './support.js';

const stack = loadStackConfig();
const simulatorUrl = process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080';
const namespace = `vllm-${unique()}`;
const node = `vllm-node-${unique()}`;
const base = 'phi-3-mini-4k-instruct';
const prompts = Array.from({ length: 12 }, (_, i) => `question ${i}: name a colour`);

function inferencePod(name: string, runtimeUpdating = true, extra: { args?: string[]; initImage?: string } = {}): V1Pod {
  return {
    metadata: { name, labels: { [roleLabel]: roles.inference, [modelLabel]: base, app: name } },
    spec: {
      nodeName: node,
      containers: [
        {
          name: 'inference',
          image: 'vllm/vllm-openai:v0.9.0',
          args: ['--model', '/workspace/weights', '--served-model-name', base, '--enable-lora', '--max-loras', '2', '--max-lora-rank', '16', ...(extra.args ?? [])],
          env: runtimeUpdating ? [{ name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' }] : [],
          volumeMounts: [{ name: 'adapters', mountPath: '/mnt/adapters' }],
        },
      ],
      // The puller the per-run Deployment uses (activities/kubernetes/inference.ts).
      initContainers: extra.initImage
        ? [
            {
              name: 'adapter-pull',
              image: 'gcr.io/go-containerregistry/crane:debug',
              command: ['sh', '-c', `mkdir -p /mnt/adapters/pulled && crane export ${extra.initImage} - | tar -xf - -C /mnt/adapters/pulled --strip-components=1 data`],
              volumeMounts: [{ name: 'adapters', mountPath: '/mnt/adapters' }],
            },
          ]
        : undefined,
      volumes: [{ name: 'adapters', emptyDir: {} }],
    },
  };
}

async function startPod(name: string, runtimeUpdating = true, extra: { args?: string[]; initImage?: string } = {}): Promise<V1Pod> {
  await core.createNamespacedPod({ namespace, body: inferencePod(name, runtimeUpdating, extra) });
  return eventually(async () => {
    const pod = await core.readNamespacedPod({ name, namespace });
    return pod.status?.phase === 'Running' ? pod : undefined;
  }, `pod ${name} Running`);
}

/** Puts adapter files in the pod's emptyDir, as the puller that fetches an adapter image by digest would. */
function placeAdapter(pod: V1Pod, folder: string, lora: { r: number; targetModules: string[] }): string {
  writeAdapter(join(emptyDirPath(join(stack.stateDir, 'data', 'volumes'), pod.metadata!.uid!, 'adapters'), folder), { loraAlpha: 16, loraDropout: 0, ...lora });
  return `/mnt/adapters/${folder}`;
}

/** The parts of vLLM's JSON answers these tests read. */
interface VllmJson {
  data: { id: string }[];
  choices: { text: string }[];
  message: string;
}

async function call(pod: string, path: string, body?: unknown) {
  const res = await fetch(`${simulatorUrl}/pods/${namespace}/${pod}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json: json as VllmJson };
}

const modelIds = async (pod: string) => (await call(pod, '/v1/models')).json.data.map((m) => m.id);
const answers = async (pod: string, model: string) =>
  Promise.all(prompts.map(async (prompt) => (await call(pod, '/v1/completions', { model, prompt, max_tokens: 16 })).json.choices[0]!.text));

beforeAll(async () => {
  await createNamespace(namespace);
  await core.createNode({
    body: {
      metadata: { name: node, annotations: { [kwokNodeAnnotation.key]: kwokNodeAnnotation.value }, labels: { type: 'kwok', 'kubernetes.io/hostname': node } },
    },
  });
});

afterEach(async () => {
  await simulator.settings({ badAdapters: [] });
});

afterAll(async () => {
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await core.deleteNode({ name: node }).catch(() => undefined);
});

describe("the gpu-simulator's vLLM server (SIMULATION)", () => {
  it('loads and unloads adapters at runtime with vLLM’s checks, messages and status codes', async () => {
    const pod = await startPod('runtime');
    const path = placeAdapter(pod, 'support-v1', { r: 8, targetModules: ['q_proj', 'v_proj'] });
    const tooBig = placeAdapter(pod, 'wide', { r: 32, targetModules: ['q_proj', 'v_proj'] });
    expect(await call('runtime', '/health')).toMatchObject({ status: 200, text: '' });
    expect(await modelIds('runtime')).toEqual([base]);

    expect(await call('runtime', '/v1/load_lora_adapter', { lora_name: 'support-v1', lora_path: path })).toMatchObject({
      status: 200,
      text: "Success: LoRA adapter 'support-v1' added successfully.",
    });
    const models = (await call('runtime', '/v1/models')).json.data;
    expect(models[1]).toMatchObject({ id: 'support-v1', object: 'model', root: path, parent: base });

    const again = await call('runtime', '/v1/load_lora_adapter', { lora_name: 'support-v1', lora_path: path });
    expect(again.status).toBe(400);
    expect(again.json).toEqual({ object: 'error', message: "The lora adapter 'support-v1' has already been loaded.", type: 'InvalidUserInput', param: null, code: 400 });
    expect((await call('runtime', '/v1/load_lora_adapter', { lora_name: 'x' })).json).toMatchObject({ code: 400, message: "Both 'lora_name' and 'lora_path' must be provided." });
    const missing = await call('runtime', '/v1/load_lora_adapter', { lora_name: 'x', lora_path: '/mnt/adapters/nothing-here' });
    expect(missing.status).toBe(404);
    expect(missing.json.message).toMatch(/No adapter found for \/mnt\/adapters\/nothing-here/);
    const wide = await call('runtime', '/v1/load_lora_adapter', { lora_name: 'wide', lora_path: tooBig });
    expect(wide.status).toBe(400);
    expect(wide.json.message).toBe('LoRA rank 32 is greater than max_lora_rank 16.');
    expect(await modelIds('runtime')).toEqual([base, 'support-v1']);

    expect(await call('runtime', '/v1/unload_lora_adapter', { lora_name: 'support-v1' })).toMatchObject({
      status: 200,
      text: "Success: LoRA adapter 'support-v1' removed successfully.",
    });
    const gone = await call('runtime', '/v1/unload_lora_adapter', { lora_name: 'support-v1' });
    expect(gone.status).toBe(404);
    expect(gone.json).toMatchObject({ type: 'NotFoundError', message: "The lora adapter 'support-v1' cannot be found." });
    expect(await modelIds('runtime')).toEqual([base]);
  });

  it('has no runtime load routes without VLLM_ALLOW_RUNTIME_LORA_UPDATING', async () => {
    const pod = await startPod('static', false);
    const path = placeAdapter(pod, 'a', { r: 8, targetModules: ['q_proj'] });
    const res = await call('static', '/v1/load_lora_adapter', { lora_name: 'a', lora_path: path });
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ detail: 'Not Found' });
  });

  it('answers deterministically per adapter, 404s an unknown model, and a bad adapter answers badly', async () => {
    const pod = await startPod('answers');
    for (const [name, modules] of [['one', ['q_proj', 'v_proj']], ['two', ['q_proj', 'k_proj', 'v_proj']]] as const) {
      const path = placeAdapter(pod, name, { r: 8, targetModules: [...modules] });
      expect((await call('answers', '/v1/load_lora_adapter', { lora_name: name, lora_path: path })).status).toBe(200);
    }
    const one = await answers('answers', 'one');
    expect(await answers('answers', 'one')).toEqual(one);
    expect(await answers('answers', 'two')).not.toEqual(one);
    expect(one.filter((a) => a.includes('name a colour')).length).toBeGreaterThan(0);

    const chat = await call('answers', '/v1/chat/completions', { model: 'one', messages: [{ role: 'user', content: prompts[0] }] });
    expect(chat.json).toMatchObject({ object: 'chat.completion', model: 'one', choices: [{ message: { role: 'assistant', content: one[0] } }] });

    const unknown = await call('answers', '/v1/completions', { model: 'three', prompt: 'hi' });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ object: 'error', message: 'The model `three` does not exist.', type: 'NotFoundError', param: null, code: 404 });

    await simulator.settings({ badAdapters: ['one'] });
    expect((await answers('answers', 'one')).filter((a) => a.includes('name a colour'))).toEqual([]);
    expect(await answers('answers', 'two')).not.toEqual(await answers('answers', 'one'));
  });

  it('counts requests and errors under vLLM’s metric names', async () => {
    const pod = await startPod('metrics');
    const path = placeAdapter(pod, 'm', { r: 8, targetModules: ['q_proj'] });
    await call('metrics', '/v1/load_lora_adapter', { lora_name: 'm', lora_path: path });
    await answers('metrics', 'm');
    await call('metrics', '/v1/completions', { model: 'nope', prompt: 'x' });
    const metrics = (await call('metrics', '/metrics')).text;
    expect(metrics).toContain(`vllm:request_success_total{finished_reason="stop",model_name="${base}"} ${prompts.length}`);
    expect(metrics).toContain(`vllm:num_requests_running{model_name="${base}"} 0`);
    expect(metrics).toMatch(/vllm:lora_requests_info\{max_lora="2",/);
    expect(metrics).toContain(`http_requests_total{handler="/v1/completions",method="POST",status="2xx"} ${prompts.length}`);
    expect(metrics).toContain('http_requests_total{handler="/v1/completions",method="POST",status="4xx"} 1');
  });

  it('a replaced pod comes back with no runtime-loaded adapters', async () => {
    const first = await startPod('restarts');
    const path = placeAdapter(first, 'r', { r: 8, targetModules: ['q_proj'] });
    expect((await call('restarts', '/v1/load_lora_adapter', { lora_name: 'r', lora_path: path })).status).toBe(200);
    expect(await modelIds('restarts')).toEqual([base, 'r']);
    await core.deleteNamespacedPod({ name: 'restarts', namespace, gracePeriodSeconds: 0 });
    await eventually(() => core.readNamespacedPod({ name: 'restarts', namespace }).then(() => undefined, () => true), 'pod gone');
    const second = await startPod('restarts');
    expect(second.metadata!.uid).not.toBe(first.metadata!.uid);
    expect(await modelIds('restarts')).toEqual([base]);
    // Its emptyDir is new too: the adapter has to be pulled again before it can be loaded.
    expect((await call('restarts', '/v1/load_lora_adapter', { lora_name: 'r', lora_path: path })).status).toBe(404);
  });

  it('serves a Service through its ready pods', async () => {
    await startPod('behind');
    await core.createNamespacedService({ namespace, body: { metadata: { name: 'behind' }, spec: { selector: { app: 'behind' }, ports: [{ port: 80, targetPort: 5000 }] } } });
    const res = await fetch(`${simulatorUrl}/services/${namespace}/behind/v1/models`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual([base]);
  });

  it('pulls an adapter image by digest into the pod, as its init container would, and serves it by content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adapter-'));
    writeAdapter(dir, { r: 8, loraAlpha: 16, loraDropout: 0, targetModules: ['q_proj', 'v_proj'] });
    const repository = `adapters/vllm-${unique()}`;
    const registry = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
    const { digest } = await pushAdapterImage(registry, dir, 'v1', { 'sh.kaito.model.name': base });
    const image = `${new URL(config.registry.endpoint).host}/${repository}@${digest}`;
    await startPod('pulled', true, { args: ['--lora-modules', 'static=/mnt/adapters/pulled'], initImage: image });
    expect(await modelIds('pulled')).toEqual([base, 'static']);
    // Loaded again at runtime under another name from the same files: the same adapter, the same answers.
    expect((await call('pulled', '/v1/load_lora_adapter', { lora_name: 'again', lora_path: '/mnt/adapters/pulled' })).status).toBe(200);
    expect(await answers('pulled', 'again')).toEqual(await answers('pulled', 'static'));
  });

  it('answers a load generator: every request counted by status and by the model that answered', async () => {
    await startPod('load');
    const url = `${simulatorUrl}/pods/${namespace}/load`;
    const started = Date.now();
    const good = startLoad({ url, model: base, concurrency: 3 });
    const unknown = startLoad({ url, model: 'no-such-adapter', concurrency: 1 });
    await eventually(async () => (good.report().requests >= 30 && unknown.report().requests >= 5 ? true : undefined), 'the callers to make requests');
    const [served, refused] = await Promise.all([good.stop(), unknown.stop()]);

    expect(served).toMatchObject({ failed: 0, byServedModel: { [base]: served.requests }, failures: [] });
    expect(served.byStatus).toEqual({ 200: served.requests });
    expect(served.latencyMs.p50).toBeLessThanOrEqual(served.latencyMs.p99!);
    expect(good.firstServedBy(base)).toBeGreaterThanOrEqual(started);
    expect(refused).toMatchObject({ ok: 0, failed: refused.requests, byStatus: { 404: refused.requests }, byServedModel: {} });
    expect(refused.failures[0]!.body).toContain('no-such-adapter');
    // stop() waited for every caller: nothing starts afterwards, and report(since) counts only what started since.
    expect(good.report(Date.now() + 1).requests).toBe(0);
    expect(good.report(started).requests).toBe(served.requests);
  });
});
