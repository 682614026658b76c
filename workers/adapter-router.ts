// `adapter-router`: the sidecar next to vLLM in every endpoint replica (activities/kubernetes/
// endpoint-objects.ts). It keeps its vLLM's LoRA adapters equal to the endpoint's desired state
// (ConfigMap <endpoint>-adapters, watched through the Kubernetes API): pull each adapter image by
// digest into the pod's shared adapter folder, check it against the endpoint, load it through
// vLLM's /v1/load_lora_adapter; only once every desired adapter is loaded switch the alias table,
// then unload leftovers, then report the generation applied. Clients reach vLLM through it: a
// stable alias becomes the version it resolves to, since vLLM cannot rebind a LoRA name. Both
// versions are loaded while the table switches, so the switch fails no request.
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import type { TokenCredential } from '@azure/core-auth';
import { ApiException, CoreV1Api, KubeConfig, type V1ConfigMap, Watch } from '@kubernetes/client-node';
import { pullAdapterImage, type PulledAdapter } from '../activities/registry/adapter-image.js';
import {
  aliasProblems, type DesiredState, desiredStateKey, parseDesiredState, type RequestCount, resolveAlias, routerMetrics, routerPaths, routerPort, type RouterStatus, routerReady,
} from '../domain/adapter-router.js';
import { reconcilePlan } from '../domain/endpoint.js';
import { parseImageReference } from '../domain/image-reference.js';
import { adapterProblems } from '../domain/vllm-server.js';
import { createAzureCredential, createRegistryContentClient } from './clients.js';

export interface AdapterRouterOptions {
  /** Identity for reading the desired-state ConfigMap (in a pod: its ServiceAccount aks-finetune-adapter-router). */
  kubeConfig: KubeConfig;
  namespace: string;
  configMap: string;
  /** vLLM's base URL (in the pod: http://127.0.0.1:5000). */
  vllmUrl: string;
  /** Where the router writes adapter folders. */
  adapterDir: string;
  /** The same folder as vLLM sees it, for lora_path: the pod's shared emptyDir has one path in both containers. */
  vllmAdapterDir: string;
  baseModel: string;
  maxLoraRank: number;
  registryCredential: TokenCredential;
  host: string;
  port: number;
  /** How often the router re-reads vLLM's adapters and retries what failed (a restarted vLLM lost its adapters). */
  resyncMs?: number;
  log: (line: string) => void;
}

export interface AdapterRouter {
  /** The port it listens on (an ephemeral one when asked for 0). */
  port: number;
  status(): RouterStatus;
  stop(): Promise<void>;
}

