// `npm run bench:capacity`: runs that need GPUs while Azure is short of them, on the local stack,
// in two tracks side by side, started interleaved against the same seeded scarcity:
//   fallback  gpu.vmSize A100 in zones 1, 2, 3, then an H100 size (gpu.candidates)
//   one size  gpu.vmSize A100 alone (the product before capacity fallback)
// The emulator fails a create of the A100 size with probability --a100-rate (every zone) and of
// the H100 size with --h100-rate (PUT /_emulator/capacity, seeded by --seed). Both tracks look for
// capacity for --wait-minutes. Reported: success rate, time to GPUs (start to a Ready GPU node)
// p50 and p99, GPU cost per completed run (status.gpu.estimatedCost), and the ratios.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { loadWorkerConfig } from '../workers/config.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { startBenchWorker } from './bench-worker.js';
import { percentile } from './percentile.js';
import { EmulatorControl } from './stack/aks-emulator/control-client.js';
import { loadStackConfig } from './stack/config.js';
import { SimulatorControl } from './stack/gpu-simulator/control-client.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '8' },
    'a100-rate': { type: 'string', default: '0.7' },
    'h100-rate': { type: 'string', default: '0.3' },
    seed: { type: 'string', default: '1' },
    'wait-minutes': { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('npm run bench:capacity -- [--runs N per track, default 8] [--a100-rate 0.7] [--h100-rate 0.3] [--seed 1] [--wait-minutes 1]');
  process.exit(0);
}
const runs = Number(args.runs);
const rates = { a100: Number(args['a100-rate']), h100: Number(args['h100-rate']) };
const seed = Number(args.seed);
const waitMinutes = Number(args['wait-minutes']);
for (const [name, v] of Object.entries({ runs, 'a100-rate': rates.a100, 'h100-rate': rates.h100, seed, 'wait-minutes': waitMinutes })) {
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number of 0 or more`);
}

const a100 = 'Standard_NC24ads_A100_v4';
const h100 = 'Standard_NC40ads_H100_v5';
const tracks = {
  fallback: { vmSize: a100, zones: ['1', '2', '3'], candidates: [{ vmSize: h100 }] },
  'one size': { vmSize: a100 },
} satisfies Record<string, FineTuneRequest['gpu']>;
type Track = keyof typeof tracks;

const config = loadWorkerConfig(process.env);
const stack = loadStackConfig();
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(process.env.GPU_SIMULATOR_URL ?? 'http://127.0.0.1:18080');
const registryHost = new URL(config.registry.endpoint).host;
const stamp = Date.now().toString(36);

const request = (track: Track): FineTuneRequest => ({
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { urls: ['https://datasets.example.com/capacity/train.jsonl'] },
  output: { image: `${registryHost}/adapters/capacity:${stamp}` },
  gpu: { ...tracks[track], reuseWarmPool: false, capacityWaitMinutes: waitMinutes },
  pollIntervalSeconds: 1,
});

const emulatorBefore = await emulator.settings();
const simulatorBefore = await simulator.settings();
const bench = await startBenchWorker(config, `bench-capacity-${stamp}`, ['no GPUs from this candidate, trying the next']);
interface Outcome {
  track: Track;
  succeeded: boolean;
  secondsToGpus?: number;
  cost?: number;
  attempts: number;
  vmSize?: string;
}
const outcomes: Outcome[] = [];
try {
  await emulator.settings({ provisioningDelayMs: 500, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 500 });
  await emulator.capacity({ unavailable: [{ vmSize: a100, rate: rates.a100 }, { vmSize: h100, rate: rates.h100 }], seed });
  console.log(
    `Capacity bench: ${runs} runs a track, started interleaved; A100 creates fail ${rates.a100 * 100} %, H100 ${rates.h100 * 100} % (seed ${seed}); ` +
      `each run looks for up to ${waitMinutes} min`,
  );
  const began = Date.now();
  const started = [];
  for (let i = 0; i < runs; i++) {
    for (const track of Object.keys(tracks) as Track[]) {
      const workflowId = fineTuneWorkflowId(`capacity-${stamp}-${track.replace(' ', '-')}-${i}`);
      const handle = await bench.client.workflow.start(fineTune, { taskQueue: `bench-capacity-${stamp}`, workflowId, args: [request(track)] });
      started.push({ track, handle, at: Date.now() });
    }
  }
  for (const { track, handle, at } of started) {
    const status: FineTuneStatus = await handle.result().catch(() => handle.query(fineTuneStatusQuery));
    const gpu = status.gpu;
    outcomes.push({
      track,
      succeeded: status.phase === 'succeeded',
      secondsToGpus: gpu?.readyAt ? (Date.parse(gpu.readyAt) - at) / 1000 : undefined,
      cost: gpu?.estimatedCost,
      attempts: gpu?.attempts?.length ?? 0,
      vmSize: status.phase === 'succeeded' ? gpu?.vmSize : undefined,
    });
  }
  console.log(`All ${started.length} runs ended after ${Math.round((Date.now() - began) / 1000)} s`);
} finally {
  await emulator.capacity({}).catch(() => undefined);
  await emulator.settings({ provisioningDelayMs: emulatorBefore.provisioningDelayMs, deletionDelayMs: emulatorBefore.deletionDelayMs }).catch(() => undefined);
  await simulator.settings({ trainingMs: simulatorBefore.trainingMs }).catch(() => undefined);
  await bench.stop();
}

const round1 = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 10) / 10);
function trackRow(track: Track) {
  const mine = outcomes.filter((o) => o.track === track);
  const done = mine.filter((o) => o.succeeded);
  const times = done.map((o) => o.secondsToGpus).filter((t): t is number => t !== undefined);
  const cost = done.reduce((sum, o) => sum + (o.cost ?? 0), 0);
  return {
    runs: mine.length,
    succeeded: done.length,
    successRate: round1((done.length / Math.max(1, mine.length)) * 100),
    secondsToGpusP50: round1(percentile(times, 0.5)),
    secondsToGpusP99: round1(percentile(times, 0.99)),
    costPerCompletedRun: done.length ? Math.round((cost / done.length) * 10_000) / 10_000 : undefined,
    attemptsPerRun: round1(mine.reduce((s, o) => s + o.attempts, 0) / Math.max(1, mine.length)),
    sizes: Object.fromEntries([...new Set(done.map((o) => o.vmSize!))].map((s) => [s, done.filter((o) => o.vmSize === s).length])),
  };
}
const rows = { fallback: trackRow('fallback'), 'one size': trackRow('one size') };
for (const [track, row] of Object.entries(rows)) console.log(`  ${track.padEnd(9)} ${JSON.stringify(row)}`);
const ratio = (a?: number, b?: number) => (a !== undefined && b ? Math.round((a / b) * 100) / 100 : undefined);
const ratios = {
  successRate: ratio(rows.fallback.successRate, rows['one size'].successRate),
  secondsToGpusP50: ratio(rows.fallback.secondsToGpusP50, rows['one size'].secondsToGpusP50),
  costPerCompletedRun: ratio(rows.fallback.costPerCompletedRun, rows['one size'].costPerCompletedRun),
};
console.log(`  fallback / one size: ${JSON.stringify(ratios)}`);
mkdirSync(join(stack.stateDir, 'bench'), { recursive: true });
const file = join(stack.stateDir, 'bench', `capacity-${stamp}.json`);
writeFileSync(file, JSON.stringify({ runs, rates, seed, waitMinutes, tracks: rows, ratios, outcomes }, null, 2));
console.log(`Results: ${file}`);
