// `npm run chaos`: N concurrent runs (fineTune with and without deploy, and retrain runs with
// their fineTune child) on the chaos run's own local stack, with the idle-GPU reaper's Schedule
// firing every 3 s, two real worker processes, and the seeded fault injector (faults.ts); then
// the audit (audit.ts), printed and written to .stack/chaos/. Exits 1 when the audit fails.
// Started by scripts/chaos/run.sh, which starts and stops that stack; docs/chaos.md, "Chaos run".
// Every chaos run also serves (--endpoints 1, the default): one endpoint workflow, created at the
// start, and one promoteAdapter run that promotes an adapter image into it while the faults come;
// after the runs, its alias must answer through the Service, and it is retired.
// Loopback only; bounded in count (--runs) and in time (--minutes, plus bounded waits after).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { createNodePoolActivities } from '../../activities/azure/node-pools.js';
import { createEndpoint, endpointHandle } from '../../client/endpoints.js';
import { startPromotion } from '../../client/promotion-client.js';
import { runFailure } from '../../client/run-failure.js';
import { connectClient } from '../../client/temporal-connection.js';
import { ensureNamespaceExists, hasStatus } from '../../activities/kubernetes/api-errors.js';
import { createRunObjectActivities } from '../../activities/kubernetes/run-objects.js';
import type { FineTuneRequest } from '../../domain/fine-tune-request.js';
import { ownerIsOpen, type RecordedOwner, type RunRecord } from '../../domain/run-identity.js';
import { poolOwner } from '../../domain/pool-tags.js';
import { createContainerServiceClient, createKubeConfig } from '../../workers/clients.js';
import { loadWorkerConfig, targetConfig } from '../../workers/config.js';
import { writeWorkflowBundle } from '../../workers/worker.js';
import type { FineTuneStatus } from '../../workflows/fine-tune.js';
import { retireUpdate } from '../../workflows/endpoint-api.js';
import { promotionStatusQuery } from '../../workflows/promotion-api.js';
import { pushSimulatedAdapter } from '../../test/support.js';
import { fineTuneWorkflowId, promotionWorkflowId, reaperScheduleId, retrainChildWorkflowId, retrainWorkflowId } from '../../workflows/ids.js';
import { ensureReaperSchedule } from '../setup-temporal.js';
import { EmulatorControl } from '../stack/aks-emulator/control-client.js';
import { loadStackConfig, projectRoot } from '../stack/config.js';
import { SimulatorControl } from '../stack/gpu-simulator/control-client.js';
import { audit, type AuditInput, type ChaosRun, type Execution, renderAudit, type RunKind, type ServingRecord } from './audit.js';
import { FaultInjector, type FaultKind, faultKinds, type OpenFineTune, planFaults } from './faults.js';
import { GpuAfterEndSampler, JobWatch, RecoveryTracker } from './observe.js';
import { WorkerProcesses } from './processes.js';
import { chaosUsage } from './usage.js';
import { SeededRandom } from './random.js';

