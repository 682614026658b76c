// What a person asks for (FineTuneRequest: one object, so the Temporal UI can start a run),
// and what the pipeline will do (FineTunePlan). validateFineTuneRequest reports every problem
// at once, before anything is created. Pure code: the workflow runs it.
import { z } from 'zod';
import { datasetUrlProblem, hostProblem } from './dataset-url.js';
import { fnv1a } from './hash.js';
import { type ImageReference, parseImageReference } from './image-reference.js';
import { estimateTrainingMemoryGiB, findModelPreset, type ModelPreset, modelPresetNames, type TuningMethod, untunableReason } from './models.js';
import { defaultPriceTable, type PriceTable } from './prices.js';
import { type EvaluationSplit, type TrainingConfig, trainingConfig, type TuningOverrides } from './training-config.js';
import { type TrainerKind, trainerKinds } from './training-progress.js';
import { findVmSize, type VmSize, vmSizeNames } from './vm-sizes.js';
import { type KaitoWorkspace, kaitoPlaceholderProblems, kaitoWorkspaceSchema } from './kaito-workspace.js';
import { type FineTunePromote, fineTunePromoteSchema, suiteProblems } from './promotion.js';
import { clusterNameSchema } from './cluster-targets.js';
import { type GpuAttempt, gpuAttemptOrder, type GpuFallbackPolicy, gpuFallbackPolicies } from './gpu-candidates.js';
import { boolean, checkInput, dnsLabel, dnsLabelPattern, dnsSubdomain, dnsSubdomainPattern, dnsSubdomainRule, list, number, oneOf, strict, text } from './schema.js';

const secretName = dnsSubdomain('Secret');
const vmSizeText = text('an Azure VM size name, e.g. Standard_NC24ads_A100_v4', { max: 64 });
/** Availability zones, tried one after the other: a pool is pinned to one zone (its results disk then lives there too). */
const zonesSchema = list(oneOf(['1', '2', '3']), 1, 3, 'zones');
const candidateSchema = strict({ vmSize: vmSizeText, spot: boolean().optional(), zones: zonesSchema.optional(), cluster: clusterNameSchema.optional() });
const imageText = text('an image reference (registry/repository[:tag]) of at most 255 characters');

const datasetSchema = strict({
  urls: list(text('an http(s) URL of at most 2048 characters', { max: 2048 }), 1, 100, 'URLs').optional().describe('http(s) URLs of csv/json/jsonl/parquet files; each is downloaded into /mnt/data.'),
  image: imageText.optional().describe('An image whose /data folder holds the dataset.'),
  imagePullSecret: secretName.optional().describe('Pulls dataset.image (the tuning pod\'s imagePullSecrets).'),
  volume: dnsSubdomain('PersistentVolumeClaim').optional().describe('An existing PersistentVolumeClaim holding the dataset.'),
  urlsSecret: strict({
    name: secretName,
    key: text("a Secret key: letters, digits, '-', '_' and '.'", { pattern: /^[-._a-zA-Z0-9]+$/, max: 253 }).optional(),
  })
    .optional()
    .describe('A Secret in the run\'s namespace whose key holds dataset URLs, one a line: for URLs that carry secrets (an Azure Blob SAS token), which then never reach the workflow\'s history.'),
});

/** The training parameters a request may set inline; a tuning ConfigMap's same keys are held to the same rules (domain/tuning-configmap.ts). */
export const trainingParameterFields = {
  loraR: number(1, 1024, { integer: true }).describe('LoRA rank: LoraConfig.r (default 8).'),
  loraAlpha: number(1, 4096).describe('LoRA scaling: LoraConfig.lora_alpha (default 8).'),
  loraDropout: number(0, 0.99).describe('LoraConfig.lora_dropout (default 0).'),
  epochs: number(0.01, 1000).describe("TrainingArguments.num_train_epochs (transformers' default 3)."),
  learningRate: number(1e-9, 1).describe('TrainingArguments.learning_rate.'),
  batchSize: number(1, 4096, { integer: true }).describe('TrainingArguments.per_device_train_batch_size (default 1).'),
  gradientAccumulationSteps: number(1, 4096, { integer: true }).describe('TrainingArguments.gradient_accumulation_steps.'),
  maxSteps: number(1, 10_000_000, { integer: true }).describe('TrainingArguments.max_steps: stop after this many steps.'),
  loadIn4bit: boolean().describe('QuantizationConfig.load_in_4bit: qlora needs exactly one of the two switches; lora must have neither.'),
  loadIn8bit: boolean().describe('QuantizationConfig.load_in_8bit.'),
};

