// `npm run bench`: N concurrent fineTune runs on the local stack, through one worker process,
// for each N of --runs. Reports per-step orchestration overhead (step wall time minus the time
// the external system was working: the ARM operation, the Job), runs per minute, ARM /
// Kubernetes / registry calls per run, the worker's CPU and peak memory, and heartbeat
// timeouts; and the largest N that completed with none. Results: .stack/bench/*.json.
// Run through scripts/with-stack-env.sh (npm run bench does). Loopback only, bounded in size.
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { connectClient } from '../client/temporal-connection.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';
import { startWorkerProcess } from './stack/worker-process.js';
import { loadWorkerConfig } from '../workers/config.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { percentile } from './percentile.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5,20,50' },
    'training-ms': { type: 'string', default: '3000' },
    'poll-seconds': { type: 'string', default: '2' },
  },
});
const sizes = args.runs.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 500)) throw new Error('--runs takes whole numbers from 1 to 500, e.g. 5,20,50');
const trainingMs = Number(args['training-ms']);
const pollIntervalSeconds = Number(args['poll-seconds']);

const config = loadWorkerConfig();
const stack = loadStackConfig();
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
const registryHost = new URL(config.registry.endpoint).host;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();
const taskQueue = `bench-${stamp}`;

/** Bytes appended to a log since `offset`, as lines. */
function linesSince(file: string, offset: number): string[] {
  const size = statSync(file).size;
  if (size <= offset) return [];
  const fd = openSync(file, 'r');
  const buffer = Buffer.alloc(size - offset);
  readSync(fd, buffer, 0, buffer.length, offset);
  closeSync(fd);
  return buffer.toString('utf8').split('\n').filter(Boolean);
}
const sizeOf = (file: string) => statSync(file).size;

/** CPU seconds (user + system, all threads) and peak resident memory of a process. */
function processUsage(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
  return { cpuSeconds: ticks / 100, peakRssMiB: Math.round(Number(hwm) / 1024) };
}

const span = (from?: string, to?: string) => (from && to ? Date.parse(to) - Date.parse(from) : 0);

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
  const began = Date.now();
  const handles = await Promise.all(
    Array.from({ length: runs }, (_, i) =>
      client.workflow.start(fineTune, {
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
      }),
    ),
  );
  const results = await Promise.allSettled(handles.map((h) => h.result()));
  const wallMs = Date.now() - began;
  const usageAfter = processUsage(worker.pid!);
  const statuses = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value as FineTuneStatus] : []));

  // External work, as the external systems recorded it.
  const operations = await emulator.operations();
  const armMs = (pool: string, kind: string) => {
    const op = operations.find((o) => o.pool === pool && o.kind === kind && o.status === 'Succeeded');
    return span(op?.startTime, op?.endTime);
  };
  const steps: Record<string, StepSample[]> = {};
  for (const status of statuses) {
    for (const step of status.steps) {
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
  for (const handle of handles) {
    const history = await handle.fetchHistory();
    heartbeatTimeouts += (history.events ?? []).filter(
      (e) => e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType === proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT,
    ).length;
  }

  const armCalls = (await emulator.requests()).length;
  const kubeCalls = linesSince(stack.auditLog, marks.audit).length;
  const registryCalls = linesSince(join(stack.logsDir, 'registry.log'), marks.registry).filter((l) => /"(GET|HEAD|PUT|POST|PATCH|DELETE) \/v2\//.test(l)).length;
  return {
    runs,
    succeeded: statuses.filter((s) => s.phase === 'succeeded').length,
    wallSeconds: Math.round(wallMs / 100) / 10,
    runsPerMinute: Math.round((statuses.length / (wallMs / 60_000)) * 10) / 10,
    steps: Object.fromEntries(
      Object.entries(steps).map(([name, samples]) => {
        const overhead = samples.map((s) => s.wallMs - s.externalMs);
        return [name, { overheadP50Ms: percentile(overhead, 0.5), overheadP99Ms: percentile(overhead, 0.99), wallP50Ms: percentile(samples.map((s) => s.wallMs), 0.5) }];
      }),
    ),
    callsPerRun: { arm: armCalls / runs, kubernetes: kubeCalls / runs, registry: registryCalls / runs },
    worker: { cpuPercent: Math.round(((usageAfter.cpuSeconds - usageBefore.cpuSeconds) / (wallMs / 1000)) * 100), peakRssMiB: usageAfter.peakRssMiB },
    heartbeatTimeouts,
  };
}

await emulator.settings({ provisioningDelayMs: 1000, deletionDelayMs: 500 });
await simulator.settings({ trainingMs, failTraining: undefined });
const client = await connectClient(config.temporal);
const worker = await startWorker();
const rounds = [];
try {
  console.log(`fineTune benchmark: runs ${sizes.join(', ')}; simulated training ${trainingMs} ms; checks every ${pollIntervalSeconds} s; one worker process`);
  for (const runs of sizes) {
    const result = await round(client, worker, runs);
    rounds.push(result);
    console.log(`\nN=${runs}: ${result.succeeded}/${runs} succeeded in ${result.wallSeconds}s, ${result.runsPerMinute} runs/min, heartbeat timeouts ${result.heartbeatTimeouts}`);
    console.log(`  calls per run: ARM ${result.callsPerRun.arm.toFixed(1)}, Kubernetes ${result.callsPerRun.kubernetes.toFixed(1)}, registry ${result.callsPerRun.registry.toFixed(1)}`);
    console.log(`  worker: ${result.worker.cpuPercent}% of one core on average, peak RSS ${result.worker.peakRssMiB} MiB`);
    console.log(`  ${'step'.padEnd(20)} ${'overhead p50'.padStart(13)} ${'p99'.padStart(8)} ${'wall p50'.padStart(9)}`);
    for (const [name, s] of Object.entries(result.steps)) {
      console.log(`  ${name.padEnd(20)} ${`${s.overheadP50Ms} ms`.padStart(13)} ${`${s.overheadP99Ms} ms`.padStart(8)} ${`${s.wallP50Ms} ms`.padStart(9)}`);
    }
  }
} finally {
  worker.kill('SIGTERM');
  await client.connection.close();
}
const clean = rounds.filter((r) => r.succeeded === r.runs && r.heartbeatTimeouts === 0).map((r) => r.runs);
console.log(`\nLargest N with every run succeeded and no heartbeat timeout: ${clean.length ? Math.max(...clean) : 'none'}`);
mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
const file = join(stack.stateDir, 'bench', `fine-tune-${stamp}.json`);
writeFileSync(file, JSON.stringify({ trainingMs, pollIntervalSeconds, rounds }, null, 2));
console.log(`Results: ${file}`);
