// SIMULATION. GPU containers cannot run on this machine, and kwok runs no containers at all.
// The gpu-simulator performs the observable effects of the pipeline's GPU containers on
// simulated nodes, by pod role (label aks-finetune.io/role):
//   trainer         writes a small, well-formed adapter into the results volume, then completes the pod
//   adapter-pusher  runs the project's real push code (workers/push-adapter.ts) against the local registry, in this process, then completes the pod
//   adapter-copier  runs the project's real copy code (workers/copy-adapter.ts) between the pod's two
//                   volumes, then completes the pod with its summary as the termination message
//   inference       serves vLLM's HTTP API (simulated, vllm.ts) per pod and per Service, on loopback;
//                   a pod with an adapter-router container (an endpoint's) also runs the product's
//                   router in front of it (router-replica.ts), and a Service reaches only pods whose
//                   router is ready, as the router's readiness probe decides on a cluster
// It also provisions hostPath volumes for PVCs: of the default class simulated-disk, as Azure Disk
// (AKS's managed-csi) would, and of azurefile-csi, as Azure Files would. Settings and failure
// injection: /_simulator/settings.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { modelLabel, roleLabel, roles, runIdLabel, temporalRunIdLabel } from '../../../activities/kubernetes/labels.js';
import { adapterMountPath, routerReady } from '../../../domain/adapter-router.js';
import { loadStackConfig } from '../config.js';
import { writeAdapter } from './adapter-files.js';
import { emptyDirPath, SimulatedCluster } from './cluster.js';
import { reconcileGpuAllocatable } from './device-plugin.js';
import type { SimulatorSettings } from './settings.js';
import { publishContainerLog } from './trainer-log.js';
import { simulatedEvalLoss, simulateTrainer, type TrainingConfigSections } from './trainer.js';
import { SimulatedVllmReplica, serverOptions } from './vllm.js';
import { adapterExport, exportAdapterImage } from './adapter-pull.js';
import { copyAdapter } from '../../../workers/copy-adapter.js';
import { parseAnnotationArgs, pushAdapter } from '../../../workers/push-adapter.js';
import { hasAdapterRouter, reflectReadiness, type RoutedReplica, startRoutedReplica } from './router-replica.js';

const config = loadStackConfig();
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(config.kubeconfig);
const volumesDir = join(config.stateDir, 'data', 'volumes');
const cluster = new SimulatedCluster(kubeConfig, volumesDir);

const settings: SimulatorSettings = { trainingMs: Number(process.env.GPU_SIMULATOR_TRAINING_MS ?? 2000) };
const handled = new Set<string>();
const log = (line: string) => console.log(`${new Date().toISOString()} SIMULATION ${line}`);

/** The training_config the trainer pod mounts at /mnt/config (KAITO's parameters ConfigMap). */
async function trainingConfigOf(pod: V1Pod): Promise<TrainingConfigSections & { LoraConfig?: Record<string, number> }> {
  const trainer = pod.spec!.containers[0]!;
  const configVolume = pod.spec?.volumes?.find((v) => v.name === trainer.volumeMounts?.find((m) => m.mountPath === '/mnt/config')?.name);
  if (!configVolume?.configMap?.name) return {};
  const map = await cluster.core.readNamespacedConfigMap({ name: configVolume.configMap.name, namespace: pod.metadata!.namespace! });
  return (parse(map.data?.['training_config.yaml'] ?? '') as { training_config?: TrainingConfigSections })?.training_config ?? {};
}

function loraSettings(pod: V1Pod, config: { LoraConfig?: Record<string, number> }) {
  const lora = { r: 8, loraAlpha: 8, loraDropout: 0, targetModules: ['q_proj', 'v_proj'] };
  const modules = pod.spec!.containers[0]!.env?.find((e) => e.name === 'DEFAULT_TARGET_MODULES')?.value;
  if (modules) lora.targetModules = modules.split(',');
  const c = config.LoraConfig ?? {};
  return { ...lora, r: c.r ?? lora.r, loraAlpha: c.lora_alpha ?? lora.loraAlpha, loraDropout: c.lora_dropout ?? lora.loraDropout };
}

