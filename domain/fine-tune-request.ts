// What a person asks for (FineTuneRequest: one object, so the Temporal UI can start a run),
// and what the pipeline will do (FineTunePlan). validateFineTuneRequest reports every problem
// at once, before anything is created. Pure code: the workflow runs it.
import { parse as parseYaml } from 'yaml';
import { datasetUrlProblem } from './dataset-url.js';
import { fnv1a } from './hash.js';
import { type ImageReference, parseImageReference } from './image-reference.js';
import { estimateTrainingMemoryGiB, findModelPreset, type ModelPreset, modelPresetNames, type TuningMethod } from './models.js';
import { defaultPriceTable, type PriceTable } from './prices.js';
import { type TrainingConfig, trainingConfig, type TuningOverrides } from './training-config.js';
import { findVmSize, type VmSize, vmSizeNames } from './vm-sizes.js';

export interface DatasetSource {
  /** http(s) URLs of csv/json/jsonl/parquet files; each is downloaded into /mnt/data. */
  urls?: string[];
  /** An image whose /data folder holds the dataset. */
  image?: string;
  imagePullSecret?: string;
  /** An existing PersistentVolumeClaim holding the dataset. */
  volume?: string;
}

export type ReleasePolicy = 'delete' | 'scale-to-zero';

export interface FineTuneRequest {
  /** Names the run's objects; the workflow id is used when absent. */
  runName?: string;
  /** Model preset, e.g. phi-3-mini-4k-instruct. */
  model?: string;
  method?: TuningMethod;
  dataset?: DatasetSource;
  tuning?: TuningOverrides;
  /** Where the adapter image goes: registry/repository[:tag]. */
  output?: { image?: string; pushSecret?: string };
  gpu?: {
    vmSize?: string;
    spot?: boolean;
    /** An existing pool to run on instead of creating one. */
    nodePool?: string;
    /** Use an idle pool of this product with the same VM size and spot setting when there is one (default true). */
    reuseWarmPool?: boolean;
  };
  /** Serve the base model with the adapter after training. Off when absent. */
  deploy?: { name?: string; replicas?: number };
  release?: { policy?: ReleasePolicy; idleGraceMinutes?: number };
  namespace?: string;
  /** A KAITO tuning Workspace (YAML text or object); its fields fill what the request leaves out. */
  workspace?: string | Record<string, unknown>;
  /** Prices for the status's cost estimate, when the built-in table is out of date. */
  prices?: PriceTable;
  /** How often training and rollouts are checked (default 30 s). */
  pollIntervalSeconds?: number;
  /** Stop training, clean up and fail when the run's GPUs have cost this much. */
  budget?: { maxGpuHours?: number; maxCost?: number };
}

export interface FineTunePlan {
  model: ModelPreset;
  method: TuningMethod;
  dataset: DatasetSource;
  config: TrainingConfig;
  output: ImageReference & { tag: string; pushSecret?: string };
  vmSize: VmSize;
  spot: boolean;
  /** Set when the run uses an existing pool (it is then neither created nor released). */
  existingPool?: string;
  reuseWarmPool: boolean;
  deploy?: { name: string; replicas: number };
  release: { policy: ReleasePolicy; idleGraceMinutes: number };
  namespace: string;
  runName: string;
  memoryNeededGiB: number;
  prices: PriceTable;
  pollIntervalSeconds: number;
  budget?: { maxGpuHours?: number; maxCost?: number };
  /** The tuning Job's activeDeadlineSeconds, in hours. */
  maxHours: number;
  /** How long a trainer or pusher pod may take to start before the run fails with its reason. */
  podStartTimeoutMinutes: number;
}

export type Validation = { ok: true; plan: FineTunePlan } | { ok: false; problems: string[] };

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isDnsLabel = (s: string, max = 63) => s.length <= max && dnsLabel.test(s);
const isDnsSubdomain = (s: string) => s.length <= 253 && s.split('.').every((p) => dnsLabel.test(p));

/** The workflow id as a DNS label; a long id is cut and keeps a hash of the whole, so runs stay apart. */
function defaultRunName(workflowId: string): string {
  const slug = workflowId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (slug.length <= 40) return slug;
  return `${slug.slice(0, 32).replace(/-+$/, '')}-${fnv1a(workflowId).toString(36)}`;
}