const tuningSchema = strict({
  ...(Object.fromEntries(Object.entries(trainingParameterFields).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof typeof trainingParameterFields]: z.ZodOptional<(typeof trainingParameterFields)[K]>;
  }),
  configMap: dnsSubdomain('ConfigMap').optional().describe('A ConfigMap in the run\'s namespace holding KAITO\'s training_config.yaml (KAITO\'s tuning.config): read and checked when the run starts, before GPUs; it replaces KAITO\'s template, and the fields above still win over it.'),
  maxHours: number(0.1, 720).optional().describe('Training stops and the run fails after this many hours: the tuning Job\'s activeDeadlineSeconds (default 24).'),
  podStartTimeoutMinutes: number(0.05, 240).optional().describe('A trainer or pusher pod that cannot be scheduled, pull its image, or keeps crashing fails the run after this many minutes (default 15).'),
  trainer: oneOf(trainerKinds).optional().describe('Which trainer runs in KAITO\'s image: "aks-finetune" (default) is the product\'s entrypoint, which reports progress and checkpoints and resumes; "kaito" is KAITO\'s fine_tuning.py byte for byte (progress from its log, no checkpoints: a lost node starts training again from step 0).'),
  checkpointEveryMinutes: number(0, 1440).optional().describe('The trainer saves a checkpoint on the results volume this often (default 15; 0: every step).'),
  checkpointsKept: number(1, 20, { integer: true }).optional().describe('How many checkpoints the trainer keeps, newest first (default 2).'),
  stopOnDivergence: boolean().optional().describe('Fail the run (and release its GPUs) as soon as the loss is NaN, infinite or exploding (default true).'),
});

const priceTableSchema = strict({
  asOf: text('a date, e.g. 2026-01-31', { max: 32 }),
  source: text('a short description of where the prices come from', { max: 500 }),
  currency: text('a three-letter currency code, e.g. USD', { pattern: /^[A-Z]{3}$/, max: 3 }),
  perHour: z.record(text('an Azure VM size name', { max: 64 }), number(0, 10_000), { error: 'a mapping of VM size to price per hour' }),
  spotFactor: number(0, 1),
});

const positiveAmount = number(0, 1_000_000, { minExclusive: true });

export const releasePolicies = ['delete', 'scale-to-zero'] as const;

