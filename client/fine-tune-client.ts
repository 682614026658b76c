// The typed client for other services: start, follow, list, cancel and plan fineTune runs.
// Requests are validated here first, so a bad one fails before any workflow exists.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { type FineTuneInput, type FineTunePlan, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { parseSpecText, requestFromSpec, specSizeLimitBytes, SpecTextError } from '../domain/spec-text.js';
import { estimateCost } from '../domain/prices.js';
import { checkTuningConfig, tuningConfigKey } from '../domain/tuning-configmap.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { defaultTaskQueue, fineTuneWorkflowId } from '../workflows/ids.js';
import { describeRunFailure, type RunFailure, runFailure } from './run-failure.js';
import { fineTuneObjectNames } from '../workflows/naming.js';

export class FineTuneRequestError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid fineTune request:\n  - ${problems.join('\n  - ')}`);
  }
}

export interface StartOptions {
  /** Default: fine-tune-<runName or model>-<time>. Starting twice with one id starts one run. */
  workflowId?: string;
  taskQueue?: string;
}

/**
 * A spec file (YAML or JSON; a fineTune request or a KAITO Workspace, also inside a
 * multi-document file). Files over 256 KiB are refused before they are read in full.
 */
export function readFineTuneSpec(file: string): FineTuneInput {
  return parseFineTuneSpec(readSpecFile(file), file);
}

/**
 * A KAITO tuning ConfigMap file (kind ConfigMap with training_config.yaml, as KAITO's
 * examples/fine-tuning/ has one), checked offline for either method; undefined for any other file.
 */
export function checkTuningConfigMapFile(file: string): { name?: string; problems: string[] } | undefined {
  let value: unknown;
  try {
    value = parseSpecText(readSpecFile(file), file);
  } catch {
    return undefined; // not a ConfigMap file: readFineTuneSpec reports what is wrong with it
  }
  const configMap = value as { kind?: unknown; metadata?: { name?: string }; data?: Record<string, unknown> };
  const text = configMap?.kind === 'ConfigMap' ? configMap.data?.[tuningConfigKey] : undefined;
  if (typeof text !== 'string') return undefined;
  const checked = checkTuningConfig(text, undefined, `ConfigMap ${configMap.metadata?.name ?? '(unnamed)'}`);
  return { name: configMap.metadata?.name, problems: checked.ok ? [] : checked.problems };
}

/** A spec file's text, at most specSizeLimitBytes; unreadable or too large is a FineTuneRequestError. */
function readSpecFile(file: string): string {
  let text: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > specSizeLimitBytes) throw new FineTuneRequestError([`${file} is ${size} bytes; a spec may be at most ${specSizeLimitBytes} bytes (256 KiB)`]);
      const buffer = Buffer.alloc(size);
      text = buffer.subarray(0, readSync(fd, buffer, 0, size, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof FineTuneRequestError) throw err;
    throw new FineTuneRequestError([`${file} cannot be read: ${(err as Error).message}`]);
  }
  return text;
}

/** Spec text (YAML or JSON) into a request; syntax errors give the line and column. */
export function parseFineTuneSpec(text: string, source: string): FineTuneInput {
  try {
    return requestFromSpec(parseSpecText(text, source)) as FineTuneInput;
  } catch (err) {
    if (err instanceof SpecTextError) throw new FineTuneRequestError([err.message]);
    throw err;
  }
}

/** The request as it is sent: a Workspace given as text is parsed here, at the edge. */
export function withParsedWorkspace(request: FineTuneInput): FineTuneInput {
  if (typeof request?.workspace !== 'string') return request;
  try {
    return { ...request, workspace: parseSpecText(request.workspace, 'workspace') as FineTuneInput['workspace'] };
  } catch (err) {
    if (err instanceof SpecTextError) throw new FineTuneRequestError([err.message]);
    throw err;
  }
}

function defaultWorkflowId(request: FineTuneInput): string {
  const base = (typeof request?.runName === 'string' && request.runName) || (typeof request?.model === 'string' && request.model) || 'run';
  return fineTuneWorkflowId(`${base}-${new Date().toISOString().replace(/[:.]/g, '-').toLowerCase()}`);
}

/** Validates, then starts a run. A run already started under the same id is returned, not duplicated. */
export async function startFineTune(client: Client, input: FineTuneInput, options: StartOptions = {}): Promise<WorkflowHandle<typeof fineTune>> {
  const request = withParsedWorkspace(input);
  const workflowId = options.workflowId ?? defaultWorkflowId(request);
  const validation = validateFineTuneRequest(request, workflowId);
  if (!validation.ok) throw new FineTuneRequestError(validation.problems);
  try {
    return await client.workflow.start(fineTune, { taskQueue: options.taskQueue ?? defaultTaskQueue, workflowId, args: [request] });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId);
    throw err;
  }
}

/** A run that did not succeed: its message is the root cause (the ARM or Kubernetes message and the advice), not "Workflow execution failed". */
export class FineTuneFailedError extends Error {
  constructor(
    readonly workflowId: string,
    readonly failure: RunFailure,
    cause: unknown,
  ) {
    super(`fineTune ${workflowId} failed: ${describeRunFailure(failure)}`, { cause });
  }
}

/** The run's result; a failure is thrown as FineTuneFailedError with its root cause. */
export async function fineTuneResult(handle: WorkflowHandle<typeof fineTune>): Promise<FineTuneStatus> {
  try {
    return await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) throw new FineTuneFailedError(handle.workflowId, runFailure(err), err);
    throw err;
  }
}

export interface RunStatus {
  workflowId: string;
  /** Temporal's view: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, ... */
  execution: string;
  /** The run's own status (query), when it can be read. */
  status?: FineTuneStatus;
  /** Why a closed run did not succeed: the root cause, with its type. */
  failure?: RunFailure;
}

export async function getFineTuneStatus(client: Client, workflowId: string): Promise<RunStatus> {
  const handle = client.workflow.getHandle<typeof fineTune>(workflowId);
  const description = await handle.describe();
  const execution = description.status.name;
  // A closed run still answers queries (the worker replays it).
  const status = await handle.query(fineTuneStatusQuery).catch(() => undefined);
  const ended = execution !== 'RUNNING' && execution !== 'COMPLETED';
  const failure = ended ? await fineTuneResult(handle).then(() => undefined, (err: unknown) => (err instanceof FineTuneFailedError ? err.failure : runFailure(err))) : undefined;
  return { workflowId, execution, status, failure };
}

export interface RunFilter {
  model?: string;
  method?: string;
  phase?: string;
  repository?: string;
}

export interface RunSummary {
  workflowId: string;
  execution: string;
  startTime: Date;
  model?: string;
  method?: string;
  phase?: string;
  repository?: string;
}

const quote = (value: string) => `'${value.replace(/'/g, "\\'")}'`;