/** Reads a KAITO v1beta1 tuning Workspace (fields at the top level, no `spec`) into a request. */
export function fromKaitoWorkspace(workspace: Record<string, unknown>): FineTuneRequest {
  const resource = (workspace.resource ?? {}) as { instanceType?: string };
  const tuning = (workspace.tuning ?? {}) as {
    preset?: { name?: string };
    method?: TuningMethod;
    input?: { urls?: string[]; image?: string; imagePullSecrets?: string[]; volumeSource?: { persistentVolumeClaim?: { claimName?: string } } };
    output?: { image?: string; imagePushSecret?: string };
  };
  const metadata = (workspace.metadata ?? {}) as { name?: string; namespace?: string };
  const input = tuning.input ?? {};
  return {
    runName: metadata.name,
    namespace: metadata.namespace,
    model: tuning.preset?.name,
    method: tuning.method,
    dataset: {
      urls: input.urls,
      image: input.image,
      imagePullSecret: input.imagePullSecrets?.[0],
      volume: input.volumeSource?.persistentVolumeClaim?.claimName,
    },
    output: { image: tuning.output?.image, pushSecret: tuning.output?.imagePushSecret },
    gpu: { vmSize: resource.instanceType },
  };
}

/** Request fields win over the Workspace's. */
function merge(request: FineTuneRequest, base: FineTuneRequest): FineTuneRequest {
  const defined = <T extends object>(o: T | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  const datasetGiven = request.dataset && Object.values(request.dataset).some((v) => v !== undefined);
  return {
    ...base,
    ...defined(request),
    dataset: datasetGiven ? request.dataset : base.dataset,
    output: { ...defined(base.output), ...defined(request.output) },
    gpu: { ...defined(base.gpu), ...defined(request.gpu) },
  };
}

function checkNumber(problems: string[], name: string, value: number | undefined, min: number, max: number, integer = false): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    problems.push(`tuning.${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, not ${String(value)}`);
  }
}

/** The smallest known GPU size whose GPUs hold `neededGiB` each and compute in bf16. */
function smallestFittingSize(neededGiB: number): string | undefined {
  return vmSizeNames
    .map((n) => findVmSize(n)!)
    .filter((s) => s.gpu && s.gpu.bf16 && s.gpu.memoryGiB >= neededGiB)
    .sort((a, b) => a.gpus - b.gpus || a.gpu!.memoryGiB - b.gpu!.memoryGiB || a.vCpus - b.vCpus)[0]?.name;
}