/** What a person asks for: one object, so the Temporal UI can start a run. */
export const fineTuneRequestSchema = strict({
  runName: dnsLabel(40, 'run name').optional().describe('Names the run\'s objects; the workflow id is used when absent.'),
  model: text('a model preset name', { max: 100 }).optional().describe('Model preset, e.g. phi-3-mini-4k-instruct.'),
  method: oneOf(['lora', 'qlora']).optional().describe('lora (default): a full-precision base; qlora: a 4-bit (or 8-bit) quantized base, less GPU memory.'),
  dataset: datasetSchema.optional().describe('Where the training data comes from: exactly one of urls, urlsSecret, image or volume.'),
  tuning: tuningSchema.optional().describe("Training parameters (KAITO's LoRA and TrainingArguments names, camel-cased), bounds, the trainer and its checkpoints."),
  output: strict({
    image: imageText.optional().describe('Where the adapter image goes: registry/repository[:tag].'),
    pushSecret: secretName.optional().describe('A docker-config Secret in the run\'s namespace the pusher logs in to the registry with (KAITO\'s imagePushSecret: an ACR token or admin user). Without it, the pusher\'s workload identity.'),
    volume: dnsSubdomain('PersistentVolumeClaim')
      .optional()
      .describe("Instead of image: an existing PersistentVolumeClaim in the run's namespace the adapter's files are copied to, at its root, as KAITO's trainer leaves them (KAITO's tuning.output.volumeSource). The product never deletes it. Not with deploy or promote, which pull the adapter as an image."),
  }).optional().describe('Where the adapter goes: exactly one of image or volume.'),
  gpu: strict({
    vmSize: vmSizeText.optional().describe('The Azure VM size of the GPU pool, e.g. Standard_NC24ads_A100_v4 (required).'),
    spot: boolean().optional().describe('Spot VMs: cheaper, evictable; the trainer resumes from its last checkpoint on a new node.'),
    zones: zonesSchema.optional().describe('Availability zones to try one after the other.'),
    candidates: list(candidateSchema, 1, 10, 'candidates').optional().describe('Where to look next when Azure has no capacity or quota for vmSize, in order (docs/pipeline.md, "GPU capacity and quota").'),
    fallback: oneOf(gpuFallbackPolicies).optional().describe('listed (default): vmSize, then the candidates; fitting-sizes: then every known size the model fits on, cheapest first.'),
    spotFallbackAfterMinutes: number(0, 1440).optional().describe('With spot: after this many minutes without Spot capacity, the same sizes on demand.'),
    capacityWaitMinutes: number(0.5, 1440).optional().describe('How long the run may look for capacity, going around the candidates with backoff (default 30).'),
    nodePool: text('an AKS pool name: a lowercase letter, then up to 11 lowercase letters or digits', { pattern: /^[a-z][a-z0-9]{0,11}$/, max: 12 }).optional().describe('An existing pool to run on instead of creating one.'),
    reuseWarmPool: boolean().optional().describe('Use an idle pool of this product with the same VM size and spot setting when there is one (default true).'),
  }).optional(),
  evaluation: strict({ testSplit: number(0.01, 0.5) }).optional().describe('Hold out this fraction of the dataset; the trainer evaluates on it and the run reports its eval_loss (status.evalLoss).'),
  deploy: strict({ name: dnsLabel(50, 'Deployment name').optional(), replicas: number(1, 10, { integer: true }).optional() }).optional().describe('Serve the base model with the adapter after training. Off when absent.'),
  release: strict({ policy: oneOf(releasePolicies).optional(), idleGraceMinutes: number(0, 10_080).optional() })
    .optional()
    .describe('What happens to the GPU pool after the push: delete (default) or scale-to-zero, after idleGraceMinutes (a next run may claim it meanwhile).'),
  promote: fineTunePromoteSchema.optional().describe('After the push, promote the adapter on a long-lived endpoint (promoteAdapter, as a child run): loaded as a candidate, evaluated, gated, approved if asked, switched, watched. Not with deploy.'),
  namespace: dnsLabel(63, 'namespace').optional().describe('The run namespace (default aks-finetune); an operator lets runs in with deploy/run-namespace.'),
  workspace: kaitoWorkspaceSchema.optional().describe('A KAITO tuning Workspace; its fields fill what the request leaves out. Text is parsed before validation.'),
  prices: priceTableSchema.optional().describe('Prices for the status\'s cost estimate, when the built-in table is out of date.'),
  pollIntervalSeconds: number(1, 600).optional().describe('How often training and rollouts are checked (default 30 s).'),
  budget: strict({ maxGpuHours: positiveAmount.optional(), maxCost: positiveAmount.optional() }).optional().describe('Stop training, clean up and fail when the run\'s GPUs have cost this much.'),
});

export type FineTuneRequest = z.infer<typeof fineTuneRequestSchema>;
/** What a workflow start may carry: a Workspace may still be text (the Temporal UI's path). */
export type FineTuneInput = Omit<FineTuneRequest, 'workspace'> & { workspace?: FineTuneRequest['workspace'] | string };
export type DatasetSource = z.infer<typeof datasetSchema>;
export type ReleasePolicy = (typeof releasePolicies)[number];

/** Namespaces the product never writes to. */
export const protectedNamespaces = ['kube-system', 'kube-public', 'kube-node-lease'];