/** Recent runs from visibility, newest first, filtered by the search attributes. */
export async function listFineTunes(client: Client, filter: RunFilter = {}, limit = 20): Promise<RunSummary[]> {
  const clauses = [`WorkflowType = 'fineTune'`];
  if (filter.model) clauses.push(`BaseModel = ${quote(filter.model)}`);
  if (filter.method) clauses.push(`TuningMethod = ${quote(filter.method)}`);
  if (filter.phase) clauses.push(`PipelinePhase = ${quote(filter.phase)}`);
  if (filter.repository) clauses.push(`AdapterRepository = ${quote(filter.repository)}`);
  const runs: RunSummary[] = [];
  for await (const run of client.workflow.list({ query: clauses.join(' AND ') })) {
    const attr = (name: string) => (run.searchAttributes[name] as string[] | undefined)?.[0];
    runs.push({
      workflowId: run.workflowId,
      execution: run.status.name,
      startTime: run.startTime,
      model: attr('BaseModel'),
      method: attr('TuningMethod'),
      phase: attr('PipelinePhase'),
      repository: attr('AdapterRepository'),
    });
    if (runs.length >= limit) break;
  }
  return runs;
}

export async function cancelFineTune(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).cancel();
}

export interface FineTuneDryRun {
  plan: FineTunePlan;
  nodePool: { name: string; action: 'create' | 'use existing'; vmSize: string; spot: boolean; gpusPerNode: number };
  kubernetesObjects: string[];
  estimate: { trainingHours: number; gpuHours: number; cost?: number; currency: string; pricesAsOf: string };
}

/** What a run would do, computed without touching ARM, the cluster or the registry. */
export function planFineTune(input: FineTuneInput, options: { workflowId?: string; trainingHours?: number } = {}): FineTuneDryRun {
  const workflowId = options.workflowId ?? defaultWorkflowId(input);
  const validation = validateFineTuneRequest(withParsedWorkspace(input), workflowId);
  if (!validation.ok) throw new FineTuneRequestError(validation.problems);
  const { plan } = validation;
  const hours = options.trainingHours ?? 1;
  const names = fineTuneObjectNames(plan.runName, '<run tag>');
  return {
    plan,
    nodePool: {
      // The run id is Temporal's, known once the run starts: the name is 'ft' + a hash of both ids.
      name: plan.existingPool ?? 'ft<hash of workflow id and run id>',
      action: plan.existingPool ? 'use existing' : 'create',
      vmSize: plan.vmSize.name,
      spot: plan.spot,
      gpusPerNode: plan.vmSize.gpus,
    },
    kubernetesObjects: [
      `ConfigMap ${plan.namespace}/${names.configMap}`,
      `PersistentVolumeClaim ${plan.namespace}/${names.results}`,
      `Job ${plan.namespace}/${names.trainJob()}`,
      `Job ${plan.namespace}/${plan.output.kind === 'image' ? names.pushJob(1) : names.copyJob(1)}`,
      ...(plan.deploy ? [`Deployment ${plan.namespace}/${plan.deploy.name}`, `Service ${plan.namespace}/${plan.deploy.name}`] : []),
    ],
    estimate: {
      trainingHours: hours,
      gpuHours: hours * plan.vmSize.gpus,
      cost: estimateCost(plan.prices, plan.vmSize.name, plan.spot, 1, hours * 60),
      currency: plan.prices.currency,
      pricesAsOf: plan.prices.asOf,
    },
  };
}
