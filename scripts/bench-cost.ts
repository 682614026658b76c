// `npm run bench:cost`: a simulated day of scheduled retraining on the local stack, time
// compressed (every duration scaled by the same factor), in two tracks side by side:
//   ours     fineTune as it is: GPUs released as soon as the adapter is pushed
//   baseline KAITO's lifecycle: the node stays until the run's resources are deleted, here
//            when the same schedule's next run replaces them (or the day ends)
// The tracks use different VM sizes of one GPU each, so every GPU node belongs to one track.
// A sampler adds up billed GPU-minutes (GPU nodes existing) and used GPU-minutes (pods holding
// GPUs Running). Reported in simulated minutes. Loopback only; bounded in time.
//
// Then (--evictions on, the default; `only` skips the day, `off` skips this) the same jobs on
// Spot pools whose nodes Azure evicts while they train, at moments drawn from a seeded Poisson
// process (--eviction-rate a GPU-hour of training, --seed), the same moments in each track:
//   resume   fineTune with the product's trainer: after an eviction the run gets a new node and
//            the trainer resumes from its newest complete checkpoint
//   restart  fineTune with KAITO's trainer (tuning.trainer "kaito"): no checkpoints, a lost node
//            trains again from step 0
//   KAITO    what KAITO itself bills: restart's GPU time plus the node KAITO keeps after each job
//            (the day's baseline assumption), derived from the restart track, not run
// Nodes take AKS-like minutes to offer GPUs (--node-ready-minutes). The trainer pods' own logs
// say when to evict and how many steps each attempt trained.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, parseArgs } from 'node:util';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { roleLabel, roles, runIdLabel } from '../activities/kubernetes/labels.js';
import { agentPoolLabel } from '../activities/kubernetes/placement.js';
import { connectClient } from '../client/temporal-connection.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { runLabelValue } from '../domain/hash.js';
import { newLogLines, readTrainerLines, type TrainerKind } from '../domain/training-progress.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { createKubeConfig } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { startJobWatcher } from '../workers/job-watcher.js';
import { createWorker } from '../workers/worker.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { maxCapacityRecoveries } from '../workflows/fine-tune-gpus.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { attemptSteps, checkpointEverySteps, isSubsequence, planEvictions, predictJob, round } from './eviction-plan.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';

