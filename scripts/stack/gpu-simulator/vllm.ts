// SIMULATION of vLLM's OpenAI-compatible server, one per inference pod (replica), without a GPU.
// It follows vLLM's HTTP contract; the answers are made up, deterministically per adapter.
// Sources: vllm-project/vllm at v0.8.5, the image activities/kubernetes/tuning-job.ts deploys:
// - vllm/entrypoints/openai/serving_models.py: /v1/models cards (LoRA cards carry `parent` and
//   `root`), load/unload checks, their messages, types and status codes, the success text.
// - vllm/entrypoints/openai/api_server.py: the load/unload routes exist only when
//   VLLM_ALLOW_RUNTIME_LORA_UPDATING is true (otherwise FastAPI's 404 {"detail":"Not Found"});
//   success answers are plain text, status 200; GET /health answers 200 with an empty body.
// - vllm/entrypoints/openai/serving_engine.py `_check_model`: an unknown `model` is 404
//   NotFoundError "The model `x` does not exist."; errors are ErrorResponse
//   {object: "error", message, type, param, code}.
// - vllm/lora/peft_helper.py: a rank above --max-lora-rank fails the load (400); vllm/lora/
//   worker_manager.py: a lora_path without adapter files fails "No adapter found for ..." (404).
// - https://docs.vllm.ai/en/v0.8.5/features/lora.html ("Dynamically serving LoRA Adapters"):
//   request bodies {lora_name, lora_path} / {lora_name}, the VLLM_ALLOW_RUNTIME_LORA_UPDATING flag.
// - https://docs.vllm.ai/en/v0.8.5/serving/metrics.html: the vllm:* Prometheus metric names.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';

/** What a replica's command line and environment configure (defaults: vLLM's EngineArgs). */
export interface ServerOptions {
  servedModel: string;
  enableLora: boolean;
  maxLoras: number;
  maxLoraRank: number;
  runtimeLoraUpdating: boolean;
  /** --lora-modules name=path, loaded at start-up. */
  staticLoras: { name: string; path: string }[];
}

export function serverOptions(pod: V1Pod, fallbackModel: string): ServerOptions {
  const container = pod.spec!.containers[0]!;
  const args = container.args ?? [];
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const env = container.env?.find((e) => e.name === 'VLLM_ALLOW_RUNTIME_LORA_UPDATING')?.value ?? '0';
  return {
    servedModel: flag('--served-model-name') ?? fallbackModel,
    enableLora: args.includes('--enable-lora'),
    maxLoras: Number(flag('--max-loras') ?? 1),
    maxLoraRank: Number(flag('--max-lora-rank') ?? 16),
    // vllm/envs.py: "1" or "true", case-insensitive.
    runtimeLoraUpdating: ['1', 'true'].includes(env.trim().toLowerCase()),
    staticLoras: args.flatMap((a, i) => {
      if (args[i - 1] !== '--lora-modules') return [];
      const [name, path] = a.split('=');
      return [{ name: name!, path: path ?? '' }];
    }),
  };
}

export interface VllmSettings {
  /** Adapters (by lora_name or by files digest, sha256:...) whose answers are wrong: exercises gates and rollbacks. */
  badAdapters?: string[];
}

interface LoadedAdapter {
  name: string;
  path: string;
  /** sha256 of adapter_config.json + adapter_model.safetensors: the adapter's identity, as its image digest is. */
  digest: string;
}

interface VllmAnswer {
  status: number;
  body: unknown;
  /** Plain text (vLLM's load/unload success) instead of JSON. */
  text?: boolean;
}

const errorResponse = (status: number, type: string, message: string): VllmAnswer => ({
  status,
  body: { object: 'error', message, type, param: null, code: status },
});
const notFoundRoute: VllmAnswer = { status: 404, body: { detail: 'Not Found' } };

