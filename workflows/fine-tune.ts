// fineTune: GPU capacity → tuning inputs → tuning Job → adapter image (or files on the user's
// volume) → (inference) → GPUs released. A thin entry, the run's setup, then one small function
// per step. Every side effect is an idempotent activity; waiting is done on durable timers
// between short checks; whatever the run created is removed or released after a failure or a
// cancellation, each cleanup step on its own, in a scope that cannot be cancelled.
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  executeChild,
  ParentClosePolicy,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  TemporalFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { trainingFailureMessage } from '../domain/advice.js';
import { clustersOf, resolveClusters } from '../domain/cluster-targets.js';
import { failureTypes } from '../domain/failure-types.js';
import { datasetForRecords } from '../domain/dataset-url.js';
import { adapterDestination, adapterImageOf, type AdapterOutput, type FineTuneInput, type FineTunePlan, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { budgetExceededMessage, budgetMinutesLeft } from '../domain/gpu-usage.js';
import { adapterAnnotations } from '../domain/lineage.js';
import { fingerprint, type TrainingConfig, trainingConfig } from '../domain/training-config.js';
import { apiCalls, smokeChecks } from './activity-options.js';
import { perCluster } from './cluster-activities.js';
import { accountGpu, gpuHold, gpuTaint, provision, recoverCapacity, releasePools, waitForGpus } from './fine-tune-gpus.js';
import {
  type FineTuneRun,
  type FineTuneStatus,
  fineTuneStatusQuery,
  jobFinishedSignal,
  type PlannedRun,
} from './fine-tune-run.js';
import { checkedInActivity, invalidInput, withParsedWorkspace } from './input-checks.js';
import { watchJob, type WatchOptions } from './job-watch.js';
import { newTrainingStatus, trainingWatch, type TrainingWatchState } from './training-watch.js';
import { fineTunePromotionWorkflowId } from './ids.js';
import { fineTuneObjectNames, nodePoolName, runTag } from './naming.js';
import { promoteAdapter } from './promote-adapter.js';
import { AdapterRepository, BaseModel, GpuVmSize, TuningMethod } from './search-attributes.js';
import { rootMessage, rootType } from './root-cause.js';
import { StepRecorder } from './step-recorder.js';
import { undoSteps } from './undo-steps.js';

export { type FineTunePhase, type FineTuneStatus, type FineTuneStep, fineTuneStatusQuery, jobFinishedSignal } from './fine-tune-run.js';

/** In the cluster the run's pool is in. */
const kube = perCluster<
  Pick<
    Activities,
    | 'ensureNamespace'
    | 'ensureTuningInputs'
    | 'startTuningJob'
    | 'startPushJob'
    | 'deleteJob'
    | 'deployInference'
    | 'checkInference'
    | 'deleteRunObjects'
    | 'checkPushSecret'
    | 'readAdapterImageWithSecret'
    | 'readTuningConfigMap'
    | 'checkOutputVolume'
    | 'startCopyJob'
    | 'readCopiedAdapter'
  >
>(apiCalls);
const smoke = perCluster<Pick<Activities, 'smokeCheckInference'>>(smokeChecks);
/** The registry, and the worker's own clusters: the same from every cluster. */
const lookups = proxyActivities<Pick<Activities, 'checkOutputRegistry' | 'readAdapterImage' | 'listClusterTargets'>>(apiCalls);

const maxPushAttempts = 5;
const trainerBackoffLimit = 1;
/** The pusher only packs two files and uploads them: an hour means it is stuck. */
const pushDeadlineSeconds = 60 * 60;
const rolloutTimeoutMs = 20 * 60_000;

export async function fineTune(input: FineTuneInput): Promise<FineTuneStatus> {
  const run = startRun();
  try {
    const planned = await plan(run, await withParsedWorkspace(input, 'fineTune request'));
    await acquireGpus(planned);
    await prepareTuningInputs(planned);
    await train(planned);
    const { output } = planned.plan;
    await (output.kind === 'image' ? pushAdapterImage(planned, output) : copyAdapterToVolume(planned, output));
    await (planned.plan.deploy ? deployInference(planned) : releaseGpus(planned));
    if (planned.plan.promote) await promote(planned);
    await removeRunObjects(planned);
    run.recorder.enter('succeeded');
    return run.status;
  } catch (err) {
    throw await compensate(run, err);
  }
}

/** The run's status, its query and signal handlers; nothing outside the workflow yet. */
function startRun(): FineTuneRun {
  const { workflowId, runId } = workflowInfo();
  const status: FineTuneStatus = { phase: 'validating', steps: [], created: [], released: [], pushAttempts: 0, capacityRecoveries: [] };
  const run: FineTuneRun = { owner: { workflowId, runId }, status, recorder: new StepRecorder(status), finishedJobs: new Set() };
  setHandler(fineTuneStatusQuery, () => status);
  setHandler(jobFinishedSignal, ({ name }) => void run.finishedJobs.add(name));
  return run;
}

/**
 * Where the adapter goes, checked before any GPU is asked for: the registry; the push Secret and
 * the output volume in every cluster the run may land in. A wrong one fails now, not after training.
 */
async function checkAdapterOutput(plan: FineTunePlan): Promise<void> {
  const { output, namespace, pushSecret } = plan;
  // Runs that name no push Secret or output volume (all runs before either existed) schedule nothing new here.
  if (output.kind === 'volume') {
    for (const cluster of clustersOf(plan.gpuAttempts)) await checkedInActivity('fineTune request', kube(cluster).checkOutputVolume(namespace, output.claimName));
    return;
  }
  if (!pushSecret) return;
  for (const cluster of clustersOf(plan.gpuAttempts)) {
    await checkedInActivity('fineTune request', kube(cluster).checkPushSecret({ namespace, name: pushSecret }, output.registry, output.repository));
  }
}

/**
 * The training parameters from the run's ConfigMap, read in every cluster the run may land in (as
 * KAITO reads a Workspace's from its own cluster), with the request's inline parameters on top.
 */
async function readTuningConfigMap(plan: FineTunePlan, name: string): Promise<TrainingConfig> {
  const clusters = clustersOf(plan.gpuAttempts);
  const read: TrainingConfig['training_config'][] = [];
  for (const cluster of clusters) read.push(await checkedInActivity('fineTune request', kube(cluster).readTuningConfigMap(plan.namespace, name, plan.method)));
  if (read.some((sections) => fingerprint(sections) !== fingerprint(read[0]))) {
    throw invalidInput('fineTune request', [`tuning.configMap ${name} differs between the clusters the run may train in (${clusters.map((c) => c ?? 'home').join(', ')}): make them the same`]);
  }
  return trainingConfig(plan.method, plan.tuningOverrides, plan.evaluation, read[0]);
}

/** Validates the request (every problem at once) and records what the run will do. */
async function plan(run: FineTuneRun, request: FineTuneInput): Promise<PlannedRun> {
  const validation = validateFineTuneRequest(request, run.owner.workflowId);
  if (!validation.ok) {
    run.status.problems = validation.problems;
    throw invalidInput('fineTune request', validation.problems);
  }
  const plan = validation.plan;
  if (plan.output.kind === 'image') await checkedInActivity('fineTune request', lookups.checkOutputRegistry(plan.output.registry));
  if (plan.gpuAttempts.some((a) => a.cluster !== undefined)) {
    const resolved = resolveClusters(plan.gpuAttempts, await lookups.listClusterTargets());
    if (resolved.problems.length > 0) {
      run.status.problems = resolved.problems;
      throw invalidInput('fineTune request', resolved.problems);
    }
    plan.gpuAttempts = resolved.attempts;
  }
  await checkAdapterOutput(plan);
  // Runs that name no ConfigMap (all runs before it existed) schedule nothing new here.
  if (plan.configMap) plan.config = await readTuningConfigMap(plan, plan.configMap);
  const pool = { name: plan.existingPool ?? nodePoolName('ft', run.owner), owned: false, released: false };
  const planned: PlannedRun = Object.assign(run, { plan, pool, names: fineTuneObjectNames(plan.runName, runTag(run.owner)) });
  Object.assign(run.status, {
    model: plan.model.name,
    method: plan.method,
    adapter: plan.output.kind === 'image' ? { image: adapterImageOf(plan.output) } : { volume: plan.output.claimName },
    gpu: { pool: pool.name, vmSize: plan.vmSize.name, spot: plan.spot, reusedPool: plan.existingPool !== undefined, gpuMinutes: 0, currency: plan.prices.currency, pricesAsOf: plan.prices.asOf },
  });
  upsertSearchAttributes([
    { key: BaseModel, value: plan.model.name },
    { key: TuningMethod, value: plan.method },
    { key: GpuVmSize, value: plan.vmSize.name },
    ...(plan.output.kind === 'image' ? [{ key: AdapterRepository, value: `${plan.output.registry}/${plan.output.repository}` }] : []),
  ]);
  upsertMemo({
    request: {
      model: plan.model.name,
      method: plan.method,
      dataset: datasetForRecords(plan.dataset),
      output: adapterDestination(plan.output, plan.namespace),
      vmSize: plan.vmSize.name,
      spot: plan.spot,
      deploy: plan.deploy ?? false,
      ...(plan.promote ? { promote: { endpoint: plan.promote.endpoint.name, alias: plan.promote.alias } } : {}),
      release: plan.release,
    },
  });
  return planned;
}

async function acquireGpus(run: PlannedRun): Promise<void> {
  run.recorder.enter('provisioning');
  await run.recorder.step('GPU capacity', () => provision(run), (detail) => detail);
  await run.recorder.step('wait for GPU nodes', () => waitForGpus(run), (nodes) => `${nodes.join(', ')}: ${run.status.gpu!.gpusPerNode} GPU(s)`);
}

async function prepareTuningInputs(run: PlannedRun): Promise<void> {
  const { plan, names, status } = run;
  run.recorder.enter('preparing');
  await run.recorder.step('tuning inputs', async () => {
    await kube(run.pool.cluster).ensureNamespace(plan.namespace);
    status.created.push(`ConfigMap/${names.configMap}`, `PersistentVolumeClaim/${names.results}`);
    await kube(run.pool.cluster).ensureTuningInputs({ namespace: plan.namespace, owner: run.owner, configMap: names.configMap, resultsClaim: names.results, config: plan.config, trainer: plan.trainer.kind });
  });
}

/**
 * The tuning Job, watched until it ends, its progress in the status; started again on fresh
 * capacity when its node goes away, where the product's trainer resumes from its newest complete
 * checkpoint on the results volume (which outlives the node: see ensureTuningInputs).
 */
async function train(run: PlannedRun): Promise<void> {
  const { plan, names, status } = run;
  run.recorder.enter('training');
  // Runs started before progress was read check their Job with checkJob, at doubling intervals.
  const readsProgress = patched('training-progress');
  const watchState: TrainingWatchState = {};
  status.training = newTrainingStatus(readsProgress ? plan.trainer.kind : 'kaito', names.trainJob(0));
  await run.recorder.step('train', async () => {
    for (let restart = 0; ; restart++) {
      const job = names.trainJob(restart);
      status.created.push(`Job/${job}`);
      await kube(run.pool.cluster).startTuningJob(plan.namespace, {
        name: job,
        owner: run.owner,
        model: plan.model,
        gpus: status.gpu!.gpusPerNode!,
        pool: run.pool.name,
        taints: [gpuTaint],
        dataset: plan.dataset,
        configMap: names.configMap,
        resultsClaim: names.results,
        backoffLimit: trainerBackoffLimit,
        activeDeadlineSeconds: Math.round(plan.maxHours * 3600),
        ...(readsProgress ? { trainer: plan.trainer } : {}),
      });
      const watch: Pick<WatchOptions, 'onProgress' | 'checkWithinMs'> = {
        onProgress: (progress) => {
          if (!readsProgress) Object.assign(status.training!, progress, { job });
          accountGpu(run);
          if (progress.state !== 'succeeded') enforceBudget(run);
        },
        checkWithinMs: () => {
          const left = budgetLeft(run);
          return left === undefined ? undefined : left * 60_000;
        },
      };
      const outcome = await watchJob(run, job, readsProgress ? trainingWatch(run, job, watchState, watch) : { what: 'trainer', ...watch });
      if (outcome.state === 'succeeded') return outcome.progress;
      if (outcome.state !== 'node-lost') {
        throw ApplicationFailure.nonRetryable(
          trainingFailureMessage(job, outcome.progress.reason, { name: plan.vmSize.name, gpuMemoryGiB: plan.vmSize.gpu?.memoryGiB }),
          failureTypes.trainingFailed,
          outcome.progress,
        );
      }
      await kube(run.pool.cluster).deleteJob(plan.namespace, job);
      await recoverCapacity(run, 'train', outcome.reason);
    }
  }, (done) => `${done.attempts} attempt(s) on ${done.node}${status.evalLoss === undefined ? '' : `, eval loss ${status.evalLoss}`}`);
}

const budgetLeft = (run: PlannedRun): number | undefined => {
  const hold = gpuHold(run.status.gpu!);
  return hold && budgetMinutesLeft(run.plan.budget, hold, run.plan.prices, run.status.gpu!);
};

function enforceBudget(run: PlannedRun): void {
  const left = budgetLeft(run);
  if (left !== undefined && left <= 0) {
    throw ApplicationFailure.nonRetryable(budgetExceededMessage(run.plan.budget!, run.status.gpu!, run.status.gpu!.currency), failureTypes.budgetExceeded);
  }
}

/**
 * Pushes the adapter with a pusher Job; a failed push starts a new pusher (never a new
 * training), on fresh capacity when its node went away. Then reads the image back from the
 * registry for the digest it really holds.
 */
async function pushAdapterImage(run: PlannedRun, output: AdapterOutput & { kind: 'image' }): Promise<void> {
  const { plan, status } = run;
  const image = adapterImageOf(output);
  run.recorder.enter('pushing');
  const annotations = lineageOf(run);
  const { digest } = await run.recorder.step('push adapter image', async () => {
    await deliverWithJobs(run, { what: 'pusher', step: 'push adapter image', destination: image }, async (job) => {
      await kube(run.pool.cluster).startPushJob(plan.namespace, { ...jobBase(run, job), image, annotations, pushSecret: plan.pushSecret });
    });
    return plan.pushSecret ? kube(run.pool.cluster).readAdapterImageWithSecret({ namespace: plan.namespace, name: plan.pushSecret }, image) : lookups.readAdapterImage(image);
  }, (pushed) => `${image}@${pushed.digest}`);
  status.adapter = { image, digest, reference: `${output.registry}/${output.repository}@${digest}` };
}

/**
 * Copies the adapter files to the user's volume with a copier Job (retried as the pusher is), then
 * reads what it copied from the Job: the files and their content digest.
 */
async function copyAdapterToVolume(run: PlannedRun, { claimName }: AdapterOutput & { kind: 'volume' }): Promise<void> {
  const { plan, status } = run;
  run.recorder.enter('pushing');
  const annotations = lineageOf(run);
  const copied = await run.recorder.step('copy adapter to volume', async () => {
    const job = await deliverWithJobs(run, { what: 'copier', step: 'copy adapter to volume', destination: adapterDestination(plan.output, plan.namespace) }, async (name) => {
      await kube(run.pool.cluster).startCopyJob(plan.namespace, { ...jobBase(run, name), outputClaim: claimName, annotations });
    });
    return kube(run.pool.cluster).readCopiedAdapter(plan.namespace, job);
  }, (c) => `${c.files.map((f) => f.name).join(', ')} on ${claimName} (${c.contentDigest})`);
  status.adapter = { volume: claimName, contentDigest: copied.contentDigest, files: copied.files.map((f) => f.name) };
}

/** The lineage an adapter carries: its image's annotations, or the lineage file beside its files. */
const lineageOf = ({ plan, owner }: PlannedRun) =>
  adapterAnnotations({ model: plan.model, method: plan.method, dataset: plan.dataset, configHash: fingerprint(plan.config), workflowId: owner.workflowId, created: new Date().toISOString() });

/** What the pusher's and the copier's Jobs share: the run, its pool, its results volume and the deadline. */
const jobBase = (run: PlannedRun, name: string) => ({
  name,
  owner: run.owner,
  pool: run.pool.name,
  taints: [gpuTaint],
  resultsClaim: run.names.results,
  activeDeadlineSeconds: pushDeadlineSeconds,
});

/**
 * Runs a delivery Job (`start` creates attempt N's) until one succeeds: a failed attempt starts a
 * new Job (never a new training), on fresh capacity when its node went away. Returns the Job that succeeded.
 */
async function deliverWithJobs(run: PlannedRun, d: { what: 'pusher' | 'copier'; step: string; destination: string }, start: (job: string) => Promise<void>): Promise<string> {
  const { names, status } = run;
  for (let attempt = 1; ; attempt++) {
    status.pushAttempts = attempt;
    const job = d.what === 'pusher' ? names.pushJob(attempt) : names.copyJob(attempt);
    status.created.push(`Job/${job}`);
    await start(job);
    const outcome = await watchJob(run, job, { what: d.what, onProgress: (progress) => (status.push = { ...progress, job }) });
    if (outcome.state === 'succeeded') return job;
    if (attempt >= maxPushAttempts) {
      const verb = d.what === 'pusher' ? 'Pushing' : 'Copying the adapter to';
      throw ApplicationFailure.nonRetryable(`${verb} ${d.destination} failed ${attempt} times; last: ${outcome.progress.reason ?? outcome.state}`, failureTypes.pushFailed, outcome.progress);
    }
    if (outcome.state === 'node-lost') await recoverCapacity(run, d.step, outcome.reason);
    else await sleep(Math.min(2 ** attempt, 60) * 1000);
  }
}

/** Without deploy: the pool is released after the request's idle grace (a next run may claim it meanwhile). */
async function releaseGpus(run: PlannedRun): Promise<void> {
  run.recorder.enter('releasing-gpus');
  if (run.plan.release.idleGraceMinutes > 0) await sleep(run.plan.release.idleGraceMinutes * 60_000);
  await run.recorder.step(
    'release GPUs',
    () => releasePools(run, { includeUnconfirmed: false }),
    () => run.status.released.filter((r) => r.startsWith('AgentPool/')).join(', ') || 'pool kept (not created by this run)',
  );
}

/** With deploy: vLLM serving the base model with the adapter by digest; the pool stays for it. */
async function deployInference(run: PlannedRun): Promise<void> {
  const { plan, status } = run;
  const deploy = plan.deploy!;
  run.recorder.enter('deploying');
  status.created.push(`Deployment/${deploy.name}`, `Service/${deploy.name}`);
  const models = await run.recorder.step('deploy inference', async () => {
    await kube(run.pool.cluster).deployInference(plan.namespace, {
      name: deploy.name,
      owner: run.owner,
      model: plan.model,
      adapter: { name: plan.runName, image: status.adapter!.reference! },
      pool: run.pool.name,
      taints: [gpuTaint],
      gpus: status.gpu!.gpusPerNode!,
      replicas: deploy.replicas,
    });
    const deadline = Date.now() + rolloutTimeoutMs;
    for (;;) {
      const rollout = await kube(run.pool.cluster).checkInference(plan.namespace, deploy.name);
      if (rollout.available >= rollout.wanted) break;
      if (Date.now() > deadline) {
        throw ApplicationFailure.nonRetryable(`Inference ${deploy.name} has ${rollout.available}/${rollout.wanted} replicas after ${rolloutTimeoutMs / 60_000} minutes`, failureTypes.inferenceUnhealthy);
      }
      await sleep(plan.pollIntervalSeconds * 1000);
    }
    return smoke(run.pool.cluster).smokeCheckInference(plan.namespace, deploy.name, plan.runName);
  }, (m) => `serving ${m.join(', ')}`);
  status.inference = { service: deploy.name, models };
}

/**
 * With promote: the adapter, by digest, goes through promoteAdapter on the endpoint, as a child
 * run with a deterministic id (a replayed or retried parent adopts it; `approve` and `reject`
 * reach it through this run's id). A cancelled run cancels it, and it unloads its candidate.
 * Rejected or rolled back is an outcome the status reports, not a failure.
 */
async function promote(run: PlannedRun): Promise<void> {
  const { plan, status } = run;
  const request = plan.promote!;
  const workflowId = fineTunePromotionWorkflowId(run.owner.workflowId);
  run.recorder.enter('promoting');
  status.promotion = { workflowId, endpoint: request.endpoint.name, alias: request.alias };
  const result = await run.recorder.step(
    'promote',
    () =>
      executeChild(promoteAdapter, {
        workflowId,
        args: [{ ...request, image: status.adapter!.reference!, evalLoss: status.evalLoss }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      }).catch((err: unknown) => {
        status.promotion!.state = 'failed';
        throw err;
      }),
    (r) => `${r.phase}${r.versionName ? `: ${r.versionName}` : ''}`,
  );
  Object.assign(status.promotion, { state: result.phase, versionName: result.versionName, passRate: result.scores?.candidate.passRate, gate: result.gate?.reasons });
}

/** After success: the Jobs, ConfigMap and PVC go; deployed inference stays. */
async function removeRunObjects(run: PlannedRun): Promise<void> {
  run.recorder.enter('cleaning-up');
  await CancellationScope.nonCancellable(async () => {
    run.status.released.push(...(await kube(run.pool.cluster).deleteRunObjects(run.plan.namespace, run.owner, { includeInference: false })));
  });
}

/**
 * After a failure or a cancellation: removes everything the run created and releases its pools,
 * each step on its own (a failed step is logged and reported, and never skips the GPU pool).
 * Returns what the run fails with: the original error, with any cleanup failure added.
 */
async function compensate(run: FineTuneRun, err: unknown): Promise<unknown> {
  // A cancel request may reach the run as another error: an activity that a cancel asked to
  // stop but whose worker had died ends in a heartbeat timeout, not a cancellation. The run
  // was still cancelled, and ends so.
  const cancelled = isCancellation(err) || CancellationScope.current().consideredCancelled;
  const failure = isCancellation(err) ? err : cancelled ? new CancelledFailure(`fineTune cancelled (${rootMessage(err)})`) : asWorkflowFailure(err);
  run.status.error = rootMessage(failure);
  const { attempt, failed: cleanupErrors } = undoSteps('cleanup');
  const planned = run.plan ? (run as PlannedRun) : undefined; // before a plan, nothing was created
  if (planned) {
    await CancellationScope.nonCancellable(async () => {
      run.recorder.enter('cleaning-up');
      await attempt('remove run objects', async () => {
        run.status.released.push(...(await kube(planned.pool.cluster).deleteRunObjects(planned.plan.namespace, run.owner, { includeInference: true })));
      });
      await attempt('release GPU pool', () => releasePools(planned, { includeUnconfirmed: true }));
    });
  }
  if (cleanupErrors.length > 0) run.status.cleanupErrors = cleanupErrors;
  run.recorder.enter(cancelled ? 'cancelled' : 'failed');
  if (cancelled || cleanupErrors.length === 0) return failure;
  return ApplicationFailure.create({
    message: `${rootMessage(failure)} (cleanup also failed: ${cleanupErrors.join('; ')})`,
    type: rootType(failure),
    nonRetryable: true,
    cause: failure as Error,
  });
}

/**
 * An error that is not a Temporal failure is a bug in workflow code (or a value validation let
 * through). Thrown as it is, it would fail the workflow task and retry it forever while the GPUs
 * stay up; as an ApplicationFailure it fails the run, after its cleanup.
 */
function asWorkflowFailure(err: unknown): TemporalFailure {
  if (err instanceof TemporalFailure) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.nonRetryable(`fineTune workflow code failed: ${e.name}: ${e.message}`, failureTypes.workflowCodeError, e.stack);
}