export interface FineTunePlan {
  model: ModelPreset;
  method: TuningMethod;
  dataset: DatasetSource;
  config: TrainingConfig;
  /** The held-out split the trainer evaluates on, when asked. */
  evaluation?: EvaluationSplit;
  output: AdapterOutput;
  /** A docker-config Secret in the run's namespace the pusher logs in with; without it, workload identity. */
  pushSecret?: string;
  vmSize: VmSize;
  spot: boolean;
  /** Where the run looks for GPUs, in order; the first is vmSize/spot (domain/gpu-candidates.ts). */
  gpuAttempts: GpuAttempt[];
  /** gpu.capacityWaitMinutes: the bound on looking for capacity. */
  capacityWaitMinutes: number;
  /** tuning.configMap: a ConfigMap of KAITO training parameters; `config` is rebuilt from it when the run starts. */
  configMap?: string;
  /** The request's inline training parameters, which win over a ConfigMap's. */
  tuningOverrides: TuningOverrides;
  /** Set when the run uses an existing pool (it is then neither created nor released). */
  existingPool?: string;
  reuseWarmPool: boolean;
  deploy?: { name: string; replicas: number };
  /** The promotion after the push; its endpoint's base model is the run's, its VM size and namespace the run's unless given. */
  promote?: FineTunePromote & { endpoint: { baseModel: string; vmSize: string } };
  release: { policy: ReleasePolicy; idleGraceMinutes: number };
  namespace: string;
  runName: string;
  memoryNeededGiB: number;
  prices: PriceTable;
  pollIntervalSeconds: number;
  budget?: { maxGpuHours?: number; maxCost?: number };
  /** tuning.maxHours: training stops and the run fails after this long. */
  maxHours: number;
  /** tuning.trainer and its checkpoint settings (checkpoints only with the product's trainer). */
  trainer: { kind: TrainerKind; checkpoint?: { everyMinutes: number; kept: number }; stopOnDivergence: boolean };
  /** tuning.podStartTimeoutMinutes: how long a trainer or pusher pod may be stuck before the run fails with its reason. */
  podStartTimeoutMinutes: number;
}

/** Where the adapter goes: an image in a registry, or the files on a user's PersistentVolumeClaim. */
export type AdapterOutput = ({ kind: 'image' } & ImageReference & { tag: string }) | { kind: 'volume'; claimName: string };

/** The adapter image's reference registry/repository:tag. */
export const adapterImageOf = (output: AdapterOutput & { kind: 'image' }) => `${output.registry}/${output.repository}:${output.tag}`;

/** Where the adapter goes, in words: its image reference, or the PersistentVolumeClaim. */
export const adapterDestination = (output: AdapterOutput, namespace: string) =>
  output.kind === 'image' ? adapterImageOf(output) : `PersistentVolumeClaim ${namespace}/${output.claimName}`;

export type Validation = { ok: true; plan: FineTunePlan } | { ok: false; problems: string[] };

export const planDefaults = { capacityWaitMinutes: 30, namespace: 'aks-finetune', maxHours: 24, podStartTimeoutMinutes: 15, pollIntervalSeconds: 30, checkpointEveryMinutes: 15, checkpointsKept: 2 };

/** The workflow id as a DNS label; a long id is cut and keeps a hash of the whole, so runs stay apart. */
function defaultRunName(workflowId: string): string {
  const slug = workflowId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (slug.length <= 40) return slug;
  return `${slug.slice(0, 32).replace(/-+$/, '')}-${fnv1a(workflowId).toString(36)}`;
}

/** Reads a KAITO tuning Workspace (already checked by its schema) into a request. */
export function fromKaitoWorkspace(workspace: KaitoWorkspace): FineTuneRequest {
  const { tuning, metadata, resource } = workspace;
  const input = tuning.input ?? {};
  return {
    runName: metadata?.name,
    namespace: metadata?.namespace,
    model: tuning.preset?.name,
    method: tuning.method?.toLowerCase() as TuningMethod | undefined,
    dataset: {
      urls: input.urls,
      image: input.image,
      imagePullSecret: input.imagePullSecrets?.[0],
      volume: input.volumeSource?.persistentVolumeClaim.claimName,
    },
    output: { image: tuning.output?.image, pushSecret: tuning.output?.imagePushSecret, volume: tuning.output?.volumeSource?.persistentVolumeClaim.claimName },
    tuning: { configMap: tuning.config },
    gpu: { vmSize: resource?.instanceType },
  };
}