const sha256 = (...parts: (string | Buffer)[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
};

/**
 * The simulated model's answer. A "correct" answer echoes the prompt (as a JSON object when the
 * prompt asks for JSON), so suites can expect a prompt's words; each adapter gets a skill from
 * its digest, and a prompt is answered correctly when its hash with the digest falls under it.
 * A bad adapter is always wrong.
 */
function simulatedAnswer(prompt: string, identity: string, bad: boolean): string {
  const skill = 0.75 + (parseInt(sha256(identity).slice(0, 8), 16) / 0xffffffff) * 0.25;
  const roll = parseInt(sha256(identity, '\0', prompt).slice(0, 8), 16) / 0xffffffff;
  if (bad || roll >= skill) return `SIMULATION: no idea (${sha256(identity, prompt).slice(0, 8)})`;
  return /\bjson\b/i.test(prompt) ? JSON.stringify({ answer: prompt }) : `SIMULATION: ${prompt}`;
}

/** One replica's vLLM server: its loaded adapters and its Prometheus counters live and die with the pod. */
export class SimulatedVllmReplica {
  private readonly adapters = new Map<string, LoadedAdapter>();
  private successes = 0;
  private readonly http = new Map<string, number>();
  private promptTokens = 0;
  private generationTokens = 0;

  constructor(
    private readonly options: ServerOptions,
    /** Maps a path inside the pod to the host folder behind it, or undefined when no volume holds it. */
    private readonly hostPath: (podPath: string) => Promise<string | undefined>,
  ) {}

  /** Starts the server: its --lora-modules load first, and any that fails stops it, as vLLM's init_static_loras does. */
  static async start(options: ServerOptions, hostPath: (podPath: string) => Promise<string | undefined>): Promise<SimulatedVllmReplica> {
    const replica = new SimulatedVllmReplica(options, hostPath);
    for (const lora of options.staticLoras) {
      const loaded = await replica.load({ lora_name: lora.name, lora_path: lora.path });
      if (loaded.status !== 200) throw new Error(`--lora-modules ${lora.name}=${lora.path}: ${(loaded.body as { message: string }).message}`);
    }
    return replica;
  }

  async handle(method: string, path: string, body: unknown, settings: VllmSettings): Promise<VllmAnswer> {
    const answer = await this.route(method, path, body, settings);
    const key = `${path}\0${method}\0${Math.floor(answer.status / 100)}xx`;
    this.http.set(key, (this.http.get(key) ?? 0) + 1);
    return answer;
  }

  private async route(method: string, path: string, body: unknown, settings: VllmSettings): Promise<VllmAnswer> {
    const request = (body ?? {}) as Record<string, unknown>;
    if (method === 'GET' && path === '/health') return { status: 200, body: '', text: true };
    if (method === 'GET' && path === '/metrics') return { status: 200, body: this.metrics(), text: true };
    if (method === 'GET' && path === '/v1/models') return { status: 200, body: this.models() };
    const runtime = this.options.enableLora && this.options.runtimeLoraUpdating;
    if (method === 'POST' && path === '/v1/load_lora_adapter' && runtime) return this.load(request);
    if (method === 'POST' && path === '/v1/unload_lora_adapter' && runtime) return this.unload(request);
    if (method === 'POST' && (path === '/v1/completions' || path === '/v1/chat/completions')) return this.complete(path, request, settings);
    return notFoundRoute;
  }

  private models() {
    const base = this.options.servedModel;
    return {
      object: 'list',
      data: [
        { id: base, object: 'model', owned_by: 'vllm', root: base, parent: null },
        ...[...this.adapters.values()].map((a) => ({ id: a.name, object: 'model', owned_by: 'vllm', root: a.path, parent: base })),
      ],
    };
  }

  private async load(request: Record<string, unknown>): Promise<VllmAnswer> {
    const { lora_name: name, lora_path: path } = request;
    if (typeof name !== 'string' || !name || typeof path !== 'string' || !path) {
      return errorResponse(400, 'InvalidUserInput', "Both 'lora_name' and 'lora_path' must be provided.");
    }
    if (this.adapters.has(name)) return errorResponse(400, 'InvalidUserInput', `The lora adapter '${name}' has already been loaded.`);
    const dir = await this.hostPath(path);
    const configFile = dir && join(dir, 'adapter_config.json');
    const weights = dir && ['adapter_model.safetensors', 'adapter_model.bin'].map((f) => join(dir, f)).find((f) => existsSync(f));
    if (!configFile || !existsSync(configFile) || !weights) {
      return errorResponse(404, 'NotFoundError', `Loading lora ${name} failed: No adapter found for ${path}`);
    }
    const configText = readFileSync(configFile);
    let config: { r?: unknown };
    try {
      config = JSON.parse(configText.toString()) as { r?: unknown };
    } catch {
      return errorResponse(400, 'BadRequestError', `Loading lora ${name} failed: ${path}/adapter_config.json is not JSON`);
    }
    const rank = Number(config.r);
    if (!Number.isInteger(rank) || rank <= 0) return errorResponse(400, 'BadRequestError', `Loading lora ${name} failed: adapter_config.json has no rank r`);
    if (rank > this.options.maxLoraRank) {
      return errorResponse(400, 'BadRequestError', `LoRA rank ${rank} is greater than max_lora_rank ${this.options.maxLoraRank}.`);
    }
    this.adapters.set(name, { name, path, digest: `sha256:${sha256(configText, readFileSync(weights))}` });
    return { status: 200, body: `Success: LoRA adapter '${name}' added successfully.`, text: true };
  }

  private unload(request: Record<string, unknown>): VllmAnswer {
    const name = request.lora_name;
    if (typeof name !== 'string' || !name) {
      return errorResponse(400, 'InvalidUserInput', "either 'lora_name' and 'lora_int_id' needs to be provided.");
    }
    if (!this.adapters.delete(name)) return errorResponse(404, 'NotFoundError', `The lora adapter '${name}' cannot be found.`);
    return { status: 200, body: `Success: LoRA adapter '${name}' removed successfully.`, text: true };
  }

  private complete(path: string, request: Record<string, unknown>, settings: VllmSettings): VllmAnswer {
    const model = typeof request.model === 'string' ? request.model : this.options.servedModel;
    const adapter = this.adapters.get(model);
    if (!adapter && model !== this.options.servedModel) return errorResponse(404, 'NotFoundError', `The model \`${model}\` does not exist.`);
    const chat = path === '/v1/chat/completions';
    const messages = Array.isArray(request.messages) ? (request.messages as { role?: string; content?: unknown }[]) : [];
    const prompt = chat ? String(messages.filter((m) => m.role === 'user').at(-1)?.content ?? '') : String(request.prompt ?? '');
    if (!chat && request.prompt === undefined) return errorResponse(400, 'BadRequestError', 'prompt is required');
    if (chat && messages.length === 0) return errorResponse(400, 'BadRequestError', 'messages is required');
    const bad = !!adapter && (settings.badAdapters ?? []).some((b) => b === adapter.name || b === adapter.digest);
    const text = simulatedAnswer(prompt, adapter?.digest ?? `base:${this.options.servedModel}`, bad);
    const usage = { prompt_tokens: prompt.split(/\s+/).filter(Boolean).length, completion_tokens: text.split(/\s+/).length };
    this.promptTokens += usage.prompt_tokens;
    this.generationTokens += usage.completion_tokens;
    this.successes += 1;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${sha256(model, prompt).slice(0, 16)}`;
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
      : { index: 0, text, logprobs: null, finish_reason: 'stop' };
    return {
      status: 200,
      body: { id, object: chat ? 'chat.completion' : 'text_completion', created: Math.floor(Date.now() / 1000), model, choices: [choice], usage },
    };
  }

  /** Prometheus text: vLLM's own vllm:* series and the HTTP instrumentator's http_requests_total. */
  private metrics(): string {
    const base = this.options.servedModel;
    const lines = [
      '# HELP vllm:num_requests_running Number of requests in model execution batches. (SIMULATION)',
      '# TYPE vllm:num_requests_running gauge',
      `vllm:num_requests_running{model_name="${base}"} 0`,
      '# TYPE vllm:num_requests_waiting gauge',
      `vllm:num_requests_waiting{model_name="${base}"} 0`,
      '# TYPE vllm:lora_requests_info gauge',
      `vllm:lora_requests_info{max_lora="${this.options.maxLoras}",running_lora_adapters="",waiting_lora_adapters=""} ${Date.now() / 1000}`,
      '# TYPE vllm:request_success_total counter',
      // vLLM labels by the served (base) model name; per-adapter traffic is not split out.
      `vllm:request_success_total{finished_reason="stop",model_name="${base}"} ${this.successes}`,
      '# TYPE vllm:prompt_tokens_total counter',
      `vllm:prompt_tokens_total{model_name="${base}"} ${this.promptTokens}`,
      '# TYPE vllm:generation_tokens_total counter',
      `vllm:generation_tokens_total{model_name="${base}"} ${this.generationTokens}`,
      '# TYPE http_requests_total counter',
      ...[...this.http].map(([key, n]) => {
        const [handler, method, status] = key.split('\0');
        return `http_requests_total{handler="${handler}",method="${method}",status="${status}"} ${n}`;
      }),
    ];
    return `${lines.join('\n')}\n`;
  }
}