/** A Kubernetes API error as its Status message; any other error's message. */
function errorMessage(err: unknown): string {
  if (!(err instanceof ApiException)) return err instanceof Error ? err.message : String(err);
  let message = String(err.body);
  try {
    message = (JSON.parse(message) as { message?: string }).message ?? message;
  } catch {
    // not a Status object
  }
  return `Kubernetes API ${err.code}: ${message}`;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** vLLM's answer to a load or unload: plain text on success, an ErrorResponse {message} otherwise. */
async function vllmCall(vllmUrl: string, path: string, body: unknown): Promise<{ status: number; message: string }> {
  const res = await fetch(`${vllmUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  try {
    const error = JSON.parse(text) as { message?: string; detail?: string };
    return { status: res.status, message: error.message ?? error.detail ?? text };
  } catch {
    return { status: res.status, message: text }; // success answers are plain text
  }
}

/** Keeps one vLLM's adapters equal to the desired state; one pass at a time, the latest desired state wins. */
class Reconciler {
  readonly status: RouterStatus = { appliedGeneration: 0, seenGeneration: 0, loaded: [], aliases: {}, errors: [] };
  private desired: DesiredState | undefined;
  private running: Promise<void> | undefined;
  private pending = false;
  /** Images already pulled into their folder, by version name: a retry or a resync does not pull again. */
  private readonly pulled = new Map<string, { image: string; adapter: PulledAdapter }>();

  constructor(private readonly o: AdapterRouterOptions) {}

  offer(desired: DesiredState): void {
    this.desired = desired;
    this.kick();
  }

  reportInvalid(message: string): void {
    this.status.errors = [{ versionName: desiredStateKey, message }];
  }

  kick(): void {
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = (async () => {
      do {
        this.pending = false;
        if (this.desired) await this.apply(this.desired).catch((err: unknown) => this.o.log(`reconcile failed: ${errorMessage(err)}`));
      } while (this.pending);
    })().finally(() => (this.running = undefined));
  }

  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** What vLLM has loaded, from its /v1/models (LoRA cards have a parent): adopts what an earlier router loaded. */
  private async vllmLoaded(): Promise<string[]> {
    const res = await fetch(`${this.o.vllmUrl}/v1/models`);
    if (!res.ok) throw new Error(`vLLM GET /v1/models: ${res.status}`);
    const { data } = (await res.json()) as { data: { id: string; parent?: string | null }[] };
    return data.filter((m) => m.parent).map((m) => m.id);
  }

  private async pull(versionName: string, image: string): Promise<PulledAdapter> {
    const cached = this.pulled.get(versionName);
    if (cached?.image === image) return cached.adapter;
    const ref = parseImageReference(image);
    if (!ref?.digest) throw new Error(`${image} is not an image by digest`);
    const client = createRegistryContentClient(`https://${ref.registry}`, ref.repository, this.o.registryCredential);
    const adapter = await pullAdapterImage(client, ref.digest, join(this.o.adapterDir, versionName));
    this.pulled.set(versionName, { image, adapter });
    return adapter;
  }

  /** Pulls, checks and loads one adapter; the reason it cannot be served otherwise. */
  private async load(versionName: string, image: string): Promise<string | undefined> {
    const adapter = await this.pull(versionName, image);
    const problems = adapterProblems({ baseModel: adapter.annotations['sh.kaito.model.name'], config: adapter.config }, { baseModel: this.o.baseModel, maxLoraRank: this.o.maxLoraRank });
    if (problems.length > 0) return problems.join('; ');
    const { status, message } = await vllmCall(this.o.vllmUrl, '/v1/load_lora_adapter', { lora_name: versionName, lora_path: `${this.o.vllmAdapterDir}/${versionName}` });
    // vllm/entrypoints/openai/serving_models.py: a name already loaded is a 400; it is this very adapter, loaded by an earlier router.
    if (status === 200 || (status === 400 && message.includes('has already been loaded'))) return undefined;
    return `vLLM /v1/load_lora_adapter answered ${status}: ${message}`;
  }

  private async apply(desired: DesiredState): Promise<void> {
    const s = this.status;
    if (desired.generation !== s.seenGeneration) {
      // errors are the seen generation's: a new one starts clean (a retry of the same one keeps them until redone).
      s.seenGeneration = desired.generation;
      s.errors = [];
    }
    let loaded = await this.vllmLoaded();
    const errors = aliasProblems(desired, this.o.baseModel);
    for (const { versionName, image } of reconcilePlan(desired.adapters, loaded).load) {
      const problem = await this.load(versionName, image).catch(errorMessage);
      if (problem) errors.push({ versionName, message: problem });
      else loaded = [...loaded, versionName];
    }
    s.loaded = loaded;
    if (errors.length > 0) {
      // The alias table stays as it is: the endpoint keeps serving what it served.
      s.errors = errors;
      return;
    }
    s.aliases = { ...desired.aliases };
    for (const versionName of reconcilePlan(desired.adapters, loaded).unload) {
      const { status, message } = await vllmCall(this.o.vllmUrl, '/v1/unload_lora_adapter', { lora_name: versionName });
      if (status !== 200 && status !== 404) {
        errors.push({ versionName, message: `vLLM /v1/unload_lora_adapter answered ${status}: ${message}` });
        continue;
      }
      loaded = loaded.filter((n) => n !== versionName);
      // Its files go too: a long-lived endpoint would otherwise fill the emptyDir with every version it ever served.
      this.pulled.delete(versionName);
      await rm(join(this.o.adapterDir, versionName), { recursive: true, force: true });
    }
    s.loaded = loaded;
    s.errors = errors;
    if (errors.length === 0) s.appliedGeneration = desired.generation;
  }
}

/**
 * Follows the desired-state ConfigMap: list, then watch from the list's resourceVersion; when the
 * watch ends or fails (API server restart, expired resourceVersion, token trouble) list again.
 */
function followDesiredState(o: AdapterRouterOptions, onConfigMap: (cm: V1ConfigMap) => void): () => void {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const watch = new Watch(o.kubeConfig);
  const fieldSelector = `metadata.name=${o.configMap}`;
  let stopped = false;
  let current: AbortController | undefined;
  void (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        const list = await core.listNamespacedConfigMap({ namespace: o.namespace, fieldSelector });
        for (const cm of list.items) onConfigMap(cm);
        failures = 0;
        await new Promise<void>((resolve, reject) => {
          watch
            .watch(
              `/api/v1/namespaces/${o.namespace}/configmaps`,
              { fieldSelector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
              (type: string, cm: V1ConfigMap) => {
                if (type === 'ADDED' || type === 'MODIFIED') onConfigMap(cm);
              },
              (err: unknown) => (err ? reject(err as Error) : resolve()),
            )
            .then((controller) => (current = controller), reject);
        });
      } catch (err) {
        if (stopped) return;
        failures += 1;
        o.log(`desired state ${o.namespace}/${o.configMap}: ${errorMessage(err)}; listing again`);
      }
      await sleep(Math.min(10_000, 250 * 2 ** Math.min(failures, 6)));
    }
  })();
  return () => {
    stopped = true;
    current?.abort();
  };
}

