// The typed client of endpoints: create one (or find the one that exists), describe it, and send
// it the Updates the CLI and other workflows' activities send. Every Update's validator runs in
// the endpoint workflow; a refused one throws here with the validator's message.
import { type Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { parseEndpointInput } from '../domain/endpoint.js';
import { endpoint } from '../workflows/endpoint.js';
import * as api from '../workflows/endpoint-api.js';
import type { EndpointDescription, EndpointInput, LoadCandidateRequest } from '../workflows/endpoint-api.js';
import { defaultTaskQueue, endpointWorkflowId } from '../workflows/ids.js';

export const endpointHandle = (client: Client, name: string): WorkflowHandle<typeof endpoint> => client.workflow.getHandle<typeof endpoint>(endpointWorkflowId(name));

/**
 * Starts the endpoint's workflow; when it already runs, returns its handle (the first creation
 * wins; the spec of a running endpoint is not changed here). The spec is checked first, so a bad
 * one fails before any workflow exists.
 */
export async function createEndpoint(
  client: Client,
  input: EndpointInput,
  options: { taskQueue?: string } = {},
): Promise<{ handle: WorkflowHandle<typeof endpoint>; created: boolean }> {
  parseEndpointInput(input.spec, input.namespace);
  const workflowId = endpointWorkflowId(input.spec.name);
  try {
    const handle = await client.workflow.start(endpoint, { workflowId, taskQueue: options.taskQueue ?? defaultTaskQueue, args: [input] });
    return { handle, created: true };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle: client.workflow.getHandle<typeof endpoint>(workflowId), created: false };
    throw err;
  }
}

export const describeEndpoint = (client: Client, name: string): Promise<EndpointDescription> => endpointHandle(client, name).query(api.describeEndpointQuery);

/** Loads an adapter image (by digest) on every replica; the id makes a retried call load it once. */
export const loadEndpointCandidate = (client: Client, name: string, request: LoadCandidateRequest, updateId?: string) =>
  endpointHandle(client, name).executeUpdate(api.loadCandidateUpdate, { args: [request], updateId });

export const promoteEndpointVersion = (client: Client, name: string, versionName: string, updateId?: string) =>
  endpointHandle(client, name).executeUpdate(api.promoteUpdate, { args: [{ versionName }], updateId });

export const rollbackEndpointAlias = (client: Client, name: string, alias: string, updateId?: string) =>
  endpointHandle(client, name).executeUpdate(api.rollbackUpdate, { args: [{ alias }], updateId });

export const unloadEndpointVersion = (client: Client, name: string, versionName: string, updateId?: string) =>
  endpointHandle(client, name).executeUpdate(api.unloadUpdate, { args: [{ versionName }], updateId });

/** A replica count, `zero` (Deployment to 0, pool released) or `wake`. */
export function scaleEndpoint(client: Client, name: string, to: number | 'zero' | 'wake'): Promise<void> {
  const request = to === 'zero' ? { toZero: true as const } : to === 'wake' ? { wake: true as const } : { replicas: to };
  return endpointHandle(client, name).executeUpdate(api.scaleUpdate, { args: [request] });
}

/** Tears the endpoint down and waits until its workflow has ended. */
export async function retireEndpoint(client: Client, name: string): Promise<void> {
  const handle = endpointHandle(client, name);
  await handle.executeUpdate(api.retireUpdate, { args: [] });
  await handle.result();
}

/** The describe query as lines for a terminal: aliases → version → image, rollback targets, loaded versions, scale, cold starts, savings. */
export function renderEndpoint(d: EndpointDescription, lineageByAlias: Record<string, string[]> = {}): string {
  const lines = [
    `${d.name} (${d.namespace}): ${d.baseModel} on ${d.vmSize}, ${d.scale === 'running' ? `${d.replicas} replica(s)` : 'scaled to zero'}, pool ${d.pool}, generation ${d.generation}`,
  ];
  for (const a of d.aliases) {
    lines.push(`  ${a.alias} → ${a.versionName} ${a.image ?? a.digest ?? ''}${a.rollbackTo ? ` (rollback to ${a.rollbackTo})` : ''}`);
    for (const line of lineageByAlias[a.alias] ?? []) lines.push(`      ${line}`);
  }
  if (d.aliases.length === 0) lines.push('  no alias served yet');
  lines.push(`  loaded: ${d.loaded.join(', ') || 'none'}`);
  if (d.candidates.length > 0) lines.push(`  candidates (each holds a slot until promoted or unloaded): ${d.candidates.join(', ')}`);
  lines.push(`  promotions ${d.counters.promotions}, rollbacks ${d.counters.rollbacks}, cold starts ${d.counters.coldStarts}${d.coldStartSeconds.length ? ` (last ${d.coldStartSeconds.at(-1)!.toFixed(1)} s)` : ''}`);
  lines.push(`  idle ${d.counters.idleMinutesSaved.toFixed(1)} min scaled to zero: ${d.gpuMinutesSaved.toFixed(1)} GPU-minutes saved`);
  return lines.join('\n');
}