const env = process.env;
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: env.CHAOS_RUNS ?? '30' },
    seed: { type: 'string', default: env.CHAOS_SEED },
    faults: { type: 'string', default: env.CHAOS_FAULTS },
    kinds: { type: 'string', default: env.CHAOS_FAULT_KINDS ?? faultKinds.join(',') },
    minutes: { type: 'string', default: env.CHAOS_MINUTES ?? '20' },
    'training-seconds': { type: 'string', default: env.CHAOS_TRAINING_SECONDS ?? '15' },
    'start-seconds': { type: 'string', default: env.CHAOS_START_SECONDS },
    endpoints: { type: 'string', default: env.CHAOS_ENDPOINTS ?? '1' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(chaosUsage);
  process.exit(0);
}
const wholeNumber = (name: string, raw: string | undefined, min: number, max: number): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max} (got ${raw})`);
  return n;
};
const runCount = wholeNumber('runs', args.runs, 1, 100);
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : wholeNumber('seed', args.seed, 0, 2 ** 32 - 1);
const faultCount = wholeNumber('faults', args.faults ?? String(Math.max(6, runCount)), 0, 200);
const kinds = args.kinds.split(',').map((k) => k.trim()) as FaultKind[];
const unknownKinds = kinds.filter((k) => !faultKinds.includes(k));
if (unknownKinds.length > 0) throw new Error(`unknown fault kind(s) ${unknownKinds.join(', ')}: use ${faultKinds.join(', ')}`);
const timeLimitMinutes = wholeNumber('minutes', args.minutes, 1, 120);
const trainingMs = wholeNumber('training-seconds', args['training-seconds'], 1, 600) * 1000;
const startSpreadMs = wholeNumber('start-seconds', args['start-seconds'] ?? String(runCount * 3), 0, 3600) * 1000;
const endpointCount = wholeNumber('endpoints', args.endpoints, 0, 1);
/** How long the retired endpoint's workflow gets to complete, and its alias to answer. */
const retireBoundMs = 180_000;
const aliasBoundMs = 60_000;
/** How long after the runs the reaper gets to sweep what ended runs left. */
const sweepBoundMs = 180_000;
const namespace = 'aks-finetune';

const stack = loadStackConfig();
const config = loadWorkerConfig();
// Loopback only: every endpoint the run talks to must be on this machine.
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(stack.kubeconfig);
for (const endpoint of [`tcp://${config.temporal.connection.address}`, config.azure.armEndpoint, config.registry.endpoint, kubeConfig.getCurrentCluster()!.server]) {
  if (new URL(endpoint).hostname !== '127.0.0.1') throw new Error(`chaos runs on loopback only; ${endpoint} is not 127.0.0.1`);
}
const outDir = join(projectRoot, '.stack', 'chaos');
mkdirSync(outDir, { recursive: true });
const log = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

const random = new SeededRandom(seed);
const stamp = `c${seed.toString(36)}${Date.now().toString(36).slice(-4)}`;
const registryHost = new URL(config.registry.endpoint).host;
const emulator = new EmulatorControl(config.azure.armEndpoint);
const simulator = new SimulatorControl(env.GPU_SIMULATOR_URL!);
const pools = createNodePoolActivities({ containerService: createContainerServiceClient(config), resourceGroup: config.azure.resourceGroup, clusterName: config.azure.clusterName, pollIntervalMs: 1000 });
const runObjects = createRunObjectActivities({ kubeConfig });

// The runs: in every five, two fineTune, one fineTune with deploy, two retrain, in a seeded
// order (so even a small N has each kind); about half of them on Spot.
const kindsOfFive: RunKind[] = ['fine-tune', 'fine-tune', 'fine-tune-deploy', 'retrain', 'retrain'];
const runKinds = Array.from({ length: Math.ceil(runCount / 5) }, () => random.shuffle(kindsOfFive)).flat();
const planned = Array.from({ length: runCount }, (_, index) => ({
  index,
  kind: runKinds[index]!,
  spot: random.next() < 0.5,
  startAtMs: Math.round((index * startSpreadMs) / runCount),
}));
// Faults come while runs are open: from the first start until about when the last one trains.
const faultPlan = planFaults(random, faultCount, kinds, startSpreadMs + 30_000 + trainingMs);

function request(index: number, kind: RunKind, spot: boolean): FineTuneRequest {
  return {
    model: 'phi-3-mini-4k-instruct',
    method: 'qlora',
    // Nothing downloads it (kwok runs the pods); a retrain's fingerprint needs a dataset on loopback: a volume has none.
    dataset: kind === 'retrain' ? { volume: 'chaos-dataset' } : { urls: ['https://datasets.example.com/chaos/train.jsonl'] },
    output: { image: `${registryHost}/adapters/chaos-${stamp}-${index}:v1` },
    gpu: { vmSize: 'Standard_NC24ads_A100_v4', spot },
    release: { policy: 'delete', idleGraceMinutes: 0 },
    pollIntervalSeconds: 2,
    ...(kind === 'fine-tune-deploy' ? { deploy: { name: `chaos-${stamp}-${index}` } } : {}),
  };
}

