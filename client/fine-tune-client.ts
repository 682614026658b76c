// The typed client for other services: start, follow, list, cancel and plan fineTune runs.
// Requests are validated here first, so a bad one fails before any workflow exists.
import { type Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { type FineTunePlan, type FineTuneRequest, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { estimateCost } from '../domain/prices.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
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

function defaultWorkflowId(request: FineTuneRequest): string {
  const base = request.runName ?? request.model ?? 'run';
  return `fine-tune-${base}-${new Date().toISOString().replace(/[:.]/g, '-').toLowerCase()}`;
}

/** Validates, then starts a run. A run already started under the same id is returned, not duplicated. */
export async function startFineTune(client: Client, request: FineTuneRequest, options: StartOptions = {}): Promise<WorkflowHandle<typeof fineTune>> {
  const workflowId = options.workflowId ?? defaultWorkflowId(request);
  const validation = validateFineTuneRequest(request, workflowId);
  if (!validation.ok) throw new FineTuneRequestError(validation.problems);
  try {
    return await client.workflow.start(fineTune, { taskQueue: options.taskQueue ?? 'fine-tuning', workflowId, args: [request] });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId);
    throw err;
  }
}

export interface RunStatus {
  workflowId: string;
  /** Temporal's view: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, ... */
  execution: string;
  /** The run's own status (query), when it can be read. */
  status?: FineTuneStatus;
  failure?: string;
}

export async function getFineTuneStatus(client: Client, workflowId: string): Promise<RunStatus> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const execution = description.status.name;
  // A closed run still answers queries (the worker replays it).
  const status = await handle.query(fineTuneStatusQuery).catch(() => undefined);
  const failure =
    execution === 'FAILED' ? await handle.result().then(() => undefined, (err: Error) => (err.cause instanceof Error ? err.cause.message : err.message)) : undefined;
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
export function planFineTune(request: FineTuneRequest, options: { workflowId?: string; trainingHours?: number } = {}): FineTuneDryRun {
  const workflowId = options.workflowId ?? defaultWorkflowId(request);
  const validation = validateFineTuneRequest(request, workflowId);
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
      `Job ${plan.namespace}/${names.pushJob(1)}`,
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