async function simulateTraining(pod: V1Pod): Promise<void> {
  const results = await cluster.hostPathOf(pod, '/mnt/results');
  if (!results) throw new Error(`trainer ${pod.metadata!.name} mounts no results volume at /mnt/results`);
  const trainingConfig = await trainingConfigOf(pod);
  const jobName = pod.metadata?.labels?.['job-name'] ?? pod.metadata!.name!;
  const container = pod.spec!.containers[0]!.name;
  const print = await publishContainerLog(kubeConfig, pod, container, 'SIMULATION: the trainer of the aks-finetune local stack (no GPU, no model)', emptyDirPath(volumesDir, pod.metadata!.uid!, '_logs'));
  const finished = await simulateTrainer({
    pod,
    jobName,
    config: trainingConfig,
    results,
    trainingMs: settings.trainingMs,
    minutesPerStep: settings.minutesPerStep ?? 1,
    finalEvalLoss: simulatedEvalLoss(jobName, settings.evalLoss),
    script: settings.trainers?.[pod.metadata?.labels?.[runIdLabel] ?? ''] ?? {},
    print,
    alive: async () => (await cluster.nodeExists(pod)) && (await cluster.podRunning(pod)),
  });
  if (!finished) return log(`trainer ${pod.metadata!.name}: its node is gone, training stopped`);
  const failure = settings.failTraining;
  if (failure && failure.times > 0 && (failure.runId === undefined || failure.runId === pod.metadata?.labels?.[temporalRunIdLabel])) {
    failure.times -= 1;
    log(`trainer ${pod.metadata!.name}: failing with ${failure.reason}`);
    await cluster.completePod(pod, { exitCode: failure.exitCode, reason: failure.reason });
    return;
  }
  if (!(await cluster.nodeExists(pod))) return log(`trainer ${pod.metadata!.name}: its node is gone, no adapter written`);
  writeAdapter(results, loraSettings(pod, trainingConfig));
  log(`trainer ${pod.metadata!.name}: adapter written to ${results}`);
  if (!(await cluster.completePod(pod, { exitCode: 0, reason: 'Completed' }))) log(`trainer ${pod.metadata!.name}: its node is gone, not completed`);
}

/** The lineage a pusher or copier pod was given (its --annotation arguments). */
const annotationsOf = (args: string[]) => parseAnnotationArgs(args.flatMap((a, i) => (args[i - 1] === '--annotation' ? [a] : [])));

/**
 * The pusher's work: the project's push code (workers/push-adapter.ts) run in this process, with the
 * pod's arguments and its mounts resolved on this machine. A push is a few HTTP requests: a Node
 * process per push would cost the stand-in more than the product (issue 18's bench).
 */