/** Retries a Temporal call while the server is down (a fault), for up to 2 minutes. */
async function patiently<T>(what: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await what();
    } catch (err) {
      if (i >= 60 || err instanceof WorkflowExecutionAlreadyStartedError) throw err;
      await sleep(2000);
    }
  }
}

const client = await connectClient(config.temporal);
const taskQueue = config.temporal.taskQueue;

log(`chaos run: seed ${seed} (replay with --seed ${seed}), ${runCount} runs over ${startSpreadMs / 1000} s, ${faultPlan.length} faults (${[...new Set(faultPlan.map((f) => f.kind))].join(', ')}), time limit ${timeLimitMinutes} min`);
// Pools take seconds to make, so a worker kill finds ARM operations in flight, as it would on AKS (minutes).
await emulator.settings({ provisioningDelayMs: 8000, deletionDelayMs: 3000 });
await emulator.clearFaults();
await simulator.settings({ trainingMs, failTraining: undefined });
const core = kubeConfig.makeApiClient(CoreV1Api);
await ensureNamespaceExists(core, namespace);
await core
  .createNamespacedPersistentVolumeClaim({
    namespace,
    body: { metadata: { name: 'chaos-dataset' }, spec: { accessModes: ['ReadOnlyMany'], resources: { requests: { storage: '1Gi' } } } },
  })
  .catch((err: unknown) => {
    if (!hasStatus(err, 409)) throw err;
  });

// Workers: real processes with the stack's environment and a bundle built once, so a restart takes seconds.
const workflowBundle = join(stack.stateDir, 'workflow-bundle.js');
await writeWorkflowBundle(workflowBundle);
const workers = new WorkerProcesses(2, stack.logsDir, { ...env, WORKFLOW_BUNDLE: workflowBundle, ARM_POLL_INTERVAL_MS: '500', KUBE_POLL_INTERVAL_MS: '1000', LOG_FORMAT: 'json' });
await Promise.all(workers.slots.map((s) => workers.start(s.slot)));
await ensureReaperSchedule(client, { taskQueue, intervalSeconds: 3, graceMinutes: 0 });
log(`2 workers polling ${taskQueue}; reaper Schedule every 3 s; logs in ${stack.logsDir}`);

const runs: ChaosRun[] = [];
const teardownAt = new Map<string, number>();
const ownerClosedAt = new Map<string, number | undefined>();
const executions = (): Execution[] => runs.flatMap((r) => [r, ...(r.child ? [r.child] : [])]);
/** The endpoint and its promotion, when this run serves. */
let serving: { endpointName: string; alias: string; endpoint: ServingRecord['endpoint']; promotion: ServingRecord['promotion'] } | undefined;
const servingExecutions = (): Execution[] => (serving ? [serving.endpoint, serving.promotion] : []);
/** Open executions: the runs, their children, and the endpoint and promotion (worker kills hit them too). */
const openExecutions = () => [...executions(), ...servingExecutions()].filter((e) => e.state === 'RUNNING' && e.runId);

/**
 * When an owner's GPUs stop being the run's business: its end, or for deployed inference, its
 * teardown. A pool that records a workflow id alone (an endpoint's) is the business of every run
 * of that id: billed once none is open, as the reaper reads ownership (ownerIsOpen).
 */
