// `npm run bench:scale`: holds N fineTune runs in flight on one worker process, for each N of
// --runs, at AKS-like timings scaled down (a pool's nodes ready after --node-ready-seconds;
// training far longer than the bench), and reports the steady state over --window-minutes once
// every run has settled (training, or waiting for a pool): ARM and Kubernetes calls per minute per
// 100 runs, by kind; the worker's CPU and resident memory, and memory per run in flight; the
// stack's own CPU; Temporal history events per run-hour and workflow task latency (a sample of
// runs' histories); per-step overhead p50/p99 of the steps the sample had finished. Then it
// cancels the round's runs and waits for their cleanup (every pool deleted). Results:
// .stack/bench/scale-*.json after every round. Run through scripts/with-stack-env.sh.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Client, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { connectClient } from '../client/temporal-connection.js';
import { roleLabel, roles } from '../activities/kubernetes/labels.js';
import { poolTags } from '../domain/pool-tags.js';
import { createContainerServiceClient } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { linesSince, processUsage, sizeOf, sleepMs, span, stackCpuSeconds } from './bench-measure.js';
import { percentile } from './percentile.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';
import { startWorkerProcess } from './stack/worker-process.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '1,100,1000' },
    'node-ready-seconds': { type: 'string', default: '60' },
    'ramp-per-minute': { type: 'string', default: '300' },
    'window-minutes': { type: 'string', default: '3' },
    'settle-minutes': { type: 'string', default: '10' },
    'poll-seconds': { type: 'string', default: '30' },
    'history-sample': { type: 'string', default: '40' },
    'cleanup-minutes': { type: 'string', default: '10' },
  },
});
const maxRuns = 1000;
/** Workflow starts waiting on the server at once during a ramp. */
const maxStartsInFlight = 20;
const sizes = args.runs.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > maxRuns)) throw new Error(`--runs takes whole numbers from 1 to ${maxRuns}, e.g. 1,100,1000`);
const numbers = Object.fromEntries(
  (['node-ready-seconds', 'ramp-per-minute', 'window-minutes', 'settle-minutes', 'poll-seconds', 'history-sample', 'cleanup-minutes'] as const).map((name) => {
    const value = Number(args[name]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} takes a number above 0, not ${args[name]}`);
    return [name, value];
  }),
) as Record<'node-ready-seconds' | 'ramp-per-minute' | 'window-minutes' | 'settle-minutes' | 'poll-seconds' | 'history-sample' | 'cleanup-minutes', number>;
const windowMs = numbers['window-minutes'] * 60_000;

const config = loadWorkerConfig();
const stack = loadStackConfig();
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
const pools = createContainerServiceClient(config).agentPools;
const admin = new KubeConfig();
admin.loadFromFile(stack.kubeconfig);
const core = admin.makeApiClient(CoreV1Api);
const registryHost = new URL(config.registry.endpoint).host;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();
const taskQueue = `bench-scale-${stamp}`;
const namespace = 'aks-finetune';
/** Simulated training outlasts every round: the runs are in flight, not finishing. */
const trainingMs = 24 * 3_600_000;

/** Pools of the bench's runs (tagged with their workflow ids), by provisioning state. */
async function benchPools(): Promise<Record<string, number>> {
  const states: Record<string, number> = {};
  for await (const pool of pools.list(config.azure.resourceGroup, config.azure.clusterName)) {
    if (!pool.tags?.[poolTags.workflowId]?.includes(stamp)) continue;
    const state = pool.provisioningState ?? 'Unknown';
    states[state] = (states[state] ?? 0) + 1;
  }
  return states;
}

/** Trainer pods of the bench's runs that are running. */
async function runningTrainers(): Promise<number> {
  const { items } = await core.listNamespacedPod({ namespace, labelSelector: `${roleLabel}=${roles.trainer}` });
  return items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).length;
}

/** Kubernetes calls of the worker among audit lines, by verb and resource (subresource after a slash). */
function kubeCallsByKind(lines: string[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const line of lines) {
    const event = JSON.parse(line) as { verb?: string; objectRef?: { resource?: string; subresource?: string } };
    const kind = `${event.verb} ${event.objectRef?.resource ?? '?'}${event.objectRef?.subresource ? `/${event.objectRef.subresource}` : ''}`;
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** ARM calls by method and what they address: pool, operation poll, pool list, quota. */
function armCallsByKind(records: { method: string; path: string }[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const { method, path } of records) {
    const target = /\/operations?(results)?\//i.test(path) ? 'operation' : /\/agentPools\/[^/]+$/i.test(path) ? 'agentPool' : /\/agentPools$/i.test(path) ? 'agentPools (list)' : /usages$/i.test(path) ? 'usages' : 'other';
    const kind = `${method} ${target}`;
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

const perMinutePer100 = (calls: number, runs: number) => Math.round((calls / (windowMs / 60_000) / runs) * 100 * 10) / 10;
const byMinute = (kinds: Record<string, number>, runs: number) => Object.fromEntries(Object.entries(kinds).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, perMinutePer100(v, runs)]));

/** Events, workflow task latencies and runs' steps from a sample of the round's histories. */
async function temporalFigures(handles: WorkflowHandle<typeof fineTune>[], windowStart: number, windowEnd: number) {
  const step = Math.max(1, Math.floor(handles.length / numbers['history-sample']));
  const sample = handles.filter((_, i) => i % step === 0).slice(0, numbers['history-sample']);
  const { EventType } = proto.temporal.api.enums.v1;
  const eventsTotal: number[] = [];
  let eventsInWindow = 0;
  const queueMs: number[] = [];
  const runMs: number[] = [];
  const activityQueueMs: number[] = [];
  for (const handle of sample) {
    const events = (await handle.fetchHistory()).events ?? [];
    eventsTotal.push(events.length);
    const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
    let scheduled: number | undefined;
    let started: number | undefined;
    const activityScheduled = new Map<string, number>();
    for (const e of events) {
      const t = at(e);
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) activityScheduled.set(String(e.eventId), t);
      const activityStarted = e.activityTaskStartedEventAttributes;
      if (activityStarted && t >= windowStart && t < windowEnd) activityQueueMs.push(t - (activityScheduled.get(String(activityStarted.scheduledEventId)) ?? t));
      if (t >= windowStart && t < windowEnd) eventsInWindow += 1;
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) scheduled = t;
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED && scheduled !== undefined) {
        started = t;
        if (t >= windowStart && t < windowEnd) queueMs.push(t - scheduled);
      }
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED && started !== undefined) {
        if (t >= windowStart && t < windowEnd) runMs.push(t - started);
        scheduled = started = undefined;
      }
    }
  }
  const statuses = (await Promise.allSettled(sample.map((h) => h.query(fineTuneStatusQuery)))).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  return {
    sampled: sample.length,
    historyEventsPerRun: { p50: percentile(eventsTotal, 0.5), max: Math.max(0, ...eventsTotal) },
    historyEventsPerRunHour: Math.round((eventsInWindow / Math.max(sample.length, 1) / (windowMs / 3_600_000)) * 10) / 10,
    workflowTaskScheduleToStartMs: { p50: percentile(queueMs, 0.5), p99: percentile(queueMs, 0.99), tasks: queueMs.length },
    workflowTaskStartToCompleteMs: { p50: percentile(runMs, 0.5), p99: percentile(runMs, 0.99) },
    /** The last attempt's: a retried activity's ActivityTaskStarted is its final attempt's start. */
    activityScheduleToStartMs: { p50: percentile(activityQueueMs, 0.5), p99: percentile(activityQueueMs, 0.99), activities: activityQueueMs.length },
    steps: stepOverheads(statuses),
  };
}

/** Wall time minus the external system's own time, for the steps the statuses finished. */
function stepOverheads(statuses: FineTuneStatus[]) {
  const samples: Record<string, number[]> = {};
  for (const status of statuses) {
    for (const step of status.steps) {
      if (!step.endedAt) continue;
      // GPU capacity: the emulator provisions for --node-ready-seconds; the rest is the product's.
      const externalMs = step.name === 'GPU capacity' ? numbers['node-ready-seconds'] * 1000 : 0;
      (samples[step.name] ??= []).push(span(step.startedAt, step.endedAt) - externalMs);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([name, ms]) => [name, { overheadP50Ms: percentile(ms, 0.5), overheadP99Ms: percentile(ms, 0.99), runs: ms.length }]));
}

async function round(client: Client, worker: ChildProcess, runs: number) {
  const began = Date.now();
  const idleRss = processUsage(worker.pid!).rssMiB;
  const handles: WorkflowHandle<typeof fineTune>[] = [];
  const progress = async (what: string) => {
    const [poolStates, training] = await Promise.all([benchPools(), runningTrainers()]);
    console.log(`  [${Math.round((Date.now() - began) / 1000)}s] N=${runs} ${what}: started ${handles.length}, pools ${JSON.stringify(poolStates)}, trainers running ${training}, worker RSS ${processUsage(worker.pid!).rssMiB} MiB`);
    return { poolStates, training };
  };
  let lastProgress = Date.now();
  // Starts are paced from the round's beginning, not one after another: a slow start (the dev
  // server busy) does not slow the ramp; at most startsInFlight wait at once.
  const startsInFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < runs; i++) {
    await sleepMs(began + (i * 60_000) / numbers['ramp-per-minute'] - Date.now());
    if (startsInFlight.size >= maxStartsInFlight) await Promise.race(startsInFlight);
    const start = client.workflow
      .start(fineTune, {
        taskQueue,
        workflowId: fineTuneWorkflowId(`bench-scale-${stamp}-${runs}-${i}`),
        args: [
          {
            model: 'phi-3-mini-4k-instruct',
            method: 'qlora',
            dataset: { urls: ['https://datasets.example.com/bench/train.jsonl'] },
            output: { image: `${registryHost}/adapters/bench-scale:${stamp}-${runs}-${i}` },
            gpu: { vmSize: 'Standard_NC24ads_A100_v4', capacityWaitMinutes: 240 },
            pollIntervalSeconds: numbers['poll-seconds'],
          },
        ],
      })
      .then((handle) => handles.push(handle))
      .finally(() => startsInFlight.delete(start));
    startsInFlight.add(start);
    if (Date.now() - lastProgress >= 60_000) {
      lastProgress = Date.now();
      await progress('ramping up');
    }
  }
  await Promise.all(startsInFlight);
  // Settled: as many trainers running as there are Succeeded pools, every run either training or waiting for a pool.
  const settleBy = Date.now() + numbers['settle-minutes'] * 60_000;
  let settled = false;
  while (Date.now() < settleBy) {
    const { poolStates, training } = await progress('settling');
    const creating = (poolStates.Creating ?? 0) + (poolStates.Updating ?? 0);
    if (creating === 0 && training > 0 && training === (poolStates.Succeeded ?? 0)) {
      settled = true;
      break;
    }
    await sleepMs(30_000);
  }
  if (!settled) console.log(`  N=${runs}: not settled after ${numbers['settle-minutes']} min; measuring anyway`);

  // The steady window.
  await emulator.clearRequests();
  const auditMark = sizeOf(stack.auditLog);
  const usageBefore = processUsage(worker.pid!);
  const stackCpuBefore = stackCpuSeconds(stack);
  const windowStart = Date.now();
  await sleepMs(windowMs);
  const windowEnd = Date.now();
  const usageAfter = processUsage(worker.pid!);
  const stackCpu = stackCpuSeconds(stack) - stackCpuBefore;
  const armRecords = (await emulator.requests()).filter((r) => r.at >= windowStart);
  const kubeLines = linesSince(stack.auditLog, auditMark);
  const state = await progress('measured');
  const temporal = await temporalFigures(handles, windowStart, windowEnd);

  // Cancel, and wait for every run's cleanup.
  console.log(`  N=${runs}: cancelling, waiting for cleanup (up to ${numbers['cleanup-minutes']} min)`);
  const cancelledAt = Date.now();
  await Promise.allSettled(handles.map((h) => h.cancel()));
  const closed = () => Promise.all(handles.map((h) => h.describe().then((d) => d.status.name !== 'RUNNING')));
  let open = handles.length;
  while (Date.now() - cancelledAt < numbers['cleanup-minutes'] * 60_000) {
    open = (await closed()).filter((c) => !c).length;
    const left = await benchPools();
    if (open === 0 && Object.keys(left).length === 0) break;
    await sleepMs(10_000);
  }
  const poolsLeft = await benchPools();
  const seconds = windowMs / 1000;
  return {
    runs,
    settled,
    inWindow: { trainersRunning: state.training, pools: state.poolStates },
    armCallsPerMinutePer100Runs: { total: perMinutePer100(armRecords.length, runs), ...byMinute(armCallsByKind(armRecords), runs) },
    ...(armRecords.length >= 10_000 ? { armRequestLogCapped: true } : {}),
    kubernetesCallsPerMinutePer100Runs: { total: perMinutePer100(kubeLines.length, runs), ...byMinute(kubeCallsByKind(kubeLines), runs) },
    armCallsPerSecond: Math.round((armRecords.length / seconds) * 10) / 10,
    kubernetesCallsPerSecond: Math.round((kubeLines.length / seconds) * 10) / 10,
    worker: {
      cpuPercent: Math.round(((usageAfter.cpuSeconds - usageBefore.cpuSeconds) / seconds) * 100),
      rssMiB: usageAfter.rssMiB,
      idleRssMiB: idleRss,
      rssPerRunMiB: Math.round(((usageAfter.rssMiB - idleRss) / runs) * 100) / 100,
    },
    stack: { cpuPercent: Math.round((stackCpu / seconds) * 100) },
    temporal,
    cleanup: { seconds: Math.round((Date.now() - cancelledAt) / 1000), runsStillOpen: open, poolsLeft },
  };
}

const rounds: Awaited<ReturnType<typeof round>>[] = [];
/** Memory per run in flight: the slope of resident memory between the smallest round and each larger one. */
const rssSlopes: { from: number; to: number; miBPerRun: number }[] = [];
const resultsFile = join(stack.stateDir, 'bench', `scale-${stamp}.json`);
function writeResults(): string {
  mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
  writeFileSync(resultsFile, JSON.stringify({ ...numbers, rounds, rssSlopes }, null, 2));
  return resultsFile;
}

// The stand-ins' timings go back as they were afterwards: a smoke run in the test suite shares the stack.
const timingsBefore = { emulator: await emulator.settings(), trainingMs: (await simulator.settings()).trainingMs };
await emulator.settings({ provisioningDelayMs: numbers['node-ready-seconds'] * 1000, deletionDelayMs: 5000 });
await simulator.settings({ trainingMs, failTraining: undefined });
const client = await connectClient(config.temporal);
const worker = await startWorkerProcess({ ...process.env, TEMPORAL_TASK_QUEUE: taskQueue }, join(stack.logsDir, 'bench-scale-worker.log'));
try {
  console.log(
    `fineTune scale benchmark: runs ${sizes.join(', ')} held in flight; nodes ready after ${numbers['node-ready-seconds']} s; ` +
      `${numbers['ramp-per-minute']} starts a minute; checks every ${numbers['poll-seconds']} s; steady window ${numbers['window-minutes']} min; one worker process, the product's default polling`,
  );
  for (const runs of sizes) {
    const r = await round(client, worker, runs);
    rounds.push(r);
    writeResults();
    console.log(`\nN=${runs}${r.settled ? '' : ' (NOT SETTLED)'}: ${r.inWindow.trainersRunning} training, pools ${JSON.stringify(r.inWindow.pools)}`);
    console.log(`  per minute per 100 runs: ARM ${JSON.stringify(r.armCallsPerMinutePer100Runs)}`);
    console.log(`  per minute per 100 runs: Kubernetes ${JSON.stringify(r.kubernetesCallsPerMinutePer100Runs)}`);
    console.log(`  per second, all runs: ARM ${r.armCallsPerSecond}, Kubernetes ${r.kubernetesCallsPerSecond}`);
    console.log(`  worker ${r.worker.cpuPercent}% CPU, RSS ${r.worker.rssMiB} MiB (${r.worker.idleRssMiB} idle: ${r.worker.rssPerRunMiB} MiB per run); stack ${r.stack.cpuPercent}% CPU`);
    console.log(`  Temporal (${r.temporal.sampled} runs sampled): ${JSON.stringify(r.temporal.historyEventsPerRun)} events per run, ${r.temporal.historyEventsPerRunHour} per run-hour; workflow task schedule-to-start ${JSON.stringify(r.temporal.workflowTaskScheduleToStartMs)}, start-to-complete ${JSON.stringify(r.temporal.workflowTaskStartToCompleteMs)}; activity schedule-to-start ${JSON.stringify(r.temporal.activityScheduleToStartMs)}`);
    for (const [name, s] of Object.entries(r.temporal.steps)) console.log(`  ${name.padEnd(20)} overhead p50 ${s.overheadP50Ms} ms, p99 ${s.overheadP99Ms} ms (${s.runs} runs)`);
    console.log(`  cleanup: ${r.cleanup.seconds}s, ${r.cleanup.runsStillOpen} runs still open, pools left ${JSON.stringify(r.cleanup.poolsLeft)}`);
  }
} finally {
  worker.kill('SIGTERM');
  await client.connection.close();
  await emulator.settings(timingsBefore.emulator);
  await simulator.settings({ trainingMs: timingsBefore.trainingMs });
}
const [smallest, ...larger] = rounds;
for (const r of smallest ? larger : []) rssSlopes.push({ from: smallest!.runs, to: r.runs, miBPerRun: Math.round(((r.worker.rssMiB - smallest!.worker.rssMiB) / (r.runs - smallest!.runs)) * 100) / 100 });
for (const s of rssSlopes) console.log(`Worker memory from ${s.from} to ${s.to} runs in flight: ${s.miBPerRun} MiB per run`);
console.log(`Results: ${writeResults()}`);
