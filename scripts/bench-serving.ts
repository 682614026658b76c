// `npm run bench:serving`: the serving side on the local stack, through the endpoint workflow's
// Updates (workflows/endpoint-api.ts) and the adapter-router in every simulated replica:
//   switch    a load generator calls the alias throughout --switches promotions (loadCandidate,
//             then promote); per promotion, the time from the promote request to the first
//             answer from the new version, and the requests that failed during the switches
//   promotion one whole promoteAdapter run (load, suite against candidate and production on the same
//             server, gate, switch; no approval, no watch) under the same load: from its start to
//             the first answer from the new version, and its failed requests
//   rollback  the time from a rollback request to the first answer from the previous version
//   cold      scale to zero, then wake: the time from the wake request to the alias answering,
//             and the endpoint's own record of it (describe's coldStartSeconds)
//   cost      two endpoints side by side, the same traffic script with idle gaps (bursts of
//             calls, then silence): one scales to zero after --grace-seconds, the other's grace
//             outlasts the run (always on). Billed GPU-minutes are counted from the AKS
//             emulator's pool nodes over time (each GPU node bills its GPUs while it exists, as
//             bench:cost counts them). Before each burst the script wakes the endpoint that
//             scaled to zero and waits for it, as a scheduled client would (the endpoint wakes on
//             a wake or a promotion, not on a request).
// Results: .stack/bench/serving-*.json. Loopback only; small by default (a few minutes).
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createEndpoint, describeEndpoint, loadEndpointCandidate, promoteEndpointVersion, retireEndpoint, rollbackEndpointAlias, scaleEndpoint, unloadEndpointVersion } from '../client/endpoints.js';
import { connectClient } from '../client/temporal-connection.js';
import { pushAdapterImage } from '../activities/registry/adapter-image.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { createWorker } from '../workers/worker.js';
import { endpointWorkflowId, promotionWorkflowId } from '../workflows/ids.js';
import { endpointPoolName } from '../workflows/naming.js';
import { promoteAdapter } from '../workflows/promote-adapter.js';
import { type LoadGenerator, startLoad } from './load-generator.js';
import { percentile } from './percentile.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { writeAdapter } from './stack/gpu-simulator/adapter-files.js';
import { allowRunsIn } from './stack/worker-rbac.js';

const { values: args } = parseArgs({
  options: {
    switches: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '4' },
    'grace-seconds': { type: 'string', default: '10' },
    bursts: { type: 'string', default: '2' },
    'burst-seconds': { type: 'string', default: '10' },
    'gap-seconds': { type: 'string', default: '30' },
  },
});
const switches = Number(args.switches);
const concurrency = Number(args.concurrency);
const graceSeconds = Number(args['grace-seconds']);
const bursts = Number(args.bursts);
const burstMs = Number(args['burst-seconds']) * 1000;
const gapMs = Number(args['gap-seconds']) * 1000;
if (!(switches >= 1 && switches <= 50 && concurrency >= 1 && concurrency <= 32 && graceSeconds >= 10 && bursts >= 1 && bursts <= 20)) {
  throw new Error('--switches 1..50, --concurrency 1..32, --grace-seconds ≥ 10 (the endpoint spec minimum), --bursts 1..20');
}

const config = loadWorkerConfig();
const stack = loadStackConfig();
const adminKubeConfig = new KubeConfig();
adminKubeConfig.loadFromFile(stack.kubeconfig);
const core = adminKubeConfig.makeApiClient(CoreV1Api);
const emulator = new EmulatorControl(config.azure.armEndpoint);
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();
const namespace = `bench-serving-${stamp.slice(11, 19)}`;
const baseModel = 'phi-3-mini-4k-instruct';
const vmSize = 'Standard_NC24ads_A100_v4';
const alias = 'bot';
const serviceUrl = (name: string) => config.inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', name);
const seconds = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms) / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Distinct adapters (rank and alpha make the content, so the simulated answers), pushed once, by digest. */
async function adapterImages(count: number): Promise<string[]> {
  const repository = `adapters/bench-serving-${stamp.slice(11, 19)}`;
  const registry = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
  const images: string[] = [];
  for (let i = 0; i < count; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-adapter-'));
    writeAdapter(dir, { r: 8, loraAlpha: 8 + i, loraDropout: 0, targetModules: ['q_proj', 'v_proj'] });
    const { digest } = await pushAdapterImage(registry, dir, `v${i}`, { 'sh.kaito.model.name': baseModel });
    images.push(`${new URL(config.registry.endpoint).host}/${repository}@${digest}`);
  }
  return images;
}