async function billableSince(owner: RecordedOwner & { workflowId: string }): Promise<number | undefined> {
  if (owner.runId === undefined) {
    const d = await client.workflow.getHandle(owner.workflowId).describe();
    return ownerIsOpen(owner, [{ workflowId: owner.workflowId, runId: d.runId, status: d.status.name }]) ? undefined : (d.closeTime?.getTime() ?? Date.now());
  }
  const run = runs.find((r) => r.runId === owner.runId);
  if (run?.kind === 'fine-tune-deploy' && run.state === 'COMPLETED') return teardownAt.get(run.runId);
  const known = executions().find((e) => e.runId === owner.runId);
  if (known) return known.closedAt ? Date.parse(known.closedAt) : undefined;
  if (!ownerClosedAt.has(owner.runId) || ownerClosedAt.get(owner.runId) === undefined) {
    const d = await client.workflow.getHandle(owner.workflowId, owner.runId).describe();
    ownerClosedAt.set(owner.runId, d.closeTime?.getTime());
  }
  return ownerClosedAt.get(owner.runId);
}

const jobWatch = new JobWatch(kubeConfig);
const sampler = new GpuAfterEndSampler(() => pools.listManagedPools(), billableSince);
const recovery = new RecoveryTracker(client, openExecutions);
jobWatch.start();
sampler.start();

async function openFineTunes(): Promise<OpenFineTune[]> {
  const fineTunes = runs.flatMap((r) => (r.kind === 'retrain' ? (r.child ? [r.child] : []) : [r])).filter((e) => e.state === 'RUNNING');
  const found = await Promise.all(
    fineTunes.map((e) =>
      client.workflow
        .getHandle(e.workflowId, e.runId)
        .query<FineTuneStatus>('status')
        .then((status) => ({ workflowId: e.workflowId, runId: e.runId, status }), () => undefined),
    ),
  );
  return found.filter((f): f is OpenFineTune => f !== undefined);
}

/** Records how an execution ended, its root cause and its last status. */
async function settle(execution: Execution, description: { status: { name: string }; closeTime?: Date }, isFineTune: boolean): Promise<void> {
  const handle = client.workflow.getHandle(execution.workflowId, execution.runId);
  if (description.status.name === 'FAILED') execution.cause = await handle.result().then(() => undefined, runFailure);
  if (isFineTune) execution.status = await handle.query<FineTuneStatus>('status').catch(() => undefined);
  execution.closedAt = (description.closeTime ?? new Date()).toISOString();
  execution.state = description.status.name;
}

/** The promotion's end and phase; the endpoint's current run (continue-as-new changes it) and, once it ended, how. */
async function followServing(): Promise<void> {
  const { endpoint, promotion } = serving!;
  if (promotion.state === 'RUNNING' && promotion.runId) {
    const handle = client.workflow.getHandle(promotion.workflowId, promotion.runId);
    const d = await handle.describe();
    promotion.phase = (await handle.query(promotionStatusQuery).catch(() => undefined))?.phase ?? promotion.phase;
    if (d.status.name !== 'RUNNING') {
      await settle(promotion, d, false);
      log(`promotion ${promotion.workflowId} ended ${promotion.state}, phase ${promotion.phase ?? 'unknown'}`);
    }
  }
  if (endpoint.state === 'RUNNING') {
    const d = await client.workflow.getHandle(endpoint.workflowId).describe();
    endpoint.runId = d.runId;
    if (d.status.name !== 'RUNNING') await settle(endpoint, d, false);
  }
}

/** Follows every run (and retrain child) to its end, looking every 3 s. */
async function followRuns(until: () => boolean): Promise<void> {
  while (!until()) {
    for (const run of runs) {
      try {
        if (run.state === 'RUNNING') {
          const d = await client.workflow.getHandle(run.workflowId, run.runId).describe();
          if (d.status.name !== 'RUNNING') await settle(run, d, run.kind !== 'retrain');
        }
        if (run.kind === 'retrain' && (!run.child || run.child.state === 'RUNNING')) {
          const childId = retrainChildWorkflowId(run.workflowId);
          const d = await client.workflow.getHandle(childId).describe().catch(() => undefined);
          if (d) {
            run.child ??= { workflowId: childId, runId: d.runId, state: 'RUNNING' };
            if (d.status.name !== 'RUNNING') await settle(run.child, d, true);
          }
        }
      } catch {
        // Temporal is restarting (a fault): look again next round.
      }
    }
    if (serving) await followServing().catch(() => undefined); // Temporal restarting: next round
    await sleep(3000);
  }
}