export function validateFineTuneRequest(input: FineTuneRequest, workflowId: string): Validation {
  const problems: string[] = [];
  let request = input ?? {};
  if (request.workspace !== undefined) {
    let workspace: unknown = request.workspace;
    let readable = true;
    if (typeof workspace === 'string') {
      try {
        workspace = parseYaml(workspace); // YAML is a superset of JSON: both are accepted
      } catch (err) {
        readable = false;
        problems.push(`workspace is not valid YAML or JSON: ${(err as Error).message}`);
      }
    }
    if (readable && (!workspace || typeof workspace !== 'object' || Array.isArray(workspace))) {
      problems.push('workspace must be a KAITO Workspace (an object, or its YAML/JSON text)');
    } else if (readable) {
      const kind = (workspace as { kind?: string }).kind;
      if (kind !== undefined && kind !== 'Workspace') problems.push(`workspace has kind "${kind}", expected a KAITO Workspace`);
      request = merge(request, fromKaitoWorkspace(workspace as Record<string, unknown>));
    }
  }

  const model = request.model ? findModelPreset(request.model) : undefined;
  if (!request.model) problems.push(`model is required: one of ${modelPresetNames.join(', ')}`);
  else if (!model) problems.push(`model "${request.model}" is not a preset KAITO can tune; choose one of ${modelPresetNames.join(', ')}`);

  const method = request.method ?? 'lora';
  if (method !== 'lora' && method !== 'qlora') problems.push(`method must be "lora" or "qlora", not "${String(method)}"`);
  const tuning = request.tuning ?? {};
  if (method === 'lora' && (tuning.loadIn4bit || tuning.loadIn8bit)) {
    problems.push('method lora trains a full-precision base: loadIn4bit and loadIn8bit must not be true (use method qlora for a quantized base)');
  }
  if (method === 'qlora' && tuning.loadIn4bit === tuning.loadIn8bit && tuning.loadIn4bit !== undefined) {
    problems.push('method qlora needs exactly one of loadIn4bit and loadIn8bit set to true');
  }
  if (method === 'qlora' && tuning.loadIn4bit === false && tuning.loadIn8bit === undefined) {
    problems.push('method qlora needs a quantized base: set loadIn4bit or loadIn8bit to true');
  }
  checkNumber(problems, 'loraR', tuning.loraR, 1, 1024, true);
  checkNumber(problems, 'loraAlpha', tuning.loraAlpha, 1, 4096);
  checkNumber(problems, 'loraDropout', tuning.loraDropout, 0, 0.99);
  checkNumber(problems, 'epochs', tuning.epochs, 0.01, 1000);
  checkNumber(problems, 'learningRate', tuning.learningRate, 1e-9, 1);
  checkNumber(problems, 'batchSize', tuning.batchSize, 1, 4096, true);
  checkNumber(problems, 'gradientAccumulationSteps', tuning.gradientAccumulationSteps, 1, 4096, true);
  checkNumber(problems, 'maxSteps', tuning.maxSteps, 1, 10_000_000, true);
  checkNumber(problems, 'maxHours', tuning.maxHours, 0.01, 720);
  checkNumber(problems, 'podStartTimeoutMinutes', tuning.podStartTimeoutMinutes, 0.05, 24 * 60);

  const vmSize = request.gpu?.vmSize ? findVmSize(request.gpu.vmSize) : undefined;
  let memoryNeededGiB = 0;
  if (!request.gpu?.vmSize) problems.push('gpu.vmSize is required, e.g. Standard_NC24ads_A100_v4');
  else if (!vmSize) problems.push(`gpu.vmSize "${request.gpu.vmSize}" is not a known Azure VM size`);
  else if (!vmSize.gpu) problems.push(`gpu.vmSize ${vmSize.name} has no GPUs`);
  else {
    if (!vmSize.gpu.bf16) {
      problems.push(`gpu.vmSize ${vmSize.name} has ${vmSize.gpu.model} GPUs, which do not compute in bfloat16 as the trainer does; choose an A10, A100 or H100 size`);
    }
    if (model && (method === 'lora' || method === 'qlora')) {
      memoryNeededGiB = estimateTrainingMemoryGiB(model, method);
      if (memoryNeededGiB > vmSize.gpu.memoryGiB) {
        const qloraNeed = estimateTrainingMemoryGiB(model, 'qlora');
        const advice = [
          method === 'lora' && qloraNeed <= vmSize.gpu.memoryGiB ? `use method qlora (about ${qloraNeed} GiB)` : undefined,
          smallestFittingSize(memoryNeededGiB) ? `choose ${smallestFittingSize(memoryNeededGiB)}` : undefined,
        ].filter(Boolean);
        problems.push(
          `${model.name} with ${method} needs about ${memoryNeededGiB} GiB per GPU, but ${vmSize.name}'s ${vmSize.gpu.model} GPUs have ${vmSize.gpu.memoryGiB} GiB` +
            (advice.length ? `: ${advice.join(' or ')}` : ''),
        );
      }
    }
  }
  if (request.gpu?.nodePool !== undefined && !/^[a-z][a-z0-9]{0,11}$/.test(request.gpu.nodePool)) {
    problems.push(`gpu.nodePool "${request.gpu.nodePool}" is not a valid AKS pool name (a lowercase letter, then up to 11 lowercase letters or digits)`);
  }

  const dataset = request.dataset ?? {};
  const sources = (['urls', 'image', 'volume'] as const).filter((k) => dataset[k] !== undefined);
  if (sources.length !== 1) {
    problems.push(`dataset needs exactly one of urls, image or volume${sources.length ? ` (got ${sources.join(' and ')})` : ''}`);
  }
  if (dataset.urls !== undefined) {
    if (!Array.isArray(dataset.urls) || dataset.urls.length === 0) problems.push('dataset.urls must be a non-empty list');
    else for (const url of dataset.urls) {
      const problem = datasetUrlProblem(url);
      if (problem) problems.push(`dataset.urls: ${problem}`);
    }
  }
  if (dataset.image !== undefined && !parseImageReference(dataset.image)) problems.push(`dataset.image "${dataset.image}" is not a valid image reference`);
  if (dataset.volume !== undefined && !isDnsSubdomain(dataset.volume)) problems.push(`dataset.volume "${dataset.volume}" is not a valid PersistentVolumeClaim name`);
  if (dataset.imagePullSecret !== undefined && !isDnsSubdomain(dataset.imagePullSecret)) {
    problems.push(`dataset.imagePullSecret "${dataset.imagePullSecret}" is not a valid Secret name`);
  }

  const runName = request.runName ?? defaultRunName(workflowId);
  if (!isDnsLabel(runName, 40)) problems.push(`runName "${runName}" must be a DNS label of at most 40 characters (lowercase letters, digits, '-')`);

  const output = request.output?.image ? parseImageReference(request.output.image) : undefined;
  if (!request.output?.image) problems.push('output.image is required: the registry/repository[:tag] the adapter image is pushed to');
  else if (!output) problems.push(`output.image "${request.output.image}" is not a valid image reference`);
  else if (output.registry === 'docker.io') problems.push(`output.image "${request.output.image}" names no registry; write it as myregistry.azurecr.io/repository[:tag]`);
  else if (output.digest) problems.push('output.image must not carry a digest: the digest is known only after the push');
  if (request.output?.pushSecret !== undefined && !isDnsSubdomain(request.output.pushSecret)) {
    problems.push(`output.pushSecret "${request.output.pushSecret}" is not a valid Secret name`);
  }

  const namespace = request.namespace ?? 'aks-finetune';
  if (!isDnsLabel(namespace)) problems.push(`namespace "${namespace}" is not a valid Kubernetes namespace name`);
  let deploy: FineTunePlan['deploy'];
  if (request.deploy) {
    deploy = { name: request.deploy.name ?? runName, replicas: request.deploy.replicas ?? 1 };
    if (!isDnsLabel(deploy.name, 50)) problems.push(`deploy.name "${deploy.name}" must be a DNS label of at most 50 characters`);
    if (!Number.isInteger(deploy.replicas) || deploy.replicas < 1 || deploy.replicas > 10) problems.push('deploy.replicas must be an integer from 1 to 10');
  }
  const release = { policy: request.release?.policy ?? 'delete', idleGraceMinutes: request.release?.idleGraceMinutes ?? 0 };
  if (release.policy !== 'delete' && release.policy !== 'scale-to-zero') problems.push(`release.policy must be "delete" or "scale-to-zero", not "${String(release.policy)}"`);
  if (typeof release.idleGraceMinutes !== 'number' || release.idleGraceMinutes < 0) problems.push('release.idleGraceMinutes must be a number >= 0');

  const pollIntervalSeconds = request.pollIntervalSeconds ?? 30;
  if (typeof pollIntervalSeconds !== 'number' || pollIntervalSeconds < 1 || pollIntervalSeconds > 600) {
    problems.push('pollIntervalSeconds must be a number from 1 to 600');
  }

  const budget = request.budget;
  for (const key of ['maxGpuHours', 'maxCost'] as const) {
    const value = budget?.[key];
    if (value !== undefined && (typeof value !== 'number' || !(value > 0))) problems.push(`budget.${key} must be a number > 0`);
  }
  if (budget?.maxCost !== undefined && vmSize && (request.prices ?? defaultPriceTable).perHour[vmSize.name] === undefined) {
    problems.push(`budget.maxCost needs a price for ${vmSize.name}: add it to prices.perHour`);
  }

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    plan: {
      model: model!,
      method,
      dataset,
      config: trainingConfig(method, tuning),
      output: { ...output!, tag: output!.tag ?? runName, pushSecret: request.output?.pushSecret },
      vmSize: vmSize!,
      spot: request.gpu?.spot ?? false,
      existingPool: request.gpu?.nodePool,
      reuseWarmPool: request.gpu?.reuseWarmPool ?? true,
      deploy,
      release,
      namespace,
      runName,
      memoryNeededGiB,
      prices: request.prices ?? defaultPriceTable,
      pollIntervalSeconds,
      maxHours: tuning.maxHours ?? 24,
      podStartTimeoutMinutes: tuning.podStartTimeoutMinutes ?? 15,
      budget,
    },
  };
}