/** Waits until `probe` holds, checking every 100 ms; the time it took. */
async function until(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 180_000): Promise<number> {
  const began = Date.now();
  while (!(await probe())) {
    if (Date.now() - began > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(100);
  }
  return Date.now() - began;
}

/** The time from `requestedAt` until `load` got its first answer from `version`. */
async function untilServedBy(load: LoadGenerator, version: string, requestedAt: number): Promise<number> {
  await until(() => load.firstServedBy(version, requestedAt) !== undefined, `the alias to answer from ${version}`);
  return load.firstServedBy(version, requestedAt)! - requestedAt;
}

const aliasAnswers = async (name: string) =>
  fetch(`${serviceUrl(name)}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: alias, prompt: 'ping', max_tokens: 4 }) })
    .then((r) => r.ok)
    .catch(() => false);

Runtime.install({ logger: new DefaultLogger('WARN') });
await emulator.settings({ provisioningDelayMs: 3000, deletionDelayMs: 2000 });
await core.createNamespace({ body: { metadata: { name: namespace } } });
await allowRunsIn(adminKubeConfig, namespace);
const workerConnection = await NativeConnection.connect(config.temporal.connection);
const taskQueue = `bench-serving-${stamp}`;
const worker = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, workerConnection, { tuning: { armPollIntervalMs: 250, kubePollIntervalMs: 250 } });
const workerRun = worker.run();
const client = await connectClient(config.temporal);
const report: Record<string, unknown> = { switches, concurrency, graceSeconds, bursts, burstSeconds: burstMs / 1000, gapSeconds: gapMs / 1000 };
const endpoints: string[] = [];

async function newEndpoint(name: string, spec: Record<string, unknown>): Promise<void> {
  await createEndpoint(client, { spec: { name, baseModel, vmSize, maxLoraRank: 16, maxLoras: 4, ...spec }, namespace }, { taskQueue });
  endpoints.push(name);
}

/** Loads `image` and points the alias at it; the version name. */
async function promoteImage(name: string, image: string, load?: LoadGenerator): Promise<{ versionName: string; toServingMs?: number; updateMs: number }> {
  const { versionName } = await loadEndpointCandidate(client, name, { alias, image });
  const requestedAt = Date.now();
  await promoteEndpointVersion(client, name, versionName);
  const updateMs = Date.now() - requestedAt;
  return { versionName, updateMs, toServingMs: load && (await untilServedBy(load, versionName, requestedAt)) };
}

try {
  const images = await adapterImages(switches + 2);
  console.log(`Serving bench on the local stack: ${switches} switches under ${concurrency} concurrent callers; then rollback, cold start, and scale-to-zero vs always-on`);

  // --- switch, whole promotion, rollback, cold start: one endpoint ---
  const main = `bench-${stamp.slice(11, 19)}`;
  await newEndpoint(main, { idleGraceSeconds: 3600 });
  const first = await promoteImage(main, images[0]!);
  const load = startLoad({ url: serviceUrl(main), model: alias, concurrency });
  await until(() => load.report().ok > 0, 'the first answers');
  const switchesFrom = Date.now();
  const toServing: number[] = [];
  const updates: number[] = [];
  const versions = [first.versionName];
  for (let i = 1; i <= switches; i++) {
    const step = await promoteImage(main, images[i]!, load);
    toServing.push(step.toServingMs!);
    updates.push(step.updateMs);
    versions.push(step.versionName);
    // Keep the previous version for the rollback; the one before it is no alias's and no rollback's.
    if (versions.length > 2) await unloadEndpointVersion(client, main, versions.at(-3)!);
  }
  const during = load.report(switchesFrom);
  report.switch = {
    promoteToServingSeconds: { p50: seconds(percentile(toServing, 0.5)), p99: seconds(percentile(toServing, 0.99)), max: seconds(Math.max(...toServing)) },
    promoteUpdateSeconds: { p50: seconds(percentile(updates, 0.5)), p99: seconds(percentile(updates, 0.99)) },
    requests: during.requests,
    failedRequests: during.failed,
    byStatus: during.byStatus,
    latencyMs: during.latencyMs,
    failures: during.failures.slice(0, 5),
  };
  console.log(`switch    promote → serving p50 ${seconds(percentile(toServing, 0.5))} s, p99 ${seconds(percentile(toServing, 0.99))} s; ${during.failed} of ${during.requests} requests failed during ${switches} switches`);

  // A whole promotion: what `promote` in a fineTune request or `npm run cli -- promote` runs.
  const suite = { jsonl: Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `bench question ${i}`, expect: { contains: `bench question ${i}` } })).join('\n') };
  const promotionAt = Date.now();
  const promotion = await client.workflow.execute(promoteAdapter, {
    taskQueue,
    workflowId: promotionWorkflowId(`bench-${stamp}`),
    args: [{ endpoint: { name: main }, namespace, alias, image: images[switches + 1]!, suite, gate: { minPassRate: 0.5 }, watch: { minutes: 0 } }],
  });
  const promotionMs = Date.now() - promotionAt;
  const promotionToServingMs = promotion.versionName && (await untilServedBy(load, promotion.versionName, promotionAt));
  const duringPromotion = load.report(promotionAt);
  report.promotion = {
    phase: promotion.phase,
    passRate: promotion.scores?.candidate.passRate,
    startToServingSeconds: seconds(promotionToServingMs || undefined),
    startToResultSeconds: seconds(promotionMs),
    steps: promotion.steps.map((st) => ({ name: st.name, seconds: st.endedAt && st.startedAt ? seconds(Date.parse(st.endedAt) - Date.parse(st.startedAt)) : undefined })),
    requests: duringPromotion.requests,
    failedRequests: duringPromotion.failed,
  };
  console.log(`promotion promoteAdapter start → serving ${promotion.versionName}: ${seconds(promotionToServingMs || undefined)} s (${promotion.phase} after ${seconds(promotionMs)} s); ${duringPromotion.failed} of ${duringPromotion.requests} requests failed`);

  const rollbackAt = Date.now();
  const rolledBack = await rollbackEndpointAlias(client, main, alias);
  const rollbackUpdateMs = Date.now() - rollbackAt;
  const rollbackToServingMs = await untilServedBy(load, rolledBack.versionName, rollbackAt);
  const afterRollback = load.report(rollbackAt);
  report.rollback = { toVersion: rolledBack.versionName, toServingSeconds: seconds(rollbackToServingMs), updateSeconds: seconds(rollbackUpdateMs), failedRequests: afterRollback.failed };
  console.log(`rollback  request → serving ${rolledBack.versionName}: ${seconds(rollbackToServingMs)} s (Update returned after ${seconds(rollbackUpdateMs)} s); ${afterRollback.failed} failed`);
  await load.stop();

  await scaleEndpoint(client, main, 'zero');
  await until(async () => (await describeEndpoint(client, main)).scale === 'scaled-to-zero', 'scale to zero');
  const wakeAt = Date.now();
  await scaleEndpoint(client, main, 'wake');
  const wakeUpdateMs = Date.now() - wakeAt;
  const coldMs = wakeUpdateMs + (await until(() => aliasAnswers(main), 'the alias to answer after wake'));
  const recorded = (await describeEndpoint(client, main)).coldStartSeconds.at(-1);
  report.coldStart = { wakeToServingSeconds: seconds(coldMs), endpointRecordedSeconds: recorded, provisioningDelaySeconds: 3 };
  console.log(`cold      wake → alias answering: ${seconds(coldMs)} s (the endpoint recorded ${recorded} s; the emulator provisions a pool in 3 s, AKS in minutes)`);

  // --- cost: scale-to-zero vs always-on, same traffic, side by side ---
  const tracks = { scaleToZero: `${main}-stz`, alwaysOn: `${main}-on` };
  const runSeconds = (bursts * (burstMs + gapMs)) / 1000;
  await newEndpoint(tracks.scaleToZero, { idleGraceSeconds: graceSeconds });
  await newEndpoint(tracks.alwaysOn, { idleGraceSeconds: Math.max(3600, runSeconds * 10) });
  await Promise.all(Object.values(tracks).map((name) => promoteImage(name, images[0]!)));
  const pools = Object.fromEntries(Object.entries(tracks).map(([track, name]) => [track, endpointPoolName(endpointWorkflowId(name))]));
  const gpusPerNode = findVmSize(vmSize)?.gpus ?? 1;
  const billedMs: Record<string, number> = { scaleToZero: 0, alwaysOn: 0 };
  let sampling = true;
  const sampler = (async () => {
    let last = Date.now();
    while (sampling) {
      await sleep(250);
      const now = Date.now();
      const { items } = await core.listNode({ labelSelector: 'kubernetes.azure.com/accelerator=nvidia' }).catch(() => ({ items: [] }));
      for (const [track, pool] of Object.entries(pools)) {
        const nodes = items.filter((n) => n.metadata?.labels?.['kubernetes.azure.com/agentpool'] === pool).length;
        billedMs[track]! += (now - last) * nodes * gpusPerNode;
      }
      last = now;
    }
  })();
  const traffic: Record<string, { requests: number; failed: number; wakes: number }> = { scaleToZero: { requests: 0, failed: 0, wakes: 0 }, alwaysOn: { requests: 0, failed: 0, wakes: 0 } };
  const trafficFrom = Date.now();
  for (let b = 0; b < bursts; b++) {
    await Promise.all(
      Object.entries(tracks).map(async ([track, name]) => {
        if ((await describeEndpoint(client, name)).scale === 'scaled-to-zero') {
          traffic[track]!.wakes += 1;
          await scaleEndpoint(client, name, 'wake');
        }
        const burst = startLoad({ url: serviceUrl(name), model: alias, concurrency: 1 });
        await sleep(burstMs);
        const r = await burst.stop();
        traffic[track]!.requests += r.requests;
        traffic[track]!.failed += r.failed;
      }),
    );
    console.log(`cost      burst ${b + 1}/${bursts} done; idle for ${gapMs / 1000} s`);
    await sleep(gapMs);
  }
  sampling = false;
  await sampler;
  const elapsedMin = (Date.now() - trafficFrom) / 60_000;
  const cost: Record<string, unknown> = { wallMinutes: Math.round(elapsedMin * 100) / 100 };
  for (const [track, name] of Object.entries(tracks)) {
    const d = await describeEndpoint(client, name);
    cost[track] = { billedGpuMinutes: Math.round((billedMs[track]! / 60_000) * 100) / 100, ...traffic[track], coldStartSeconds: d.coldStartSeconds, endpointGpuMinutesSaved: d.gpuMinutesSaved };
  }
  const ratio = billedMs.alwaysOn ? Math.round((billedMs.scaleToZero! / billedMs.alwaysOn) * 1000) / 1000 : undefined;
  cost.billedRatio = ratio;
  report.cost = cost;
  console.log(
    `cost      over ${cost.wallMinutes} min: scale-to-zero billed ${(cost.scaleToZero as { billedGpuMinutes: number }).billedGpuMinutes} GPU-min, ` +
      `always-on ${(cost.alwaysOn as { billedGpuMinutes: number }).billedGpuMinutes} GPU-min (ratio ${ratio}); ` +
      `scale-to-zero: ${traffic.scaleToZero!.wakes} wakes, ${traffic.scaleToZero!.failed} of ${traffic.scaleToZero!.requests} requests failed`,
  );
} finally {
  for (const name of endpoints) await retireEndpoint(client, name).catch((err: unknown) => console.error(`retire ${name}: ${String(err)}`));
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  worker.shutdown();
  await workerRun;
  await client.connection.close();
  await workerConnection.close();
}

mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
const file = join(stack.stateDir, 'bench', `serving-${stamp}.json`);
writeFileSync(file, JSON.stringify(report, null, 2));
console.log(`Results: ${file}`);
