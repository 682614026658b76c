// `npm run bench`: N concurrent fineTune runs on the local stack, through one worker process,
// for each N of --runs. Reports per-step orchestration overhead (step wall time minus the time
// the external system was working: the ARM operation, the Job), runs per minute, ARM /
// Kubernetes / registry calls per run, the worker's CPU and peak memory beside the stack's own
// CPU, and heartbeat timeouts; and the largest N that completed with none. Prints progress every
// minute; on --time-limit-minutes or Ctrl-C it cancels the runs still open and reports what it
// measured so far, marked partial. Results: .stack/bench/*.json.
// Run through scripts/with-stack-env.sh (npm run bench does). Loopback only, bounded in size.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Client, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { connectClient } from '../client/temporal-connection.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';
import { startWorkerProcess } from './stack/worker-process.js';
import { loadWorkerConfig } from '../workers/config.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { percentile } from './percentile.js';
import { linesSince, processUsage, registryRequests, sizeOf, sleepMs, span, stackCpuSeconds } from './bench-measure.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5,20,50' },
    'training-ms': { type: 'string', default: '3000' },
    'poll-seconds': { type: 'string', default: '2' },
    'ramp-per-minute': { type: 'string', default: '0' },
    'time-limit-minutes': { type: 'string', default: '0' },
    'progress-seconds': { type: 'string', default: '60' },
  },
});
const maxRuns = 1000;
const sizes = args.runs.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > maxRuns)) throw new Error(`--runs takes whole numbers from 1 to ${maxRuns}, e.g. 5,20,50`);
const trainingMs = Number(args['training-ms']);
const pollIntervalSeconds = Number(args['poll-seconds']);
/** Runs started per minute; 0: all at once. */
const rampPerMinute = Number(args['ramp-per-minute']);
const timeLimitMs = Number(args['time-limit-minutes']) * 60_000;
const progressMs = Number(args['progress-seconds']) * 1000;
for (const [name, value] of Object.entries({ 'training-ms': trainingMs, 'poll-seconds': pollIntervalSeconds, 'ramp-per-minute': rampPerMinute, 'time-limit-minutes': timeLimitMs, 'progress-seconds': progressMs })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} takes a number of at least 0, not ${args[name as keyof typeof args]}`);
}

const config = loadWorkerConfig();
const stack = loadStackConfig();
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
const registryHost = new URL(config.registry.endpoint).host;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();
const taskQueue = `bench-${stamp}`;


/** Set on --time-limit-minutes or Ctrl-C: the round stops waiting, cancels its open runs and reports what it has. */
const stop: { reason?: string } = {};
const benchStarted = Date.now();
process.on('SIGINT', () => {
  if (stop.reason) process.exit(130); // a second Ctrl-C: out at once
  stop.reason = 'interrupted (Ctrl-C)';
  console.log('\nInterrupted: cancelling the open runs and writing what was measured (Ctrl-C again to quit at once)');
});
const timeLeft = () => (timeLimitMs > 0 ? timeLimitMs - (Date.now() - benchStarted) : Infinity);
const cleanupWaitMs = 120_000;

const startWorker = () =>
  startWorkerProcess(
    { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue, ARM_POLL_INTERVAL_MS: '250', KUBE_POLL_INTERVAL_MS: '500' },
    join(stack.logsDir, 'bench-worker.log'),
  );

interface StepSample {
  wallMs: number;
  externalMs: number;
}

async function round(client: Client, worker: ChildProcess, runs: number) {
  await emulator.clearRequests();
  const marks = { audit: sizeOf(stack.auditLog), registry: sizeOf(join(stack.logsDir, 'registry.log')) };
  const usageBefore = processUsage(worker.pid!);
  const stackCpuBefore = stackCpuSeconds(stack);
  const began = Date.now();
  const handles: WorkflowHandle<typeof fineTune>[] = [];
  const outcomes: (PromiseSettledResult<FineTuneStatus> | undefined)[] = [];
  const counts = () => {
    const settled = outcomes.filter((o) => o !== undefined);
    const succeeded = settled.filter((o) => o.status === 'fulfilled' && o.value.phase === 'succeeded').length;
    return { started: handles.length, running: handles.length - settled.length, succeeded, failed: settled.length - succeeded };
  };
  const progress = () => {
    const c = counts();
    console.log(`  [${Math.round((Date.now() - began) / 1000)}s] N=${runs}: started ${c.started}, running ${c.running}, succeeded ${c.succeeded}, failed ${c.failed}`);
  };
  const ticker = setInterval(progress, progressMs || 60_000);
  try {
    for (let i = 0; i < runs && !stop.reason; i++) {
      if (rampPerMinute > 0 && i > 0) await sleepMs(60_000 / rampPerMinute);
      const handle = await client.workflow.start(fineTune, {
        taskQueue,
        workflowId: fineTuneWorkflowId(`bench-${stamp}-${runs}-${i}`),
        args: [
          {
            model: 'phi-3-mini-4k-instruct',
            method: 'qlora',
            dataset: { urls: ['https://datasets.example.com/bench/train.jsonl'] },
            output: { image: `${registryHost}/adapters/bench:${stamp}-${runs}-${i}` },
            gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
            pollIntervalSeconds,
          },
        ],
      });
      const index = handles.push(handle) - 1;
      outcomes.push(undefined);
      handle.result().then(
        (value) => (outcomes[index] = { status: 'fulfilled', value }),
        (reason: unknown) => (outcomes[index] = { status: 'rejected', reason }),
      );
    }
    while (counts().running > 0 && !stop.reason) {
      if (timeLeft() <= 0) stop.reason = `time limit of ${args['time-limit-minutes']} minutes reached`;
      else await sleepMs(Math.min(1000, timeLeft()));
    }
  } finally {
    clearInterval(ticker);
  }
  const partial = stop.reason;
  /** The steps the runs still open had finished: a cut-off round still reports them. */
  const openStatuses: FineTuneStatus[] = [];
  const open = partial ? handles.filter((_, i) => outcomes[i] === undefined) : [];
  if (partial) {
    progress();
    for (const r of await Promise.allSettled(open.map((h) => h.query(fineTuneStatusQuery)))) if (r.status === 'fulfilled') openStatuses.push(r.value);
    // The open runs are cancelled and each cleans up after itself (its pool, its Jobs), as a user's
    // cancel does; the bench waits for that (up to cleanupWaitMs), since no worker serves its task queue afterwards.
    await Promise.allSettled(open.map((h) => h.cancel()));
    console.log(`  cancelled the ${open.length} open run(s), waiting for their cleanup; figures below are from the runs that ended and the steps the others had finished`);
    const cancelledAt = Date.now();
    while (counts().running > 0 && Date.now() - cancelledAt < cleanupWaitMs) await sleepMs(1000);
    if (counts().running > 0) console.log(`  ${counts().running} run(s) still cleaning up after ${cleanupWaitMs / 1000}s: the reaper releases any pool they leave`);
  }
  const wallMs = Date.now() - began;
  const usageAfter = processUsage(worker.pid!);
  const stackCpu = stackCpuSeconds(stack) - stackCpuBefore;
  const settledHandles = handles.filter((_, i) => outcomes[i] !== undefined);
  const statuses = outcomes.flatMap((r) => (r?.status === 'fulfilled' ? [r.value] : []));

  // External work, as the external systems recorded it.
  const operations = await emulator.operations();
  const armMs = (pool: string, kind: string) => {
    const op = operations.find((o) => o.pool === pool && o.kind === kind && o.status === 'Succeeded');
    return span(op?.startTime, op?.endTime);
  };
  const steps: Record<string, StepSample[]> = {};
  for (const status of [...statuses, ...openStatuses]) {
    for (const step of status.steps) {
      if (!step.endedAt) continue;
      const externalMs =
        step.name === 'GPU capacity'
          ? armMs(status.gpu!.pool, 'create')
          : step.name === 'release GPUs'
            ? armMs(status.gpu!.pool, 'delete')
            : step.name === 'train'
              ? span(status.training?.startedAt, status.training?.finishedAt)
              : step.name === 'push adapter image'
                ? span(status.push?.startedAt, status.push?.finishedAt)
                : 0;
      (steps[step.name] ??= []).push({ wallMs: span(step.startedAt, step.endedAt), externalMs });
    }
  }

  let heartbeatTimeouts = 0;
  for (const handle of settledHandles) {
    const history = await handle.fetchHistory();
    heartbeatTimeouts += (history.events ?? []).filter(
      (e) => e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType === proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT,
    ).length;
  }

  const armCalls = (await emulator.requests()).length;
  const kubeCalls = linesSince(stack.auditLog, marks.audit).length;
  const registryCalls = registryRequests(linesSince(join(stack.logsDir, 'registry.log'), marks.registry));
  const ended = Math.max(settledHandles.length, 1);
  return {
    runs,
    ...(partial ? { partial, started: handles.length, cancelled: open.length } : {}),
    succeeded: statuses.filter((s) => s.phase === 'succeeded').length,
    wallSeconds: Math.round(wallMs / 100) / 10,
    runsPerMinute: Math.round((statuses.length / (wallMs / 60_000)) * 10) / 10,
    steps: Object.fromEntries(
      Object.entries(steps).map(([name, samples]) => {
        const overhead = samples.map((s) => s.wallMs - s.externalMs);
        return [name, { overheadP50Ms: percentile(overhead, 0.5), overheadP99Ms: percentile(overhead, 0.99), wallP50Ms: percentile(samples.map((s) => s.wallMs), 0.5) }];
      }),
    ),
    // Per run started: a run cut off by a partial round made calls too.
    callsPerRun: { arm: armCalls / Math.max(handles.length, 1), kubernetes: kubeCalls / Math.max(handles.length, 1), registry: registryCalls / ended },
    worker: { cpuPercent: Math.round(((usageAfter.cpuSeconds - usageBefore.cpuSeconds) / (wallMs / 1000)) * 100), peakRssMiB: usageAfter.peakRssMiB },
    stack: { cpuPercent: Math.round((stackCpu / (wallMs / 1000)) * 100) },
    heartbeatTimeouts,
  };
}

const resultsFile = join(stack.stateDir, 'bench', `fine-tune-${stamp}.json`);
function writeResults(): string {
  mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
  writeFileSync(resultsFile, JSON.stringify({ trainingMs, pollIntervalSeconds, rampPerMinute, ...(stop.reason ? { partial: stop.reason } : {}), rounds }, null, 2));
  return resultsFile;
}

await emulator.settings({ provisioningDelayMs: 1000, deletionDelayMs: 500 });
await simulator.settings({ trainingMs, failTraining: undefined });
const client = await connectClient(config.temporal);
const worker = await startWorker();
const rounds: Awaited<ReturnType<typeof round>>[] = [];
try {
  console.log(
    `fineTune benchmark: runs ${sizes.join(', ')}; simulated training ${trainingMs} ms; checks every ${pollIntervalSeconds} s; ` +
      `${rampPerMinute > 0 ? `${rampPerMinute} starts a minute` : 'all started at once'}; ${timeLimitMs > 0 ? `time limit ${args['time-limit-minutes']} min; ` : ''}one worker process`,
  );
  for (const runs of sizes) {
    if (stop.reason) break;
    const result = await round(client, worker, runs);
    rounds.push(result);
    writeResults(); // after every round: a bench cut off later keeps what it measured
    console.log(`\nN=${runs}${result.partial ? ` (PARTIAL: ${result.partial}; ${result.started} started, ${result.cancelled} cancelled while open)` : ''}: ${result.succeeded}/${runs} succeeded in ${result.wallSeconds}s, ${result.runsPerMinute} runs/min, heartbeat timeouts ${result.heartbeatTimeouts}`);
    console.log(`  calls per run: ARM ${result.callsPerRun.arm.toFixed(1)}, Kubernetes ${result.callsPerRun.kubernetes.toFixed(1)}, registry ${result.callsPerRun.registry.toFixed(1)}`);
    console.log(`  worker: ${result.worker.cpuPercent}% of one core on average, peak RSS ${result.worker.peakRssMiB} MiB; the stack's own processes: ${result.stack.cpuPercent}% of one core`);
    console.log(`  ${'step'.padEnd(20)} ${'overhead p50'.padStart(13)} ${'p99'.padStart(8)} ${'wall p50'.padStart(9)}`);
    for (const [name, s] of Object.entries(result.steps)) {
      console.log(`  ${name.padEnd(20)} ${`${s.overheadP50Ms} ms`.padStart(13)} ${`${s.overheadP99Ms} ms`.padStart(8)} ${`${s.wallP50Ms} ms`.padStart(9)}`);
    }
  }
} finally {
  worker.kill('SIGTERM');
  await client.connection.close();
}
const clean = rounds.filter((r) => !r.partial && r.succeeded === r.runs && r.heartbeatTimeouts === 0).map((r) => r.runs);
console.log(`\nLargest N with every run succeeded and no heartbeat timeout: ${clean.length ? Math.max(...clean) : 'none'}`);
console.log(`Results: ${writeResults()}`);
