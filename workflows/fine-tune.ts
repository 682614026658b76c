// fineTune: GPU capacity → tuning inputs → tuning Job → adapter image → (inference) → GPUs
// released. Every side effect is an idempotent activity; waiting is done on durable timers
// between short checks; whatever the run created is removed or released after a failure or a
// cancellation, in a scope that cannot be cancelled.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import { datasetForRecords, datasetLineage } from '../domain/dataset-url.js';
import { failureTypes } from '../domain/failure-types.js';
import { runLabelValue } from '../domain/hash.js';
import { type FineTuneInput, type FineTunePlan, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { managedPoolTags, poolTags } from '../domain/pool-tags.js';
import { estimateCost } from '../domain/prices.js';
import { fingerprint } from '../domain/training-config.js';
import { apiCalls, armOperations, clusterWaits, smokeChecks } from './activity-options.js';
import { invalidInput, withParsedWorkspace } from './input-checks.js';
import { nodePoolName } from './naming.js';
import { AdapterRepository, BaseModel, GpuVmSize, PipelinePhase, TuningMethod } from './search-attributes.js';

export type FineTunePhase =
  | 'validating'
  | 'provisioning'
  | 'preparing'
  | 'training'
  | 'pushing'
  | 'releasing-gpus'
  | 'deploying'
  | 'cleaning-up'
  | 'succeeded'
  | 'failed'
  | 'cancelled';

export interface FineTuneStep {
  name: string;
  startedAt: string;
  endedAt?: string;
  detail?: string;
}

export interface FineTuneStatus {
  phase: FineTunePhase;
  currentStep?: string;
  model?: string;
  method?: string;
  steps: FineTuneStep[];
  /** What this run created, as "Kind/name". */
  created: string[];
  /** What was removed or released, as "Kind/name" (pools: "AgentPool/name (deleted|scaled to 0)"). */
  released: string[];
  gpu?: {
    pool: string;
    vmSize: string;
    spot: boolean;
    /** True when the run uses a pool it did not create (named in the request, or a claimed warm pool). */
    reusedPool: boolean;
    /** The warm pool's previous owner, and how long that run took to get its GPUs: what this run saved. */
    reusedFrom?: string;
    provisioningSecondsSaved?: number;
    gpusPerNode?: number;
    readyAt?: string;
    releasedAt?: string;
    /** GPU-minutes the run has held so far (pool nodes Ready until released). */
    gpuMinutes: number;
    estimatedCost?: number;
    currency: string;
    pricesAsOf: string;
  };
  training?: JobProgress & { job: string };
  pushAttempts: number;
  /** The last pusher Job. */
  push?: JobProgress & { job: string };
  adapter?: { image: string; digest?: string; reference?: string };
  inference?: { service: string; models: string[] };
  error?: string;
  problems?: string[];
}

export const fineTuneStatusQuery = defineQuery<FineTuneStatus>('status');
/** Sent by the worker's shared Job watcher when a Job of this run completes or fails. */
export const jobFinishedSignal = defineSignal<[{ namespace: string; name: string }]>('jobFinished');

const arm = proxyActivities<
  Pick<Activities, 'ensureNodePool' | 'deleteNodePool' | 'scaleNodePoolToZero' | 'describeNodePool' | 'listManagedPools' | 'claimNodePool'>
>(armOperations);
const lookups = proxyActivities<Pick<Activities, 'openRunsAmong' | 'provisioningSecondsOf' | 'gpuPodsOnPool'>>(apiCalls);
const kube = proxyActivities<
  Pick<
    Activities,
    'ensureNamespace' | 'ensureTuningInputs' | 'startTuningJob' | 'startPushJob' | 'checkJob' | 'deployInference' | 'checkInference' | 'deleteRunObjects' | 'readAdapterImage'
  >
>(apiCalls);
const waits = proxyActivities<Pick<Activities, 'waitForPoolNodes'>>(clusterWaits);
const smoke = proxyActivities<Pick<Activities, 'smokeCheckInference'>>(smokeChecks);

const gpuTaint = 'sku=gpu:NoSchedule';
/** Checks of a running Job back off to this: the jobFinished signal, not polling, ends the wait. */
const maxCheckIntervalMs = 10 * 60_000;
const maxPushAttempts = 5;
const trainerBackoffLimit = 1;
const rolloutTimeoutMs = 20 * 60_000;

export async function fineTune(input: FineTuneInput): Promise<FineTuneStatus> {
  const { workflowId } = workflowInfo();
  /** The run's label on everything it creates in the cluster. */
  const runId = runLabelValue(workflowId);
  const status: FineTuneStatus = { phase: 'validating', steps: [], created: [], released: [], pushAttempts: 0 };
  setHandler(fineTuneStatusQuery, () => status);
  /** Names of this run's Jobs that the shared Job watcher reported finished. */
  const finishedJobs = new Set<string>();
  setHandler(jobFinishedSignal, ({ name }) => void finishedJobs.add(name));

  const validation = validateFineTuneRequest(await withParsedWorkspace(input, 'fineTune request'), workflowId);
  if (!validation.ok) {
    status.phase = 'failed';
    status.problems = validation.problems;
    throw invalidInput('fineTune request', validation.problems);
  }
  const plan = validation.plan;
  const outputImage = `${plan.output.registry}/${plan.output.repository}:${plan.output.tag}`;
  let pool = plan.existingPool ?? nodePoolName('ft', workflowId);
  const names = {
    configMap: `${plan.runName}-params`,
    results: `${plan.runName}-results`,
    trainJob: `${plan.runName}-train`,
    pushJob: (attempt: number) => `${plan.runName}-push-${attempt}`,
  };
  Object.assign(status, { model: plan.model.name, method: plan.method, adapter: { image: outputImage } });
  status.gpu = {
    pool,
    vmSize: plan.vmSize.name,
    spot: plan.spot,
    reusedPool: plan.existingPool !== undefined,
    gpuMinutes: 0,
    currency: plan.prices.currency,
    pricesAsOf: plan.prices.asOf,
  };
  upsertSearchAttributes([
    { key: BaseModel, value: plan.model.name },
    { key: TuningMethod, value: plan.method },
    { key: GpuVmSize, value: plan.vmSize.name },
    { key: AdapterRepository, value: `${plan.output.registry}/${plan.output.repository}` },
  ]);
  upsertMemo({
    request: {
      model: plan.model.name,
      method: plan.method,
      dataset: datasetForRecords(plan.dataset),
      output: outputImage,
      vmSize: plan.vmSize.name,
      spot: plan.spot,
      deploy: plan.deploy ?? false,
      release: plan.release,
    },
  });

  const enter = (phase: FineTunePhase) => {
    status.phase = phase;
    upsertSearchAttributes([{ key: PipelinePhase, value: phase }]);
  };
  // new Date() is deterministic in workflow code: the sandbox replays time from history.
  const step = async <T>(name: string, run: () => Promise<T>, detail?: (result: T) => string | undefined): Promise<T> => {
    const record: FineTuneStep = { name, startedAt: new Date().toISOString() };
    status.steps.push(record);
    status.currentStep = name;
    const result = await run();
    record.endedAt = new Date().toISOString();
    record.detail = detail?.(result);
    status.currentStep = undefined;
    return result;
  };
  const accountGpu = () => {
    const gpu = status.gpu!;
    if (!gpu.readyAt) return;
    const end = gpu.releasedAt ? Date.parse(gpu.releasedAt) : Date.now();
    gpu.gpuMinutes = Math.round(((end - Date.parse(gpu.readyAt)) / 60_000) * (gpu.gpusPerNode ?? 0) * 100) / 100;
    gpu.estimatedCost = estimateCost(plan.prices, plan.vmSize.name, plan.spot, 1, (end - Date.parse(gpu.readyAt)) / 60_000);
  };
  /** Minutes until the budget is spent at the current rate (undefined without a budget or before GPUs are held). */
  const budgetMinutesLeft = (): number | undefined => {
    const gpu = status.gpu!;
    if (!plan.budget || !gpu.readyAt || !gpu.gpusPerNode) return undefined;
    const hourly = plan.prices.perHour[plan.vmSize.name] ?? 0;
    const byHours = plan.budget.maxGpuHours !== undefined ? (plan.budget.maxGpuHours * 60 - gpu.gpuMinutes) / gpu.gpusPerNode : Infinity;
    const byCost =
      plan.budget.maxCost !== undefined && hourly > 0 ? ((plan.budget.maxCost - (gpu.estimatedCost ?? 0)) / (hourly * (plan.spot ? plan.prices.spotFactor : 1))) * 60 : Infinity;
    return Math.min(byHours, byCost);
  };
  const enforceBudget = () => {
    const left = budgetMinutesLeft();
    if (left !== undefined && left <= 0) {
      const gpu = status.gpu!;
      const limits = [
        plan.budget!.maxGpuHours !== undefined ? `${plan.budget!.maxGpuHours} GPU-hours` : undefined,
        plan.budget!.maxCost !== undefined ? `${plan.budget!.maxCost} ${gpu.currency}` : undefined,
      ].filter(Boolean);
      throw ApplicationFailure.nonRetryable(
        `Budget exceeded after ${gpu.gpuMinutes} GPU-minutes (about ${gpu.estimatedCost} ${gpu.currency}; limit ${limits.join(', ')}): training was stopped and the run's resources released.`,
        failureTypes.budgetExceeded,
      );
    }
  };
  let poolOwned = false;
  let poolReleased = false;
  const releasePool = async () => {
    if (!poolOwned || poolReleased) return;
    // Only while the pool is still this run's: a released pool may be claimed by the next run.
    const guard = { ownedBy: workflowId };
    if (plan.release.policy === 'scale-to-zero') {
      if (await arm.scaleNodePoolToZero(pool, guard)) status.released.push(`AgentPool/${pool} (scaled to 0)`);
    } else if (await arm.deleteNodePool(pool, guard)) {
      status.released.push(`AgentPool/${pool} (deleted)`);
    }
    poolReleased = true;
    status.gpu!.releasedAt = new Date().toISOString();
    accountGpu();
  };

  try {
    enter('provisioning');
    const capacity = await step('GPU capacity', () => provision(plan, pool, workflowId, () => (poolOwned = true), status), (r) => r.detail);
    pool = capacity.pool;
    const ready = await step('wait for GPU nodes', () => waits.waitForPoolNodes(pool, 1), (r) => `${r.nodes.join(', ')}: ${r.gpusPerNode} GPU(s)`);
    status.gpu.gpusPerNode = ready.gpusPerNode;
    status.gpu.readyAt = new Date().toISOString();

    enter('preparing');
    await step('tuning inputs', async () => {
      await kube.ensureNamespace(plan.namespace);
      status.created.push(`ConfigMap/${names.configMap}`, `PersistentVolumeClaim/${names.results}`);
      await kube.ensureTuningInputs({ namespace: plan.namespace, runId, configMap: names.configMap, resultsClaim: names.results, config: plan.config });
    });

    enter('training');
    status.created.push(`Job/${names.trainJob}`);
    await step('train', async () => {
      await kube.startTuningJob(plan.namespace, {
        name: names.trainJob,
        runId,
        workflowId,
        model: plan.model,
        gpus: ready.gpusPerNode,
        pool,
        taints: [gpuTaint],
        dataset: plan.dataset,
        configMap: names.configMap,
        resultsClaim: names.results,
        backoffLimit: trainerBackoffLimit,
      });
      const done = await watchJob(
        plan,
        names.trainJob,
        finishedJobs,
        (progress) => {
          status.training = { ...progress, job: names.trainJob };
          accountGpu();
          if (progress.state !== 'succeeded') enforceBudget();
        },
        () => {
          const left = budgetMinutesLeft();
          return left === undefined ? undefined : Math.max(left * 60_000, 1000);
        },
      );
      if (done.state === 'failed') {
        const oom = /OOMKilled/.test(done.reason ?? '');
        throw ApplicationFailure.nonRetryable(
          `Training Job ${names.trainJob} failed: ${done.reason ?? 'unknown reason'}` +
            (oom ? `. The trainer ran out of memory: use method qlora, or a VM size with more GPU memory than ${plan.vmSize.name}'s ${plan.vmSize.gpu!.memoryGiB} GiB.` : ''),
          failureTypes.trainingFailed,
          done,
        );
      }
      return done;
    }, (done) => `${done.attempts} attempt(s) on ${done.node}`);

    enter('pushing');
    const adapter = await step('push adapter image', () => pushAdapter(plan, workflowId, outputImage, names, pool, status, finishedJobs), (a) => `${outputImage}@${a.digest}`);
    status.adapter = { image: outputImage, digest: adapter.digest, reference: `${plan.output.registry}/${plan.output.repository}@${adapter.digest}` };

    if (!plan.deploy) {
      enter('releasing-gpus');
      if (plan.release.idleGraceMinutes > 0) await sleep(plan.release.idleGraceMinutes * 60_000);
      await step('release GPUs', releasePool, () => status.released.filter((r) => r.startsWith('AgentPool/')).join(', ') || 'pool kept (not created by this run)');
    } else {
      enter('deploying');
      const deploy = plan.deploy;
      status.created.push(`Deployment/${deploy.name}`, `Service/${deploy.name}`);
      const models = await step('deploy inference', async () => {
        await kube.deployInference(plan.namespace, {
          name: deploy.name,
          runId,
          model: plan.model,
          adapter: { name: plan.runName, image: status.adapter!.reference! },
          pool,
          taints: [gpuTaint],
          gpus: ready.gpusPerNode,
          replicas: deploy.replicas,
        });
        const deadline = Date.now() + rolloutTimeoutMs;
        for (;;) {
          const rollout = await kube.checkInference(plan.namespace, deploy.name);
          if (rollout.available >= rollout.wanted) break;
          if (Date.now() > deadline) {
            throw ApplicationFailure.nonRetryable(`Inference ${deploy.name} has ${rollout.available}/${rollout.wanted} replicas after ${rolloutTimeoutMs / 60_000} minutes`, failureTypes.inferenceUnhealthy);
          }
          await sleep(plan.pollIntervalSeconds * 1000);
        }
        return smoke.smokeCheckInference(plan.namespace, deploy.name, plan.runName);
      }, (m) => `serving ${m.join(', ')}`);
      status.inference = { service: deploy.name, models };
    }
    enter('cleaning-up');
    await CancellationScope.nonCancellable(async () => {
      status.released.push(...(await kube.deleteRunObjects(plan.namespace, runId, { includeInference: false })));
    });
    enter('succeeded');
    return status;
  } catch (err) {
    const outcome = isCancellation(err) ? 'cancelled' : 'failed';
    status.error = err instanceof Error ? err.message : String(err);
    // Compensation: nothing this run created may outlive it, GPU nodes least of all.
    await CancellationScope.nonCancellable(async () => {
      enter('cleaning-up');
      status.released.push(...(await kube.deleteRunObjects(plan.namespace, runId, { includeInference: true })));
      await releasePool();
    });
    enter(outcome);
    throw err;
  }
}

/**
 * Gets the run its GPU pool: the existing pool the request names, or an idle warm pool of the
 * same VM size and spot setting claimed atomically (ARM If-Match), or a new pool of its own.
 */
async function provision(
  plan: FineTunePlan,
  newPool: string,
  workflowId: string,
  markOwned: () => void,
  status: FineTuneStatus,
): Promise<{ pool: string; detail: string }> {
  if (plan.existingPool) {
    const existing = await arm.describeNodePool(plan.existingPool);
    if (!existing || existing.vmSize.toLowerCase() !== plan.vmSize.name.toLowerCase() || existing.count < 1) {
      throw ApplicationFailure.nonRetryable(
        existing
          ? `Node pool ${plan.existingPool} is ${existing.count} x ${existing.vmSize}; the run needs at least one ${plan.vmSize.name}`
          : `Node pool ${plan.existingPool} does not exist`,
        failureTypes.nodePoolConflict,
      );
    }
    return { pool: plan.existingPool, detail: `using existing pool ${plan.existingPool}` };
  }
  if (plan.reuseWarmPool) {
    const warm = await claimWarmPool(plan, workflowId);
    if (warm) {
      markOwned();
      const saved = warm.previousOwner ? await lookups.provisioningSecondsOf(warm.previousOwner) : undefined;
      Object.assign(status.gpu!, { pool: warm.name, reusedPool: true, reusedFrom: warm.previousOwner, provisioningSecondsSaved: saved });
      return { pool: warm.name, detail: `reused warm pool ${warm.name}${saved !== undefined ? `, about ${saved}s of provisioning saved` : ''}` };
    }
  }
  markOwned(); // before the call: a timed-out create may still have made the pool
  status.created.push(`AgentPool/${newPool}`);
  const created = await arm.ensureNodePool({
    name: newPool,
    vmSize: plan.vmSize.name,
    count: 1,
    spot: plan.spot,
    taints: [gpuTaint],
    labels: { 'aks-finetune.io/purpose': 'fine-tuning' },
    tags: managedPoolTags(workflowId, plan.release),
  });
  return { pool: newPool, detail: `${created.name}: ${created.count} x ${created.vmSize}${created.adopted ? ' (adopted)' : ''}` };
}

/** An idle managed pool whose run has ended, claimed for this run; undefined when there is none. */
async function claimWarmPool(plan: FineTunePlan, workflowId: string): Promise<{ name: string; previousOwner?: string } | undefined> {
  const candidates = (await arm.listManagedPools())
    .filter((p) => p.vmSize.toLowerCase() === plan.vmSize.name.toLowerCase() && p.spot === plan.spot && p.provisioningState === 'Succeeded' && p.eTag)
    // Pools with a running node first: they save the whole provisioning.
    .sort((a, b) => Number(b.count > 0) - Number(a.count > 0));
  const owners = [...new Set(candidates.map((c) => c.tags[poolTags.workflowId]).filter((o): o is string => o !== undefined))];
  const openOwners = new Set(owners.length ? await lookups.openRunsAmong(owners) : []);
  for (const candidate of candidates) {
    const owner = candidate.tags[poolTags.workflowId];
    // This run's own pool from an earlier attempt is adopted by ensureNodePool; open runs keep theirs.
    if (owner === workflowId || (owner && openOwners.has(owner))) continue;
    if ((await lookups.gpuPodsOnPool(candidate.name)).length > 0) continue;
    if (await arm.claimNodePool(candidate.name, candidate.eTag!, managedPoolTags(workflowId, plan.release))) {
      return { name: candidate.name, previousOwner: owner };
    }
  }
  return undefined;
}

/**
 * Checks a Job until it is done, between durable timers (no activity slot is held while
 * waiting) that double from pollIntervalSeconds up to 10 minutes; the jobFinished signal
 * cuts a wait short.
 */
async function watchJob(
  plan: FineTunePlan,
  job: string,
  finishedJobs: Set<string>,
  onProgress: (p: JobProgress) => void,
  /** When the next check must happen at the latest (a budget running out), in ms from now. */
  checkWithinMs: () => number | undefined = () => undefined,
): Promise<JobProgress> {
  for (let intervalMs = plan.pollIntervalSeconds * 1000; ; intervalMs = Math.min(intervalMs * 2, maxCheckIntervalMs)) {
    const progress = await kube.checkJob(plan.namespace, job);
    onProgress(progress);
    if (progress.state === 'succeeded' || progress.state === 'failed') return progress;
    await condition(() => finishedJobs.has(job), Math.min(intervalMs, checkWithinMs() ?? Infinity));
  }
}

/**
 * Pushes the adapter with a pusher Job; a failed push starts a new pusher (never a new
 * training). Then reads the image back from the registry for the digest it really holds.
 */
async function pushAdapter(
  plan: FineTunePlan,
  workflowId: string,
  image: string,
  names: { results: string; pushJob: (attempt: number) => string },
  pool: string,
  status: FineTuneStatus,
  finishedJobs: Set<string>,
): Promise<{ digest: string }> {
  const annotations = {
    'sh.kaito.model.name': plan.model.name,
    'org.opencontainers.image.created': new Date().toISOString(),
    'org.opencontainers.image.base.name': `kaito-${plan.model.name}:${plan.model.weightsTag}`,
    'aks-finetune.io/method': plan.method,
    'aks-finetune.io/dataset': datasetLineage(plan.dataset),
    'aks-finetune.io/config-hash': fingerprint(plan.config),
    'aks-finetune.io/workflow-id': workflowId,
  };
  for (let attempt = 1; ; attempt++) {
    status.pushAttempts = attempt;
    const job = names.pushJob(attempt);
    status.created.push(`Job/${job}`);
    await kube.startPushJob(plan.namespace, {
      name: job,
      runId: runLabelValue(workflowId),
      workflowId,
      pool,
      taints: [gpuTaint],
      resultsClaim: names.results,
      image,
      annotations,
    });
    const done = await watchJob(plan, job, finishedJobs, (progress) => {
      status.push = { ...progress, job };
    });
    if (done.state === 'succeeded') return kube.readAdapterImage(image);
    if (attempt >= maxPushAttempts) {
      throw ApplicationFailure.nonRetryable(`Pushing ${image} failed ${attempt} times; last: ${done.reason}`, failureTypes.pushFailed, done);
    }
    await sleep(Math.min(2 ** attempt, 60) * 1000);
  }
}