const { values: args } = parseArgs({
  options: {
    // Real seconds per simulated hour: 6 compresses a day into 2.4 minutes.
    'seconds-per-hour': { type: 'string', default: '6' },
    'training-minutes': { type: 'string', default: '45' },
    // The spot-eviction section: on (after the day), off, or only (without the day).
    evictions: { type: 'string', default: 'on' },
    // Expected evictions per GPU-hour of training (simulated), and the seed that draws their moments.
    'eviction-rate': { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    // Jobs a track (the day's schedules in turn), each training `steps` steps in training-minutes.
    'eviction-jobs': { type: 'string', default: '6' },
    steps: { type: 'string', default: '60' },
    'checkpoint-minutes': { type: 'string', default: '10' },
    // Azure GPU nodes take about 10-15 minutes to offer GPUs.
    'node-ready-minutes': { type: 'string', default: '8' },
    // Less compressed than the day: a real second of pod start-up or check interval is then 3
    // simulated minutes, not 10, next to the minutes of readiness and checkpoints it compares.
    'eviction-seconds-per-hour': { type: 'string', default: '20' },
  },
});
const numberArg = (name: keyof typeof args, min: number): number => {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number of at least ${min}, not ${String(args[name])}`);
  return value;
};
const secondsPerHour = numberArg('seconds-per-hour', 0.1);
const trainingMinutes = numberArg('training-minutes', 1);
const evictionsMode = args.evictions;
if (!['on', 'off', 'only'].includes(evictionsMode!)) throw new Error(`--evictions must be on, off or only, not ${evictionsMode}`);
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sampler {
  /** GPU-milliseconds per track: billed (nodes exist) and used (GPU pods Running). */
  totals: Record<string, { billedMs: number; usedMs: number }>;
  /** The Running pods of the latest sample. */
  running: () => V1Pod[];
  stop: () => Promise<void>;
}

/** Samples every 250 ms which GPU nodes exist and which GPU pods run, a track per VM size. */
function startSampler(sizes: Record<string, string>): Sampler {
  const names = Object.keys(sizes);
  const totals = Object.fromEntries(names.map((t) => [t, { billedMs: 0, usedMs: 0 }]));
  const trackOfSize = (size?: string) => names.find((t) => sizes[t] === size);
  let running: V1Pod[] = [];
  async function sample(dtMs: number): Promise<void> {
    const { items: nodes } = await core.listNode({ labelSelector: 'kubernetes.azure.com/accelerator=nvidia' });
    const nodeTrack = new Map<string, string>();
    for (const node of nodes) {
      const track = trackOfSize(node.metadata?.labels?.['node.kubernetes.io/instance-type']);
      if (!track) continue;
      nodeTrack.set(node.metadata!.name!, track);
      // Azure bills the VM's GPUs whether or not the device plugin has registered them yet.
      totals[track]!.billedMs += dtMs * (findVmSize(sizes[track]!)?.gpus ?? 0);
    }
    const { items: pods } = await core.listPodForAllNamespaces({ fieldSelector: 'status.phase=Running' });
    running = pods;
    for (const pod of pods) {
      const track = nodeTrack.get(pod.spec?.nodeName ?? '');
      const gpus = (pod.spec?.containers ?? []).reduce((n, c) => n + Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0), 0);
      if (track && gpus > 0) totals[track]!.usedMs += dtMs * gpus;
    }
  }
  let sampling = true;
  const loop = (async () => {
    let last = Date.now();
    while (sampling) {
      await sleep(250);
      const now = Date.now();
      await sample(now - last).catch(() => undefined);
      last = now;
    }
  })();
  return {
    totals,
    running: () => running,
    stop: async () => {
      sampling = false;
      await loop;
    },
  };
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

// The workflow warns of each node lost under a step: here the bench evicts them, and counts them.
Runtime.install({
  logger: new DefaultLogger('WARN', ({ level, message, meta, timestampNanos }) => {
    if (message === 'node lost under a step') return;
    process.stderr.write(`${new Date(Number(timestampNanos / 1_000_000n)).toISOString()} [${level}] ${message}${meta === undefined ? '' : ` ${format(meta)}`}\n`);
  }),
});
const emulatorBefore = await emulator.settings();
const simulatorBefore = await simulator.settings();
const workerConnection = await NativeConnection.connect(config.temporal.connection);
const taskQueue = `bench-cost-${stamp}`;
const client = await connectClient(config.temporal);
const watcher = startJobWatcher(createKubeConfig(config), client);
const worker = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, workerConnection, {
  tuning: { armPollIntervalMs: 250, kubePollIntervalMs: 250 },
  objects: watcher,
});
const workerRun = worker.run();
const report: Record<string, unknown> = {};

/** The simulated day: ours and baseline, as the bench always ran it. */
async function runDay(): Promise<void> {
  await emulator.settings({ provisioningDelayMs: realMs(10), deletionDelayMs: realMs(3) });
  await simulator.settings({ trainingMs: realMs(trainingMinutes), failTraining: undefined });
  const dayMs = realMs(24 * 60);
  console.log(`Simulated day of retraining: ${schedules.map((s) => `${s.name} every ${s.everyHours} h`).join(', ')}; training ${trainingMinutes} min`);
  console.log(`Time compressed: 1 simulated hour = ${secondsPerHour} s, the day = ${(dayMs / 1000).toFixed(0)} s (plus the last runs' tail)`);
  const began = Date.now();
  const sampler = startSampler({ ours: tracks.ours.vmSize, baseline: tracks.baseline.vmSize });
  const totals = sampler.totals as Record<Track, { billedMs: number; usedMs: number }>;

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
  await sampler.stop();
  for (const t of timers) clearTimeout(t);

  Object.assign(report, { secondsPerHour, trainingMinutes, schedules, realSeconds: Math.round((Date.now() - began) / 1000) });
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
}

// ---- Spot evictions: resume from checkpoints, restart from step 0, and KAITO's lifecycle. ----

/** One VM size a track, as in the day (which has ended when these run: its sizes are free again). */
const evictionTracks = {
  resume: { vmSize: 'Standard_NC24ads_A100_v4', trainer: 'aks-finetune' },
  restart: { vmSize: 'Standard_NC40ads_H100_v5', trainer: 'kaito' },
} as const satisfies Record<string, { vmSize: string; trainer: TrainerKind }>;
type EvictionTrack = keyof typeof evictionTracks;

interface Attempt {
  pod: string;
  /** The step the trainer started from (its start line; KAITO's: 0). */
  from?: number;
  /** The step the plan evicts this attempt at. */
  plannedAt?: number;
  /** The step the trainer's log showed when its node was evicted. */
  evictedAt?: number;
  lastStep?: number;
  /** The first and the latest step the log showed, and when the trainer printed them: the trainer's real pace. */
  firstSeen?: { step: number; atMs: number };
  lastSeen?: { step: number; atMs: number };
}

/** The trainer's progress in its pod's log, read whole (a few hundred lines) with the product's own parser. */
async function readTrainer(pod: V1Pod, kind: TrainerKind): Promise<{ from?: number; step?: number; atMs?: number } | undefined> {
  const name = pod.metadata!.name!;
  const log = await core
    .readNamespacedPodLog({ name, namespace: pod.metadata!.namespace!, container: pod.spec!.containers[0]!.name, timestamps: true })
    .catch(() => undefined);
  if (typeof log !== 'string') return undefined;
  const readout = readTrainerLines(kind, newLogLines(log, name, undefined, false).lines);
  const from = kind === 'kaito' ? 0 : readout.starts.at(-1)?.resumedFromStep;
  return { from, step: readout.latest?.step ?? from, atMs: readout.latest ? Date.parse(readout.latest.at) : undefined };
}

/**
 * Follows one run's trainer pods (in the sampler's view) until the run ends, and evicts each
 * attempt's node once it has trained the steps its plan says (`plan[k]`: the k-th eviction).
 */
async function driveEvictions(workflowId: string, kind: TrainerKind, plan: number[], totalSteps: number, stepMs: number, sampler: Sampler, ended: () => boolean) {
  const label = runLabelValue(workflowId);
  const seen = new Set<string>();
  const attempts: Attempt[] = [];
  const problems: string[] = [];
  const mine = (p: V1Pod) => p.metadata?.labels?.[runIdLabel] === label && p.metadata?.labels?.[roleLabel] === roles.trainer && p.spec?.nodeName;
  while (!ended()) {
    const pod = sampler.running().find((p) => mine(p) && !seen.has(p.metadata!.uid!));
    if (!pod) {
      await sleep(200);
      continue;
    }
    const uid = pod.metadata!.uid!;
    seen.add(uid);
    const evictions = attempts.filter((a) => a.evictedAt !== undefined).length;
    const attempt: Attempt = { pod: pod.metadata!.name! };
    attempts.push(attempt);
    /** undefined: not known yet (the trainer has not said where it starts); null: this attempt is not evicted. */
    let target: number | null | undefined;
    while (!ended()) {
      const read = await readTrainer(pod, kind);
      if (read?.step !== undefined) attempt.lastStep = read.step;
      if (read?.step !== undefined && read.atMs !== undefined) {
        attempt.firstSeen ??= { step: read.step, atMs: read.atMs };
        attempt.lastSeen = { step: read.step, atMs: read.atMs };
      }
      if (attempt.from === undefined && read?.from !== undefined) attempt.from = read.from;
      if (target === undefined && attempt.from !== undefined) {
        const after = plan[evictions];
        target = after !== undefined && attempt.from + after < totalSteps ? attempt.from + after : null;
        if (target !== null) attempt.plannedAt = target;
      }
      if (!sampler.running().some((p) => p.metadata?.uid === uid)) break;
      if (typeof target === 'number' && read?.step !== undefined && read.step >= target) {
        const pool = pod.spec?.nodeSelector?.[agentPoolLabel];
        try {
          if (!pool) throw new Error(`trainer pod ${attempt.pod} names no pool`);
          const { evicted } = await emulator.evictSpotNodes(pool, 1);
          if (evicted.length === 0) throw new Error(`pool ${pool} had no node to evict`);
          attempt.evictedAt = read.step;
        } catch (err) {
          problems.push(`eviction at step ${read.step} of ${attempt.pod} failed: ${String((err as Error).message ?? err)}`);
        }
        break;
      }
      // Read often only near the eviction: a read's trip and the trainer's pace decide how close.
      await sleep(target === null ? 2000 : typeof target === 'number' && read?.step !== undefined ? Math.min(1000, Math.max(40, (target - read.step) * stepMs * 0.5)) : 150);
    }
  }
  return { attempts, problems };
}

async function runEvictions(): Promise<void> {
  const sph = numberArg('eviction-seconds-per-hour', 0.1);
  const rate = numberArg('eviction-rate', 0);
  const seed = numberArg('seed', 0);
  const jobCount = Math.round(numberArg('eviction-jobs', 1));
  const totalSteps = Math.round(numberArg('steps', 2));
  const checkpointMinutes = numberArg('checkpoint-minutes', 0);
  const nodeReadyMinutes = numberArg('node-ready-minutes', 0);
  const realMsE = (minutes: number) => (minutes / 60) * sph * 1000;
  const simMinutesE = (ms: number) => (ms / 1000 / sph) * 60;
  const minutesPerStep = trainingMinutes / totalSteps;
  const checkpointSteps = checkpointEverySteps(checkpointMinutes, minutesPerStep);
  const plans = planEvictions({ jobs: jobCount, ratePerGpuHour: rate, seed, minutesPerStep, maxPerJob: maxCapacityRecoveries });
  const jobs = plans.map((plan, index) => ({ index, schedule: schedules[index % schedules.length]!, plan }));
  const trackNames = Object.keys(evictionTracks) as EvictionTrack[];

  // The day's GPU nodes go first: the tracks use its VM sizes.
  const sizes = new Set<string>(trackNames.map((t) => evictionTracks[t].vmSize));
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(250)) {
    const { items } = await core.listNode({ labelSelector: 'kubernetes.azure.com/accelerator=nvidia' });
    if (!items.some((n) => sizes.has(n.metadata?.labels?.['node.kubernetes.io/instance-type'] ?? ''))) break;
  }
  await emulator.settings({ provisioningDelayMs: realMsE(nodeReadyMinutes), deletionDelayMs: realMsE(3) });
  await simulator.settings({ trainingMs: realMsE(trainingMinutes), minutesPerStep, failTraining: undefined });

  console.log(
    `\nSpot evictions: ${jobCount} jobs a track (${jobs.map((j) => j.schedule.name).join(', ')}), each ${totalSteps} steps in ${trainingMinutes} min of training; ` +
      `Spot pools, a node offers GPUs ${nodeReadyMinutes} min after it is asked for`,
  );
  console.log(
    `Evictions: ${rate} expected per GPU-hour of training, seed ${seed}; at most ${maxCapacityRecoveries} a job (the workflow's capacity recoveries). ` +
      `Drawn, the same in both tracks: the steps an attempt trains before its node is evicted (1st/2nd eviction; an attempt that ends first keeps its node): ` +
      jobs.map((j) => `${j.schedule.name}#${j.index} ${j.plan.map((s) => (Number.isFinite(s) ? s : '-')).join('/')}`).join(', '),
  );
  console.log(`Time compressed: 1 simulated hour = ${sph} s (a step = ${round(realMsE(minutesPerStep))} ms, ${round(minutesPerStep, 2)} min); resume checkpoints every ${checkpointMinutes} min (${checkpointSteps} steps)`);

  const began = Date.now();
  const sampler = startSampler(Object.fromEntries(trackNames.map((t) => [t, evictionTracks[t].vmSize])));
  const stepMs = realMsE(trainingMinutes) / totalSteps;
  const runs: { track: EvictionTrack; job: (typeof jobs)[number]; workflowId: string; outcome: Promise<PromiseSettledResult<FineTuneStatus>>; driven: ReturnType<typeof driveEvictions> }[] = [];
  for (const job of jobs) {
    if (job.index > 0) await sleep(realMsE(5)); // starts 5 simulated minutes apart: no thundering herd on 2 cores
    for (const track of trackNames) {
      const { trainer, vmSize } = evictionTracks[track];
      const workflowId = fineTuneWorkflowId(`cost-${stamp}-spot-${track}-${job.schedule.name}-${job.index}`);
      const request: FineTuneRequest = {
        model: 'phi-3-mini-4k-instruct',
        method: 'qlora',
        dataset: { urls: [`https://datasets.example.com/${job.schedule.name}/train.jsonl`] },
        output: { image: `${registryHost}/adapters/${job.schedule.name}:${stamp}-spot-${track}-${job.index}` },
        gpu: { vmSize, spot: true, reuseWarmPool: false },
        tuning: { maxSteps: totalSteps, ...(trainer === 'kaito' ? { trainer } : { checkpointEveryMinutes: checkpointMinutes }) },
        release: { policy: 'delete', idleGraceMinutes: 0 },
        pollIntervalSeconds: 1,
      };
      let ended = false;
      const outcome = client.workflow
        .execute(fineTune, { taskQueue, workflowId, args: [request] })
        .then(
          (value): PromiseSettledResult<FineTuneStatus> => ({ status: 'fulfilled', value }),
          (reason: unknown): PromiseSettledResult<FineTuneStatus> => ({ status: 'rejected', reason }),
        )
        .finally(() => (ended = true));
      runs.push({ track, job, workflowId, outcome, driven: driveEvictions(workflowId, trainer, job.plan, totalSteps, stepMs, sampler, () => ended) });
    }
  }
  const outcomes = await Promise.all(runs.map((r) => r.outcome));
  const driven = await Promise.all(runs.map((r) => r.driven));
  await sampler.stop();
  const realSeconds = (Date.now() - began) / 1000;

  const problems: string[] = [];
  const rows: Record<string, Record<string, unknown>> = {};
  const billed: Record<string, number> = {};
  for (const track of trackNames) {
    const { vmSize, trainer } = evictionTracks[track];
    let stepsTrained = 0;
    let evictions = 0;
    let recoveries = 0;
    let gpuMinutesSaved = 0;
    let startsMissedByStatus = 0;
    let predictedSteps = 0;
    let predictedEvictions = 0;
    const resumedFrom: number[] = [];
    const evictedAt: number[] = [];
    const failures: string[] = [];
    const pace = { steps: 0, ms: 0 };
    runs.forEach((r, i) => {
      if (r.track !== track) return;
      const outcome = outcomes[i]!;
      const { attempts, problems: runProblems } = driven[i]!;
      problems.push(...runProblems.map((p) => `${track} ${r.job.schedule.name}#${r.job.index}: ${p}`));
      const predicted = predictJob(r.job.plan, totalSteps, trainer === 'kaito' ? undefined : checkpointSteps);
      predictedSteps += predicted.stepsTrained;
      predictedEvictions += predicted.evictedAt.length;
      evictions += attempts.filter((a) => a.evictedAt !== undefined).length;
      attempts.forEach((a, k) => {
        if (a.firstSeen && a.lastSeen) {
          pace.steps += a.lastSeen.step - a.firstSeen.step;
          pace.ms += a.lastSeen.atMs - a.firstSeen.atMs;
        }
        const next = attempts[k + 1];
        const end = a.evictedAt ?? (next === undefined && outcome.status === 'fulfilled' ? totalSteps : (a.lastStep ?? a.from ?? 0));
        stepsTrained += attemptSteps(a.from ?? 0, end, a.evictedAt !== undefined ? next?.from : undefined);
        if (k > 0) resumedFrom.push(a.from ?? 0);
        if (a.evictedAt !== undefined) evictedAt.push(a.evictedAt);
        // An eviction after a checkpoint must resume from one.
        const before = attempts[k - 1];
        if (trainer === 'aks-finetune' && before?.evictedAt !== undefined && before.evictedAt - (before.from ?? 0) >= checkpointSteps && !((a.from ?? 0) > 0)) {
          problems.push(`${track} ${r.job.schedule.name}#${r.job.index}: attempt ${k + 1} started from step ${a.from} although a checkpoint was due before the eviction at step ${before.evictedAt}`);
        }
        if (trainer === 'kaito' && (a.from ?? 0) !== 0) problems.push(`${track} ${r.job.schedule.name}#${r.job.index}: KAITO's trainer started from step ${a.from}`);
      });
      if (outcome.status === 'rejected') {
        const err = outcome.reason as Error & { cause?: Error };
        failures.push(`${r.job.schedule.name}#${r.job.index}: ${String(err?.cause?.message ?? err?.message ?? err)}`);
        return;
      }
      const status = outcome.value;
      recoveries += status.capacityRecoveries.length;
      gpuMinutesSaved += status.training?.gpuMinutesSaved ?? 0;
      if (status.capacityRecoveries.length !== attempts.filter((a) => a.evictedAt !== undefined).length) {
        problems.push(`${track} ${r.job.schedule.name}#${r.job.index}: ${attempts.filter((a) => a.evictedAt !== undefined).length} eviction(s) but ${status.capacityRecoveries.length} capacity recover(ies)`);
      }
      if (trainer === 'aks-finetune') {
        const reported = (status.training?.starts ?? []).map((s) => s.resumedFromStep);
        const seen = attempts.map((a) => a.from ?? 0);
        // An attempt evicted before the workflow's next check (a second or so) is never read: its
        // node, and with it its log, is gone. The status may miss those, never show others.
        if (!isSubsequence(reported, seen) || reported.at(-1) !== seen.at(-1)) problems.push(`${track} ${r.job.schedule.name}#${r.job.index}: status.training.starts resumed from [${reported}], the trainer's log from [${seen}]`);
        startsMissedByStatus += seen.length - reported.length;
      }
      if (status.training?.step !== totalSteps) problems.push(`${track} ${r.job.schedule.name}#${r.job.index}: status.training.step is ${status.training?.step}, not ${totalSteps}`);
    });
    const totals = sampler.totals[track]!;
    billed[track] = simMinutesE(totals.billedMs);
    rows[track] = {
      trainer,
      vmSize,
      spot: true,
      runs: runs.filter((r) => r.track === track).length,
      failed: failures.length,
      failures,
      evictions,
      plannedEvictions: predictedEvictions,
      capacityRecoveries: recoveries,
      evictedAtSteps: evictedAt,
      resumedFromSteps: resumedFrom,
      stepsTrained,
      stepsPlanned: jobCount * totalSteps,
      stepsTrainedByThePlan: predictedSteps,
      billedGpuMinutes: round(billed[track]!),
      usedGpuMinutes: round(simMinutesE(totals.usedMs)),
      billedGpuSecondsReal: round(totals.billedMs / 1000, 1),
      usedGpuSecondsReal: round(totals.usedMs / 1000, 1),
      gpuMinutesSavedByResume: round(simMinutesE(gpuMinutesSaved * 60_000)),
      msPerStepReal: pace.steps > 0 ? round(pace.ms / pace.steps) : undefined,
      ...(trainer === 'aks-finetune' ? { startsMissedByStatus } : {}),
    };
  }
  // KAITO's lifecycle: the restart track's GPU time, and the node kept after each job until the
  // schedule's next run replaces the Workspace, as the day's baseline keeps it (idleGraceMinutes).
  const gpusPerNode = findVmSize(evictionTracks.restart.vmSize)?.gpus ?? 1;
  const keptMinutes = jobs.reduce((n, j) => n + j.schedule.everyHours * 60 * gpusPerNode, 0);
  billed.kaito = billed.restart! + keptMinutes;
  const restartRow = rows.restart!;
  rows.kaito = {
    derived: `restart's billed GPU-minutes + ${keptMinutes} GPU-minutes of nodes kept after the jobs (each job's schedule interval: ${jobs.map((j) => `${j.schedule.everyHours} h`).join(' + ')})`,
    trainer: 'kaito',
    evictions: restartRow.evictions,
    stepsTrained: restartRow.stepsTrained,
    stepsPlanned: restartRow.stepsPlanned,
    idleGpuMinutesAfterJobs: keptMinutes,
    billedGpuMinutes: round(billed.kaito),
    billedGpuSecondsReal: round(realMsE(billed.kaito) / 1000, 1),
  };
  const ratios = {
    restartOverResume: round(billed.restart! / billed.resume!, 3),
    kaitoOverResume: round(billed.kaito / billed.resume!, 3),
    usedRestartOverResume: round((rows.restart!.usedGpuMinutes as number) / (rows.resume!.usedGpuMinutes as number), 3),
    stepsRestartOverResume: round((rows.restart!.stepsTrained as number) / (rows.resume!.stepsTrained as number), 3),
  };
  const dayBaseline = report.baseline as { idleMinutesAfterJobP50?: number } | undefined;

  for (const track of [...trackNames, 'kaito'] as const) {
    const row = rows[track]!;
    const head =
      track === 'kaito'
        ? `KAITO    derived, not run: restart + the node kept ${keptMinutes} GPU-min after the jobs (the day's baseline assumption: until the schedule's next run` +
          `${dayBaseline?.idleMinutesAfterJobP50 !== undefined ? `; the day measured a p50 of ${dayBaseline.idleMinutesAfterJobP50} min idle a job` : ''})`
        : `${track.padEnd(8)} ${row.trainer} trainer on ${row.vmSize} (Spot): ${row.runs} runs (${row.failed} failed), ${row.evictions} evictions (the plan: ${row.plannedEvictions}), ` +
          `${row.capacityRecoveries} capacity recoveries; evicted at steps [${(row.evictedAtSteps as number[]).join(', ')}], ` +
          `${track === 'resume' ? 'resumed' : 'started again'} from steps [${(row.resumedFromSteps as number[]).join(', ')}]`;
    console.log(`\n${head}`);
    console.log(
      `         steps trained ${row.stepsTrained} of ${row.stepsPlanned} planned${row.stepsTrainedByThePlan !== undefined ? ` (the plan predicts ${row.stepsTrainedByThePlan})` : ''}; ` +
        `billed ${row.billedGpuMinutes} GPU-min (${row.billedGpuSecondsReal} GPU-s real)${row.usedGpuMinutes !== undefined ? `, used ${row.usedGpuMinutes} GPU-min (${row.usedGpuSecondsReal} GPU-s real)` : ''}` +
        (track === 'resume' ? `; the runs' status says resuming saved ${row.gpuMinutesSavedByResume} GPU-min` : ''),
    );
    for (const f of (row.failures as string[] | undefined) ?? []) console.log(`         failed: ${f}`);
    if (row.startsMissedByStatus) {
      console.log(`         note: status.training.starts misses ${row.startsMissedByStatus} attempt(s) evicted before the workflow's next check read their log`);
    }
  }
  console.log(`\nbilled GPU-minutes, restart / resume: ${ratios.restartOverResume}; KAITO / resume: ${ratios.kaitoOverResume}`);
  console.log(`used GPU-minutes (trainer pods Running), restart / resume: ${ratios.usedRestartOverResume}; steps trained, restart / resume: ${ratios.stepsRestartOverResume}`);
  const paces = trackNames.map((t) => rows[t]!.msPerStepReal as number | undefined);
  if (paces.every((p) => p !== undefined)) {
    console.log(
      `Trainer pace: a step took ${trackNames.map((t, i) => `${paces[i]} ms (${t})`).join(', ')} of real time, ${round(stepMs)} ms planned: ` +
        `the simulated trainer looks at its pod and node between steps and shares the machine, so ${trainingMinutes} min of training took about ` +
        `${trackNames.map((t, i) => `${round(simMinutesE(paces[i]! * totalSteps))} (${t})`).join(', ')} simulated min`,
    );
  }
  console.log(`The ratios are measured in real time: ${round(realSeconds)} s of real time stand for ${round(realSeconds / sph, 2)} simulated hours (1 simulated hour = ${sph} s).`);
  for (const p of problems) console.log(`problem: ${p}`);

  report.evictions = {
    secondsPerHour: sph,
    realSeconds: round(realSeconds),
    simulatedHours: round(realSeconds / sph, 2),
    ratePerGpuHourOfTraining: rate,
    seed,
    jobs: jobs.map((j) => ({ schedule: j.schedule.name, everyHours: j.schedule.everyHours, evictAfterSteps: j.plan.filter(Number.isFinite) })),
    trainingMinutes,
    totalSteps,
    minutesPerStep,
    checkpointEveryMinutes: checkpointMinutes,
    checkpointEverySteps: checkpointSteps,
    nodeReadyMinutes,
    maxEvictionsPerJob: maxCapacityRecoveries,
    ...rows,
    billedRatios: ratios,
    problems,
  };
}

try {
  if (evictionsMode !== 'only') await runDay();
  if (evictionsMode !== 'off') await runEvictions();
} finally {
  watcher.stop();
  worker.shutdown();
  await workerRun;
  await client.connection.close();
  await workerConnection.close();
  await emulator.settings({ provisioningDelayMs: emulatorBefore.provisioningDelayMs, deletionDelayMs: emulatorBefore.deletionDelayMs }).catch(() => undefined);
  await simulator.settings({ trainingMs: simulatorBefore.trainingMs, minutesPerStep: simulatorBefore.minutesPerStep }).catch(() => undefined);
}
mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
const file = join(stack.stateDir, 'bench', `cost-${stamp}.json`);
writeFileSync(file, JSON.stringify(report, null, 2));
console.log(`Results: ${file}`);
