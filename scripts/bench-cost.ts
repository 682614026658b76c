// `npm run bench:cost`: a simulated day of scheduled retraining on the local stack, time
// compressed (every duration scaled by the same factor), in two tracks side by side:
//   ours     fineTune as it is: GPUs released as soon as the adapter is pushed
//   baseline KAITO's lifecycle: the node stays until the run's resources are deleted, here
//            when the same schedule's next run replaces them (or the day ends)
// The tracks use different VM sizes of one GPU each, so every GPU node belongs to one track.
// A sampler adds up billed GPU-minutes (GPU nodes existing) and used GPU-minutes (pods holding
// GPUs Running). Reported in simulated minutes. Loopback only; bounded in time.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { connectClient } from '../client/temporal-connection.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { createKubeConfig } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { startJobWatcher } from '../workers/job-watcher.js';
import { createWorker } from '../workers/worker.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';

const { values: args } = parseArgs({
  options: {
    // Real seconds per simulated hour: 6 compresses a day into 2.4 minutes.
    'seconds-per-hour': { type: 'string', default: '6' },
    'training-minutes': { type: 'string', default: '45' },
  },
});
const secondsPerHour = Number(args['seconds-per-hour']);
const trainingMinutes = Number(args['training-minutes']);
const realMs = (simMinutes: number) => (simMinutes / 60) * secondsPerHour * 1000;
const simMinutes = (ms: number) => (ms / 1000 / secondsPerHour) * 60;

const schedules = [
  { name: 'support-bot', everyHours: 4 },
  { name: 'code-assist', everyHours: 6 },
  { name: 'summarizer', everyHours: 8 },
];
const tracks = {
  ours: { vmSize: 'Standard_NC24ads_A100_v4' },
  baseline: { vmSize: 'Standard_NC40ads_H100_v5' },
} as const;
type Track = keyof typeof tracks;

const config = loadWorkerConfig();
const stack = loadStackConfig();
const core = createKubeConfig(config).makeApiClient(CoreV1Api);
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
const registryHost = new URL(config.registry.endpoint).host;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();

/** GPU-milliseconds per track: billed (nodes exist) and used (GPU pods Running). */
const totals: Record<Track, { billedMs: number; usedMs: number }> = { ours: { billedMs: 0, usedMs: 0 }, baseline: { billedMs: 0, usedMs: 0 } };
const trackOfSize = (size?: string): Track | undefined => (Object.keys(tracks) as Track[]).find((t) => tracks[t].vmSize === size);

async function sample(dtMs: number): Promise<void> {
  const { items: nodes } = await core.listNode({ labelSelector: 'kubernetes.azure.com/accelerator=nvidia' });
  const nodeTrack = new Map<string, Track>();
  for (const node of nodes) {
    const track = trackOfSize(node.metadata?.labels?.['node.kubernetes.io/instance-type']);
    if (!track) continue;
    nodeTrack.set(node.metadata!.name!, track);
    // Azure bills the VM's GPUs whether or not the device plugin has registered them yet.
    totals[track].billedMs += dtMs * (findVmSize(tracks[track].vmSize)?.gpus ?? 0);
  }
  const { items: pods } = await core.listPodForAllNamespaces({ fieldSelector: 'status.phase=Running' });
  for (const pod of pods) {
    const track = nodeTrack.get(pod.spec?.nodeName ?? '');
    const gpus = (pod.spec?.containers ?? []).reduce((n, c) => n + Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0), 0);
    if (track && gpus > 0) totals[track].usedMs += dtMs * gpus;
  }
}

function request(track: Track, schedule: (typeof schedules)[number]): FineTuneRequest {
  return {
    model: 'phi-3-mini-4k-instruct',
    method: 'qlora',
    dataset: { urls: [`https://datasets.example.com/${schedule.name}/train.jsonl`] },
    output: { image: `${registryHost}/adapters/${schedule.name}:${stamp}` },
    gpu: { vmSize: tracks[track].vmSize, reuseWarmPool: false },
    // The baseline keeps its node until the schedule's next run replaces the run's resources.
    release: { policy: 'delete', idleGraceMinutes: track === 'baseline' ? realMs(schedule.everyHours * 60) / 60_000 : 0 },
    pollIntervalSeconds: 1,
  };
}

Runtime.install({ logger: new DefaultLogger('WARN') });
await emulator.settings({ provisioningDelayMs: realMs(10), deletionDelayMs: realMs(3) });
await simulator.settings({ trainingMs: realMs(trainingMinutes), failTraining: undefined });
const workerConnection = await NativeConnection.connect(config.temporal.connection);
const taskQueue = `bench-cost-${stamp}`;
const worker = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, workerConnection, {
  tuning: { armPollIntervalMs: 250, kubePollIntervalMs: 250 },
});
const workerRun = worker.run();
const client = await connectClient(config.temporal);
const watcher = startJobWatcher(createKubeConfig(config), client);