// The endpoint, created at the start, and the promotion of one adapter image into it (a small
// suite, no approval, no watch), started with the middle run, so that it goes on while the faults
// come. Neither is a target of the faults that pick a run (cancel, terminate, trainer-oom,
// spot-eviction); the others hit them. The image is pushed at the start, before any fault.
let startServingPromotion = async (): Promise<void> => undefined;
if (endpointCount > 0) {
  const endpointName = `chaos-${stamp}-ep`;
  const alias = 'chaos';
  const spec = { name: endpointName, baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4' };
  const { handle } = await createEndpoint(client, { spec, namespace }, { taskQueue });
  const { image } = await pushSimulatedAdapter({ r: 8, loraAlpha: 16 }, { repository: `adapters/chaos-${stamp}-serving`, annotations: { 'sh.kaito.model.name': spec.baseModel } });
  const suite = { jsonl: ['one', 'two', 'three'].map((p) => JSON.stringify({ prompt: `chaos question ${p}`, expect: { contains: `chaos question ${p}` } })).join('\n') };
  const name = `chaos-${stamp}`;
  // The run id is filled in once it has started: until then it is neither followed nor counted open.
  const promotion: ServingRecord['promotion'] = { workflowId: promotionWorkflowId(name), runId: '', state: 'RUNNING' };
  serving = { endpointName, alias, endpoint: { workflowId: handle.workflowId, runId: (await handle.describe()).runId, state: 'RUNNING', retireSent: false }, promotion };
  log(`started endpoint ${handle.workflowId}; pushed ${image} for its promotion`);
  startServingPromotion = async () => {
    await patiently(() => startPromotion(client, { endpoint: spec, namespace, alias, image, suite, approval: 'none', watch: { minutes: 0 } }, { name, taskQueue })).catch((err: unknown) => {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err; // the start went through before Temporal went down
    });
    promotion.runId = (await patiently(() => client.workflow.getHandle(promotion.workflowId).describe())).runId;
    log(`started promotion ${promotion.workflowId} of ${image} into ${handle.workflowId} as alias ${alias}`);
  };
}

const startedAt = Date.now();
const deadline = startedAt + timeLimitMinutes * 60_000;
const allEnded = () =>
  runs.length === runCount &&
  executions().every((e) => e.state !== 'RUNNING') &&
  runs.every((r) => r.kind !== 'retrain' || r.child !== undefined || r.state !== 'COMPLETED') &&
  (!serving || serving.promotion.state !== 'RUNNING');
const over = () => allEnded() || Date.now() > deadline;

const injector = new FaultInjector({
  stack,
  client,
  emulator,
  simulator,
  workers,
  openRuns: () => runs.filter((r) => r.state === 'RUNNING'),
  openFineTunes,
  workersKilled: (identities, at) => recovery.workersKilled(identities, at),
  log,
});
const injecting = injector.run(faultPlan, startedAt, over);
const following = followRuns(over);

for (const run of planned) {
  const wait = startedAt + run.startAtMs - Date.now();
  if (wait > 0) await sleep(wait);
  if (run.index === Math.floor(runCount / 2)) await startServingPromotion();
  // A retrain as its Schedule would start it (one schedule id per run: each trains), or a fineTune.
  const name = `chaos-${stamp}-${run.index}`;
  const workflowId = run.kind === 'retrain' ? retrainWorkflowId(name) : fineTuneWorkflowId(name);
  const input = request(run.index, run.kind, run.spot);
  const handle = await patiently(() =>
    run.kind === 'retrain'
      ? client.workflow.start('retrain', { taskQueue, workflowId, args: [{ schedule: name, request: input }] })
      : client.workflow.start('fineTune', { taskQueue, workflowId, args: [input] }),
  ).catch(async (err: unknown) => {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return client.workflow.getHandle(workflowId); // the start went through before Temporal went down
  });
  const runId = 'firstExecutionRunId' in handle ? handle.firstExecutionRunId : (await patiently(() => handle.describe())).runId;
  runs.push({ index: run.index, kind: run.kind, workflowId, runId, state: 'RUNNING', output: { repository: `adapters/chaos-${stamp}-${run.index}`, tag: 'v1' } });
  log(`started ${run.kind}${run.spot ? ' (spot)' : ''} ${workflowId}`);
}

await following;
await injecting;
const wallSeconds = Math.round((Date.now() - startedAt) / 1000);
const notReached = faultPlan.length - injector.injected.length;
if (notReached > 0) log(`${notReached} planned fault(s) not reached: the runs had ended`);
log(allEnded() ? `every run ended after ${wallSeconds} s` : `time limit reached: ${openExecutions().length} execution(s) still open`);

// After the runs: no more faults; take deployed inference down (what a user does when done with
// it), then give the reaper its bounded time to sweep whatever ended runs left.
await emulator.clearFaults();
await simulator.settings({ failTraining: undefined });
for (const run of runs.filter((r) => r.kind === 'fine-tune-deploy' && r.state === 'COMPLETED')) {
  await runObjects.deleteRunObjects(namespace, { workflowId: run.workflowId, runId: run.runId }, { includeInference: true });
  teardownAt.set(run.runId, Date.now());
}
// The endpoint: its alias must answer through the Service (a bounded wait: the faults have just
// stopped), then it is retired and its workflow must complete; what it owned must be gone then.
let servingRecord: ServingRecord | undefined;
if (serving) {
  await followServing().catch(() => undefined);
  const serviceUrl = config.inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', serving.endpointName);
  const alias: ServingRecord['alias'] = { answered: false, detail: '' };
  const aliasDeadline = Date.now() + aliasBoundMs;
  for (let attempt = 1; ; attempt++) {
    const answer = await fetch(`${serviceUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: serving.alias, prompt: 'chaos question one', max_tokens: 16 }),
      signal: AbortSignal.timeout(10_000),
    }).then(
      async (res) => ({ status: res.status, body: (await res.text()).slice(0, 200) }),
      (err: unknown) => ({ status: 0, body: err instanceof Error ? err.message : String(err) }),
    );
    if (answer.status === 200) {
      Object.assign(alias, { answered: true, detail: `200 from ${serviceUrl} (attempt ${attempt})` });
      break;
    }
    alias.detail = `alias ${serving.alias} through ${serviceUrl}: ${answer.status || 'no answer'} ${answer.body} (${attempt} attempt(s) in ${aliasBoundMs / 1000} s)`;
    if (Date.now() > aliasDeadline) break;
    await sleep(2000);
  }
  log(alias.answered ? `alias ${serving.alias} answered: ${alias.detail}` : `alias did not answer: ${alias.detail}`);

  const { endpoint } = serving;
  const handle = endpointHandle(client, serving.endpointName);
  if (endpoint.state === 'RUNNING') {
    try {
      // One Update id: a retry after a lost answer gets the first outcome.
      await patiently(() => handle.executeUpdate(retireUpdate, { args: [], updateId: `chaos-retire-${stamp}` }));
      endpoint.retireSent = true;
    } catch (err) {
      endpoint.retireError = err instanceof Error ? err.message : String(err);
    }
    const ended = await Promise.race([handle.result().then(() => true, () => true), sleep(retireBoundMs).then(() => false)]);
    if (!ended) log(`endpoint ${endpoint.workflowId} did not end within ${retireBoundMs / 1000} s of its retire`);
  }
  await followServing().catch(() => undefined);
  const ownedByEndpoint = (owner: RecordedOwner) => owner.workflowId === endpoint.workflowId;
  const leftAfterRetire = {
    pools: (await pools.listManagedPools()).filter((p) => ownedByEndpoint(poolOwner(p.tags))).map((p) => `${p.name} (${p.count} node(s), ${p.provisioningState})`),
    objects: (await runObjects.listRunObjects()).filter((o) => ownedByEndpoint(o.owner)).map((o) => `${o.kind} ${o.namespace}/${o.name}`),
  };
  log(`endpoint ${endpoint.workflowId} ${endpoint.state}${endpoint.retireSent ? ' after retire' : ''}; promotion ${serving.promotion.workflowId} ${serving.promotion.state} ${serving.promotion.phase ?? ''}; left after retire: ${leftAfterRetire.pools.length} pool(s), ${leftAfterRetire.objects.length} object(s)`);
  servingRecord = { endpoint, promotion: serving.promotion, alias, leftAfterRetire };
}

// Ownership as the reaper reads it: the recorded run, or any open run of a workflow id recorded
// alone (an endpoint's, which continue-as-new keeps).
const openRuns: RunRecord[] = openExecutions().map((e) => ({ workflowId: e.workflowId, runId: e.runId!, status: 'RUNNING' }));
// In every cluster the worker serves: the home cluster, and each target of AKS_CLUSTERS_FILE.
const clusters: { cluster?: string; pools: typeof pools; runObjects: typeof runObjects }[] = [
  { pools, runObjects },
  ...config.clusters.map((target) => {
    const c = targetConfig(config, target);
    const { resourceGroup, clusterName } = c.azure;
    return {
      cluster: target.name,
      pools: createNodePoolActivities({ containerService: createContainerServiceClient(c), resourceGroup, clusterName, pollIntervalMs: 1000 }),
      runObjects: createRunObjectActivities({ kubeConfig: createKubeConfig(c) }),
    };
  }),
];
const leftovers = async () => {
  const left: AuditInput['leftovers'] = { pools: [], objects: [] };
  for (const { cluster, pools: clusterPools, runObjects: clusterObjects } of clusters) {
    left.pools.push(...(await clusterPools.listManagedPools()).filter((p) => !ownerIsOpen(poolOwner(p.tags), openRuns)).map((p) => ({ ...p, cluster })));
    left.objects.push(...(await clusterObjects.listRunObjects()).filter((o) => !ownerIsOpen(o.owner, openRuns)).map((o) => ({ ...o, cluster })));
  }
  return left;
};
const sweepDeadline = Date.now() + sweepBoundMs;
let left = await leftovers();
while ((left.pools.length > 0 || left.objects.length > 0) && Date.now() < sweepDeadline) {
  await sleep(3000);
  left = await leftovers();
}
log(`after the reaper's sweep: ${left.pools.length} pool(s), ${left.objects.length} object(s) without an open owner`);
sampler.stop();
jobWatch.stop();
await recovery.settled();

const result = audit({
  seed,
  runs,
  faults: injector.injected,
  timeLimitMinutes,
  wallSeconds,
  jobs: [...jobWatch.jobs.values()],
  leftovers: left,
  registryRoot: join(stack.stateDir, 'data', 'registry', 'storage'),
  gpuMinutesAfterEnd: sampler.minutesByRun,
  recoveries: recovery.recoveries,
  serving: servingRecord,
});
const text = renderAudit(result);
console.log(`\n${text}`);
writeFileSync(join(outDir, 'audit.json'), JSON.stringify({ ...result, runs: runs.map(({ status, child, ...r }) => ({ ...r, phase: status?.phase, child: child && { ...child, status: undefined, phase: child.status?.phase } })) }, null, 2));
writeFileSync(join(outDir, 'audit.txt'), text + '\n');
log(`audit written to ${join(outDir, 'audit.json')} and audit.txt`);

await client.schedule.getHandle(reaperScheduleId).pause('chaos run over').catch(() => undefined);
await workers.stopAll();
await client.connection.close();
process.exit(result.passed ? 0 : 1);