async function simulatePush(pod: V1Pod): Promise<void> {
  const container = pod.spec!.containers[0]!;
  const args = container.args ?? [];
  const arg = (name: string) => args[args.indexOf(name) + 1];
  const env = Object.fromEntries((container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  let summary: string;
  try {
    const results = await cluster.hostPathOf(pod, arg('--results') ?? '/mnt/results');
    if (!results) throw new Error('the pusher mounts no results volume (or its claim is not bound)');
    // A push Secret mounted as docker's config folder: projected onto this machine, as kubelet would.
    const dockerConfigDir = env.DOCKER_CONFIG && (await cluster.hostPathOf(pod, env.DOCKER_CONFIG));
    const pushed = await pushAdapter({
      results,
      image: arg('--image'),
      annotations: annotationsOf(args),
      pushSecret: args.includes('--push-secret') ? arg('--push-secret') : undefined,
      dockerConfigDir: dockerConfigDir || undefined,
      staticToken: 'local-stack',
    });
    summary = JSON.stringify(pushed);
  } catch (err) {
    const message = String((err as Error).message ?? err).trim().split('\n').slice(-3).join('\n');
    log(`adapter-pusher ${pod.metadata!.name}: failed: ${message}`);
    await cluster.completePod(pod, { exitCode: 1, reason: 'Error', message });
    return;
  }
  log(`adapter-pusher ${pod.metadata!.name}: ${summary}`);
  // Outside the try: a failure to report the outcome must not turn a push that happened into a failed one.
  await cluster.completePod(pod, { exitCode: 0, reason: 'Completed' });
}

/** The copier's work, run in this process (a file copy needs no process of its own): its summary is the pod's termination message, as the command writes it to /dev/termination-log. */
async function simulateCopy(pod: V1Pod): Promise<void> {
  const [results, output] = [await cluster.hostPathOf(pod, '/mnt/results'), await cluster.hostPathOf(pod, '/mnt/output')];
  const args = pod.spec!.containers[0]!.args ?? [];
  const annotations = annotationsOf(args);
  let summary: string;
  try {
    if (!results || !output) throw new Error(`the copier mounts no volume at ${results ? '/mnt/output' : '/mnt/results'} (or its claim is not bound)`);
    summary = JSON.stringify(await copyAdapter(results, output, annotations));
  } catch (err) {
    log(`adapter-copier ${pod.metadata!.name}: failed: ${String(err)}`);
    await cluster.completePod(pod, { exitCode: 1, reason: 'Error', message: String((err as Error).message ?? err) });
    return;
  }
  log(`adapter-copier ${pod.metadata!.name}: ${summary}`);
  await cluster.completePod(pod, { exitCode: 0, reason: 'Completed', message: summary });
}

const simulators: Record<string, (pod: V1Pod) => Promise<void>> = { [roles.trainer]: simulateTraining, [roles.adapterPusher]: simulatePush, [roles.adapterCopier]: simulateCopy };

async function reconcilePods(): Promise<void> {
  const { items } = await cluster.core.listPodForAllNamespaces({ labelSelector: `${roleLabel} in (${Object.keys(simulators).join(',')})` });
  for (const pod of items) {
    const uid = pod.metadata!.uid!;
    if (pod.status?.phase !== 'Running' || pod.metadata?.deletionTimestamp || handled.has(uid)) continue;
    if (!(await cluster.nodeExists(pod))) continue; // node lost before the work began: nothing runs it
    handled.add(uid);
    const work = simulators[pod.metadata!.labels![roleLabel]!]!(pod);
    work.catch((err: unknown) => {
      log(`${pod.metadata!.name}: ${String(err)}`);
      handled.delete(uid); // try again on the next pass
    });
  }
}

/**
 * One simulated vLLM server per inference pod uid, started on the pod's first request after its
 * simulated adapter pullers have run: a replaced pod comes back with only its --lora-modules.
 * An endpoint pod's starts at once with its router, which loads the endpoint's adapters.
 */
interface Replica {
  vllm: SimulatedVllmReplica;
  routed?: RoutedReplica;
}
const replicas = new Map<string, Promise<Replica>>();
/** The started routers by pod uid, for the Service's readiness check. */
const routers = new Map<string, RoutedReplica>();
/** Replicas of deleted pods still serving through their preStop sleep, by pod uid. */
const draining = new Set<string>();
/** Each replica's pod's longest preStop sleep, read when it starts: the pod may be gone when it stops. */
const preStopSleepSeconds = new Map<string, number>();
let nextReplica = 0;

async function startReplica(pod: V1Pod): Promise<Replica> {
  for (const container of pod.spec?.initContainers ?? []) {
    const pull = adapterExport(container.command);
    if (!pull) continue;
    const dir = await cluster.hostPathOf(pod, pull.podDir);
    if (!dir) throw new Error(`${container.name}: no volume of the pod holds ${pull.podDir}`);
    await exportAdapterImage(pull.image, dir);
    log(`inference ${pod.metadata!.name}: ${container.name} exported ${pull.image} to ${pull.podDir}`);
  }
  const options = serverOptions(pod, pod.metadata?.labels?.[modelLabel] ?? 'unknown');
  const vllm = await SimulatedVllmReplica.start(options, (path) => cluster.hostPathOf(pod, path));
  if (!hasAdapterRouter(pod)) return { vllm };
  const adapterHostDir = await cluster.hostPathOf(pod, adapterMountPath);
  if (!adapterHostDir) throw new Error(`no volume of the pod holds ${adapterMountPath}`);
  const routed = await startRoutedReplica({ pod, admin: kubeConfig, adapterHostDir, log, serveVllm: (req, res) => void serveVllm(vllm, req, res, req.url ?? '/') });
  routers.set(pod.metadata!.uid!, routed);
  log(`inference ${pod.metadata!.name}: adapter-router on 127.0.0.1:${routed.router.port}`);
  return { vllm, routed };
}

function replicaOf(pod: V1Pod): Promise<Replica> {
  const uid = pod.metadata!.uid!;
  let replica = replicas.get(uid);
  if (!replica) {
    preStopSleepSeconds.set(uid, Math.max(0, ...(pod.spec?.containers ?? []).map((c) => Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0))));
    replica = startReplica(pod);
    replicas.set(uid, replica);
    replica.catch(() => replicas.delete(uid)); // the next request tries again
  }
  return replica;
}

const servingPod = (p: V1Pod) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && p.metadata?.labels?.[roleLabel] === roles.inference;
/** What the pod's readiness probe would answer: an endpoint pod's once its router serves every adapter, a plain vLLM pod's (/v1/models) once it runs. */
const probeSaysReady = (p: V1Pod) => {
  if (!hasAdapterRouter(p)) return true;
  const routed = routers.get(p.metadata!.uid!);
  return !!routed && routerReady(routed.router.status());
};
/** What a Service sends traffic to: a serving pod whose readiness probe passes. */
const readyPod = (p: V1Pod) => servingPod(p) && probeSaysReady(p);

/** The inference pod a request reaches: the named pod, or one of the Service's ready pods in turn (as kube-proxy spreads them). */
async function targetPod(kind: string, namespace: string, name: string): Promise<V1Pod | undefined> {
  if (kind !== 'services') {
    const pod = await cluster.core.readNamespacedPod({ name, namespace }).catch(() => undefined);
    return pod && servingPod(pod) ? pod : undefined;
  }
  const svc = await cluster.core.readNamespacedService({ name, namespace }).catch(() => undefined);
  if (!svc?.spec?.selector) return undefined;
  const selector = Object.entries(svc.spec.selector).map(([k, v]) => `${k}=${v}`).join(',');
  const ready = (await cluster.core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter(readyPod);
  nextReplica += 1;
  return ready[nextReplica % Math.max(ready.length, 1)];
}

/** Marks inference pods Ready as their probes would, starts endpoint pods' routers as their pods run (they load adapters before any request), stops those of pods gone. */
async function reconcileReplicas(): Promise<void> {
  const { items } = await cluster.core.listPodForAllNamespaces({ labelSelector: `${roleLabel}=${roles.inference}` });
  for (const pod of items) {
    if (!servingPod(pod)) continue;
    await reflectReadiness(cluster.core, pod, probeSaysReady(pod));
    if (!hasAdapterRouter(pod) || replicas.has(pod.metadata!.uid!) || !(await cluster.nodeExists(pod))) continue;
    void replicaOf(pod).catch((err: unknown) => log(`inference ${pod.metadata!.name}: ${String(err)}`));
  }
  const live = new Set(items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata!.uid!));
  for (const [uid, replica] of replicas) {
    if (live.has(uid) || draining.has(uid)) continue;
    // As the kubelet does: the pod's preStop sleep runs before its containers get SIGTERM, so a
    // request that picked this replica just before the deletion is still answered.
    draining.add(uid);
    const drainMs = (preStopSleepSeconds.get(uid) ?? 0) * 1000;
    setTimeout(() => {
      replicas.delete(uid);
      routers.delete(uid);
      draining.delete(uid);
      preStopSleepSeconds.delete(uid);
      void replica.then((r) => r.routed?.stop(), () => undefined);
    }, drainMs);
  }
}

/** One request to a simulated vLLM server. */
async function serveVllm(vllm: SimulatedVllmReplica, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  let body: unknown;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    return sendJson(res, 400, { object: 'error', message: 'request body is not JSON', type: 'BadRequestError', param: null, code: 400 });
  }
  const answer = await vllm.handle(req.method ?? 'GET', new URL(path, 'http://vllm').pathname, body, settings);
  if (!answer.text) return sendJson(res, answer.status, answer.body);
  res.writeHead(answer.status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(answer.body);
}

/** Relays a request to a pod's router as the pod network would, its answer streamed back. */
async function relay(port: number, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const body = await buffer(req);
  const upstream = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: req.method,
    headers: Object.fromEntries(['content-type', 'accept'].flatMap((h) => (req.headers[h] ? [[h, String(req.headers[h])]] : []))),
    body: body.length > 0 ? body : undefined,
  });
  res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
  res.end(Buffer.from(await upstream.arrayBuffer()));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const send = (status: number, body: unknown) => sendJson(res, status, body);
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/_simulator/health') return send(200, { status: 'ok' });
  if (url.pathname === '/_simulator/settings') {
    if (req.method === 'PUT') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      // A null clears the setting (the client sends undefined as null): otherwise a test's reset would leave it set for the next file.
      const update = JSON.parse(raw || '{}') as Record<keyof SimulatorSettings, unknown>;
      Object.assign(settings, update);
      for (const key of Object.keys(update) as (keyof SimulatorSettings)[]) if (update[key] === null) delete settings[key];
    }
    return send(200, settings);
  }
  // /pods-vllm/: a pod's vLLM itself, past its router (in a cluster only the pod reaches it).
  const match = /^\/(services|pods|pods-vllm)\/([^/]+)\/([^/]+)(\/.*)$/.exec(url.pathname);
  if (match) {
    const pod = await targetPod(match[1]!, match[2]!, match[3]!);
    if (!pod) return send(503, { error: { message: `SIMULATION: no ready inference pod for ${match[1]}/${match[2]}/${match[3]}` } });
    const replica = await replicaOf(pod).catch((err: unknown) => String(err));
    if (typeof replica === 'string') return send(503, { error: { message: `SIMULATION: the vLLM server of ${pod.metadata!.name} did not start: ${replica}` } });
    const path = `${match[4]!}${url.search}`;
    if (replica.routed && match[1] !== 'pods-vllm') return relay(replica.routed.router.port, req, res, path);
    return serveVllm(replica.vllm, req, res, path);
  }
  send(404, { error: { message: `no route ${url.pathname}` } });
}

await cluster.ensureStorageClasses();
const server = createServer((req, res) => void handle(req, res).catch((err) => (res.writeHead(500), res.end(String(err)))));
server.listen(config.ports.gpuSimulator, config.host, () => log(`gpu-simulator listening on http://${config.host}:${config.ports.gpuSimulator}`));

let stopping = false;
(async () => {
  while (!stopping) {
    await Promise.all([cluster.reconcileVolumes(), reconcilePods(), reconcileGpuAllocatable(cluster.core), reconcileReplicas()]).catch((err: unknown) => log(`reconcile failed: ${String(err)}`));
    await new Promise((r) => setTimeout(r, 300));
  }
})();
const shutdown = () => {
  stopping = true;
  server.close(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