const dayMs = realMs(24 * 60);
console.log(`Simulated day of retraining: ${schedules.map((s) => `${s.name} every ${s.everyHours} h`).join(', ')}; training ${trainingMinutes} min`);
console.log(`Time compressed: 1 simulated hour = ${secondsPerHour} s, the day = ${(dayMs / 1000).toFixed(0)} s (plus the last runs' tail)`);
const began = Date.now();
let sampling = true;
const sampler = (async () => {
  let last = Date.now();
  while (sampling) {
    await new Promise((r) => setTimeout(r, 250));
    const now = Date.now();
    await sample(now - last).catch(() => undefined);
    last = now;
  }
})();

const runs: { track: Track; schedule: string; result: Promise<FineTuneStatus> }[] = [];
const timers: NodeJS.Timeout[] = [];
for (const schedule of schedules) {
  for (let at = 0; at < 24; at += schedule.everyHours) {
    for (const track of Object.keys(tracks) as Track[]) {
      let resolve!: (s: FineTuneStatus) => void;
      let reject!: (e: unknown) => void;
      const result = new Promise<FineTuneStatus>((res, rej) => ((resolve = res), (reject = rej)));
      result.catch(() => undefined);
      runs.push({ track, schedule: schedule.name, result });
      timers.push(
        setTimeout(() => {
          client.workflow
            .execute(fineTune, { taskQueue, workflowId: fineTuneWorkflowId(`cost-${stamp}-${track}-${schedule.name}-${at}h`), args: [request(track, schedule)] })
            .then(resolve, reject);
        }, realMs(at * 60)),
      );
    }
  }
}

const outcomes = await Promise.allSettled(runs.map((r) => r.result));
sampling = false;
await sampler;
watcher.stop();
worker.shutdown();
await workerRun;
await client.connection.close();
await workerConnection.close();

const report: Record<string, unknown> = { secondsPerHour, trainingMinutes, schedules, realSeconds: Math.round((Date.now() - began) / 1000) };
for (const track of Object.keys(tracks) as Track[]) {
  const statuses = runs
    .map((r, i) => ({ r, o: outcomes[i]! }))
    .filter(({ r, o }) => r.track === track && o.status === 'fulfilled')
    .map(({ o }) => (o as PromiseFulfilledResult<FineTuneStatus>).value);
  const idleAfterJob = statuses
    .map((s) => (s.training?.finishedAt && s.gpu?.releasedAt ? simMinutes(Date.parse(s.gpu.releasedAt) - Date.parse(s.training.finishedAt)) : NaN))
    .filter((m) => !Number.isNaN(m))
    .sort((a, b) => a - b);
  const billed = simMinutes(totals[track].billedMs);
  const used = simMinutes(totals[track].usedMs);
  const row = {
    runs: statuses.length,
    failed: runs.filter((r, i) => r.track === track && outcomes[i]!.status === 'rejected').length,
    billedGpuMinutes: Math.round(billed),
    usedGpuMinutes: Math.round(used),
    utilization: Math.round((used / billed) * 1000) / 1000,
    idleMinutesAfterJobP50: Math.round((idleAfterJob[Math.floor(idleAfterJob.length / 2)] ?? NaN) * 10) / 10,
    idleMinutesAfterJobMax: Math.round((idleAfterJob.at(-1) ?? NaN) * 10) / 10,
  };
  report[track] = row;
  console.log(
    `\n${track.padEnd(8)} ${row.runs} runs (${row.failed} failed): billed ${row.billedGpuMinutes} GPU-min, used ${row.usedGpuMinutes} GPU-min, ` +
      `used/billed ${row.utilization}; idle after each job: p50 ${row.idleMinutesAfterJobP50} min, max ${row.idleMinutesAfterJobMax} min`,
  );
}
const ours = report.ours as { billedGpuMinutes: number };
const baseline = report.baseline as { billedGpuMinutes: number };
report.billedRatio = Math.round((ours.billedGpuMinutes / baseline.billedGpuMinutes) * 1000) / 1000;
console.log(`\nbilled GPU-minutes, ours / baseline: ${report.billedRatio}`);
mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
const file = join(stack.stateDir, 'bench', `cost-${stamp}.json`);
writeFileSync(file, JSON.stringify(report, null, 2));
console.log(`Results: ${file}`);
for (const t of timers) clearTimeout(t);