/** Request fields win over the Workspace's. */
function merge(request: FineTuneRequest, base: FineTuneRequest): FineTuneRequest {
  const defined = <T extends object>(o: T | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  const datasetGiven = request.dataset && Object.values(request.dataset).some((v) => v !== undefined);
  // A destination the request names replaces the Workspace's, of either kind (a volume needs no push Secret).
  const baseOutput =
    request.output?.volume !== undefined ? {} : request.output?.image !== undefined ? { pushSecret: base.output?.pushSecret } : base.output;
  return {
    ...base,
    ...defined(request),
    dataset: datasetGiven ? request.dataset : base.dataset,
    output: { ...defined(baseOutput), ...defined(request.output) },
    tuning: { ...defined(base.tuning), ...defined(request.tuning) },
    gpu: { ...defined(base.gpu), ...defined(request.gpu) },
  };
}

/** The smallest known GPU size whose GPUs hold `neededGiB` each and compute in bf16. */
function smallestFittingSize(neededGiB: number): string | undefined {
  return vmSizeNames
    .map((n) => findVmSize(n)!)
    .filter((s) => s.gpu && s.gpu.bf16 && !s.retired && s.gpu.memoryGiB >= neededGiB)
    .sort((a, b) => a.gpus - b.gpus || a.gpu!.memoryGiB - b.gpu!.memoryGiB || a.vCpus - b.vCpus)[0]?.name;
}

/** Why a size cannot train this model with this method (unknown, no GPUs, no bfloat16, too little memory per GPU); none when it can. */
function sizeProblems(name: string, field: string, model: ModelPreset | undefined, method: TuningMethod): string[] {
  const vmSize = findVmSize(name);
  if (!vmSize) return [`${field} "${name}" is not a known Azure VM size`];
  if (!vmSize.gpu) return [`${field} ${vmSize.name} has no GPUs`];
  const memoryNeededGiB = model ? estimateTrainingMemoryGiB(model, method) : 0;
  if (vmSize.retired) {
    const instead = smallestFittingSize(memoryNeededGiB);
    return [`${field} ${vmSize.name}: Azure retired it on ${vmSize.retired.on} (${vmSize.retired.notice})${instead ? `; choose ${instead}` : ''}`];
  }
  const problems: string[] = [];
  if (!vmSize.gpu.bf16) {
    problems.push(`${field} ${vmSize.name} has ${vmSize.gpu.model} GPUs, which do not compute in bfloat16 as the trainer does; choose an A10, A100 or H100 size`);
  }
  if (model && memoryNeededGiB > vmSize.gpu.memoryGiB) {
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
  return problems;
}

/** What hostProblem says of a registry's host (without its port). */
const registryHostProblem = (registry: string) => hostProblem(registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''));

/** What is wrong with where the adapter goes (the request's output, or the Workspace's it fell back to). */
function outputProblems({ image, pushSecret, volume }: { image?: string; pushSecret?: string; volume?: string }, output: ImageReference | undefined): string[] {
  if (volume !== undefined) {
    if (image !== undefined) return ['output needs exactly one of image and volume (got both): the adapter is pushed as an image or copied to a PersistentVolumeClaim'];
    return pushSecret === undefined ? [] : ['output.pushSecret logs in to a registry: it goes with output.image, not with output.volume'];
  }
  const placeholders = kaitoPlaceholderProblems({ image, pushSecret });
  if (placeholders.length > 0) return placeholders;
  const problems: string[] = [];
  if (pushSecret !== undefined && !dnsSubdomainPattern.test(pushSecret)) {
    problems.push(`output.pushSecret "${pushSecret}" (or the Workspace's tuning.output.imagePushSecret) must be a Secret name: ${dnsSubdomainRule}`);
  }
  if (!image) problems.push('output.image or output.volume is required: the registry/repository[:tag] the adapter image is pushed to, or the PersistentVolumeClaim its files are copied to');
  else if (!output) problems.push(`output.image "${image}" is not a valid image reference`);
  else if (output.registry === 'docker.io') problems.push(`output.image "${image}" names no registry; write it as myregistry.azurecr.io/repository[:tag]`);
  else if (output.digest) problems.push('output.image must not carry a digest: the digest is known only after the push');
  else if (/link-local|metadata|WireServer/.test(registryHostProblem(output.registry) ?? '')) {
    problems.push(`output.image's registry ${output.registry} is ${registryHostProblem(output.registry)}: no registry lives there`);
  }
  return problems;
}

/** The model the input names (the request's, else its Workspace's preset), when KAITO no longer tunes it. */
function untunableModelProblem(input: unknown): string[] {
  const raw = input as { model?: unknown; workspace?: { tuning?: { preset?: { name?: unknown } } } } | undefined;
  const name = raw?.model ?? raw?.workspace?.tuning?.preset?.name;
  const reason = typeof name === 'string' ? untunableReason(name) : undefined;
  return reason ? [`model "${String(name)}" is not a preset KAITO can tune: ${reason}; choose one of ${modelPresetNames.join(', ')}`] : [];
}

/** A namespace the product may write to, or why not. */
export function namespaceProblem(namespace: string, field = 'namespace'): string | undefined {
  return protectedNamespaces.includes(namespace) ? `${field} "${namespace}" is a system namespace the product never writes to; use your own, e.g. aks-finetune` : undefined;
}

/**
 * Checks a request (any JSON value: runs also start from the Temporal UI) with its schema, then
 * what a schema cannot say (known presets and sizes, memory, bf16, image references...).
 * Every problem is reported at once. A Workspace given as text must be parsed first (the CLI,
 * the client and fineTune's parse activity do that).
 */
export function validateFineTuneRequest(input: unknown, workflowId: string): Validation {
  // A preset KAITO no longer tunes is said first: whatever else the file holds, it cannot run.
  const untunable = untunableModelProblem(input);
  const checked = checkInput(fineTuneRequestSchema, input ?? {}, 'request');
  if (!checked.ok) return { ok: false, problems: [...untunable, ...checked.problems] };
  const problems: string[] = [...untunable];
  const request = checked.value.workspace ? merge(checked.value, fromKaitoWorkspace(checked.value.workspace)) : checked.value;

  const model = request.model ? findModelPreset(request.model) : undefined;
  if (!request.model) problems.push(`model is required: one of ${modelPresetNames.join(', ')}`);
  else if (!model && untunable.length === 0) problems.push(`model "${request.model}" is not a preset KAITO can tune; choose one of ${modelPresetNames.join(', ')}`);

  const method = request.method ?? 'lora';
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

  const trainer = tuning.trainer ?? 'aks-finetune';
  if (trainer === 'kaito') {
    for (const field of ['checkpointEveryMinutes', 'checkpointsKept'] as const) {
      if (tuning[field] !== undefined) problems.push(`tuning.${field} needs tuning.trainer "aks-finetune": KAITO's fine_tuning.py saves no checkpoints and cannot resume`);
    }
  }

  const gpu = request.gpu ?? {};
  const vmSize = gpu.vmSize ? findVmSize(gpu.vmSize) : undefined;
  const memoryNeededGiB = model ? estimateTrainingMemoryGiB(model, method) : 0;
  if (!gpu.vmSize) problems.push('gpu.vmSize is required, e.g. Standard_NC24ads_A100_v4');
  else problems.push(...sizeProblems(gpu.vmSize, 'gpu.vmSize', model, method));
  gpu.candidates?.forEach((c, i) => problems.push(...sizeProblems(c.vmSize, `gpu.candidates[${i}].vmSize`, model, method)));
  if (gpu.nodePool !== undefined && (gpu.candidates || gpu.zones || gpu.fallback === 'fitting-sizes')) {
    problems.push('gpu.nodePool runs on an existing pool: gpu.candidates, gpu.zones and gpu.fallback choose where a new pool goes, so they do not go with it');
  }
  const anySpot = gpu.spot === true || gpu.candidates?.some((c) => c.spot ?? gpu.spot) === true;
  if (gpu.spotFallbackAfterMinutes !== undefined && !anySpot) problems.push('gpu.spotFallbackAfterMinutes needs spot: true (it is when Spot gives way to on-demand)');

  const dataset = request.dataset ?? {};
  const sources = (['urls', 'urlsSecret', 'image', 'volume'] as const).filter((k) => dataset[k] !== undefined);
  if (sources.length !== 1) {
    problems.push(`dataset needs exactly one of urls, urlsSecret, image or volume${sources.length ? ` (got ${sources.join(' and ')})` : ''}`);
  }
  dataset.urls?.forEach((url, i) => {
    const problem = datasetUrlProblem(url);
    if (problem) problems.push(`dataset.urls[${i}]: ${problem}`);
  });
  if (dataset.image !== undefined && !parseImageReference(dataset.image)) problems.push(`dataset.image "${dataset.image}" is not a valid image reference`);
  if (dataset.imagePullSecret !== undefined && dataset.image === undefined) {
    problems.push('dataset.imagePullSecret pulls dataset.image: set it only with dataset.image');
  }

  const runName = request.runName ?? defaultRunName(workflowId);
  if (!dnsLabelPattern.test(runName) || runName.length > 40) problems.push(`runName "${runName}" must be a DNS label of at most 40 characters (lowercase letters, digits, '-')`);

  const output = request.output?.image ? parseImageReference(request.output.image) : undefined;
  problems.push(...outputProblems(request.output ?? {}, output));
  if (request.output?.pushSecret !== undefined && (request.deploy || request.promote)) {
    problems.push(`output.pushSecret does not go with ${request.deploy ? 'deploy' : 'promote'}: inference pulls adapters with the cluster's identity (AcrPull), which a registry that needs the Secret does not accept`);
  }
  if (request.output?.volume !== undefined && (request.deploy || request.promote)) {
    problems.push(`output.volume does not go with ${request.deploy ? 'deploy' : 'promote'}: inference pulls the adapter as an image; use output.image to serve it`);
  }

  const namespace = request.namespace ?? planDefaults.namespace;
  const protectedProblem = namespaceProblem(namespace);
  if (protectedProblem) problems.push(protectedProblem);
  const deploy = request.deploy ? { name: request.deploy.name ?? runName, replicas: request.deploy.replicas ?? 1 } : undefined;
  if (deploy && deploy.name.length > 50) problems.push(`deploy.name "${deploy.name}" must be a DNS label of at most 50 characters`);
  const release = { policy: request.release?.policy ?? 'delete', idleGraceMinutes: request.release?.idleGraceMinutes ?? 0 };
  const promote = request.promote;
  if (promote) {
    if (deploy) problems.push('deploy and promote exclude each other: deploy gives the run its own Deployment, promote serves the adapter on a shared endpoint');
    problems.push(...suiteProblems(promote.suite).map((p) => `promote.${p}`));
    if (promote.endpoint.baseModel !== undefined && model && promote.endpoint.baseModel !== model.name) {
      problems.push(`promote.endpoint.baseModel ${promote.endpoint.baseModel} is not the run's model ${model.name}: an adapter serves only on its base model`);
    }
  }

  const budget = request.budget;
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
      config: trainingConfig(method, tuning, request.evaluation),
      configMap: tuning.configMap,
      tuningOverrides: tuning,
      evaluation: request.evaluation,
      output: request.output?.volume !== undefined ? { kind: 'volume', claimName: request.output.volume } : { kind: 'image', ...output!, tag: output!.tag ?? runName },
      pushSecret: request.output?.pushSecret,
      vmSize: vmSize!,
      spot: gpu.spot ?? false,
      gpuAttempts: gpuAttemptOrder({
        primary: { vmSize: vmSize!.name, spot: gpu.spot ?? false, zones: gpu.zones },
        candidates: gpu.candidates,
        policy: (gpu.fallback ?? 'listed') as GpuFallbackPolicy,
        spotFallbackAfterMinutes: gpu.spotFallbackAfterMinutes,
        fits: (size) => sizeProblems(size.name, '', model, method).length === 0,
        prices: request.prices ?? defaultPriceTable,
      }),
      capacityWaitMinutes: gpu.capacityWaitMinutes ?? planDefaults.capacityWaitMinutes,
      existingPool: request.gpu?.nodePool,
      reuseWarmPool: request.gpu?.reuseWarmPool ?? true,
      deploy,
      promote: promote && { ...promote, namespace: promote.namespace ?? namespace, endpoint: { ...promote.endpoint, baseModel: model!.name, vmSize: promote.endpoint.vmSize ?? vmSize!.name } },
      release,
      namespace,
      runName,
      memoryNeededGiB,
      prices: request.prices ?? defaultPriceTable,
      pollIntervalSeconds: request.pollIntervalSeconds ?? planDefaults.pollIntervalSeconds,
      budget,
      maxHours: tuning.maxHours ?? planDefaults.maxHours,
      podStartTimeoutMinutes: tuning.podStartTimeoutMinutes ?? planDefaults.podStartTimeoutMinutes,
      trainer: {
        kind: trainer,
        ...(trainer === 'aks-finetune'
          ? { checkpoint: { everyMinutes: tuning.checkpointEveryMinutes ?? planDefaults.checkpointEveryMinutes, kept: tuning.checkpointsKept ?? planDefaults.checkpointsKept } }
          : {}),
        stopOnDivergence: tuning.stopOnDivergence ?? true,
      },
    },
  };
}