/** Requests the router keeps to itself: the adapter set is the endpoint's, changed through its desired state. */
const privatePaths = new Set(['/v1/load_lora_adapter', '/v1/unload_lora_adapter']);
/** vLLM's client API outside /v1 (vllm/entrypoints/openai/api_server.py); its other routes (e.g. the dev-mode /sleep) stay private. */
const publicPaths = new Set(['/health', '/ping', '/version', '/tokenize', '/detokenize']);

export async function startAdapterRouter(o: AdapterRouterOptions): Promise<AdapterRouter> {
  const reconciler = new Reconciler(o);
  const counts = new Map<string, RequestCount>();
  const count = (model: string, version: string, code: number) => {
    const key = `${model}\0${version}\0${code}`;
    const c = counts.get(key) ?? { model, version, code, count: 0 };
    c.count += 1;
    counts.set(key, c);
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  async function proxy(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await buffer(req);
    let body: Buffer | undefined = raw.length > 0 ? raw : undefined;
    let requested: string | undefined;
    let version: string | undefined;
    if (body && (req.headers['content-type'] ?? '').includes('json')) {
      try {
        const parsed = JSON.parse(body.toString()) as Record<string, unknown>;
        if (typeof parsed.model === 'string') {
          requested = parsed.model;
          version = resolveAlias(reconciler.status.aliases, requested);
          body = Buffer.from(JSON.stringify({ ...parsed, model: version }));
        }
      } catch {
        // not JSON after all: vLLM answers it
      }
    }
    // A client that goes away stops vLLM's generation for it.
    const abandoned = new AbortController();
    res.on('close', () => abandoned.abort());
    const upstream = await fetch(`${o.vllmUrl}${path}`, {
      method: req.method,
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json', accept: req.headers.accept ?? '*/*' },
      body,
      signal: abandoned.signal,
    });
    if (requested !== undefined) {
      // Names nobody serves are counted as one series: clients cannot grow the metric without bound.
      const known = requested === o.baseModel || Object.hasOwn(reconciler.status.aliases, requested) || reconciler.status.loaded.includes(requested);
      count(known ? requested : '(unknown)', known ? version! : '(unknown)', upstream.status);
    }
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
    // pipeline, not pipe: a stream that breaks (vLLM restarted mid-answer) fails this request only, never the router.
    if (upstream.body) await pipeline(Readable.fromWeb(upstream.body as WebReadableStream), res).catch((err: unknown) => o.log(`${path}: answer stream broke: ${errorMessage(err)}`));
    else res.end();
  }

  async function models(res: ServerResponse): Promise<void> {
    const upstream = await fetch(`${o.vllmUrl}/v1/models`);
    if (!upstream.ok) return json(res, upstream.status, await upstream.json().catch(() => ({})));
    const list = (await upstream.json()) as { object: string; data: Record<string, unknown>[] };
    const cards = Object.entries(reconciler.status.aliases).map(([alias, versionName]) => ({
      id: alias, object: 'model', owned_by: 'aks-finetune-adapter-router', root: versionName, parent: o.baseModel,
    }));
    json(res, 200, { ...list, data: [...list.data, ...cards] });
  }

  async function metrics(res: ServerResponse): Promise<void> {
    const own = routerMetrics([...counts.values()], reconciler.status).join('\n');
    const vllm = await fetch(`${o.vllmUrl}/metrics`).then((r) => (r.ok ? r.text() : `# vLLM /metrics answered ${r.status}\n`), (err: unknown) => `# vLLM /metrics: ${errorMessage(err)}\n`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(`${own}\n${vllm}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://router');
    const path = url.pathname;
    if (path === routerPaths.status) return json(res, 200, reconciler.status);
    if (path === routerPaths.ready) return json(res, routerReady(reconciler.status) ? 200 : 503, { ready: routerReady(reconciler.status) });
    if (path === routerPaths.metrics) return metrics(res);
    if (req.method === 'GET' && path === '/v1/models') return models(res);
    if (privatePaths.has(path)) {
      return json(res, 403, { object: 'error', message: `${path} is the adapter-router's: change the endpoint's adapters through the endpoint`, type: 'Forbidden', param: null, code: 403 });
    }
    if (!path.startsWith('/v1/') && !publicPaths.has(path)) return json(res, 404, { detail: 'Not Found' });
    return proxy(req, res, `${path}${url.search}`);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 502, { object: 'error', message: `adapter-router: vLLM unreachable: ${errorMessage(err)}`, type: 'BadGateway', param: null, code: 502 });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, resolve);
  });
  const stopFollowing = followDesiredState(o, (cm) => {
    try {
      reconciler.offer(parseDesiredState(cm.data?.[desiredStateKey]));
    } catch (err) {
      reconciler.reportInvalid(`ConfigMap ${o.namespace}/${o.configMap}: ${errorMessage(err)}`);
    }
  });
  const resync = setInterval(() => reconciler.kick(), o.resyncMs ?? 5_000);
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : o.port,
    status: () => structuredClone(reconciler.status),
    stop: async () => {
      clearInterval(resync);
      stopFollowing();
      // Requests in flight finish (Kubernetes takes the pod out of the Service as it signals it); idle connections close now.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.race([closed, sleep(10_000)]);
      server.closeAllConnections();
      await reconciler.idle();
    },
  };
}

const required = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** The sidecar's entry point: configuration from its environment (docs/operations.md, "Configuration"). */
export async function adapterRouterCommand(): Promise<void> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault(); // in the pod: its ServiceAccount token; KUBECONFIG when set
  const router = await startAdapterRouter({
    kubeConfig,
    namespace: required('ADAPTER_ROUTER_NAMESPACE'),
    configMap: required('ADAPTER_ROUTER_CONFIGMAP'),
    vllmUrl: process.env.ADAPTER_ROUTER_VLLM_URL ?? 'http://127.0.0.1:5000',
    adapterDir: process.env.ADAPTER_ROUTER_ADAPTER_DIR ?? '/mnt/adapters',
    vllmAdapterDir: process.env.ADAPTER_ROUTER_ADAPTER_DIR ?? '/mnt/adapters',
    baseModel: required('ADAPTER_ROUTER_BASE_MODEL'),
    maxLoraRank: Number(required('ADAPTER_ROUTER_MAX_LORA_RANK')),
    registryCredential: createAzureCredential(process.env.AZURE_STATIC_TOKEN),
    host: '0.0.0.0',
    port: Number(process.env.ADAPTER_ROUTER_PORT ?? routerPort),
    log: (line) => console.log(`${new Date().toISOString()} adapter-router ${line}`),
  });
  console.log(`${new Date().toISOString()} adapter-router listening on :${router.port}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await router.stop();
}
