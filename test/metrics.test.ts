// The worker's logs and metrics: a Runtime set up like the worker's (workers/telemetry.ts) with
// its Prometheus endpoint on a free loopback port and JSON log lines, one fineTune on the local
// stack with ARM throttling and failing once, one reaper pass, then the endpoint scraped over
// HTTP: Temporal's SDK metrics and the product's own, with their labels; and the log lines
// carry the run context.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { armOperation } from '../workers/arm-metrics.js';
import { runtimeOptions } from '../workers/telemetry.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { nodePoolName } from '../workflows/naming.js';
import { type ReaperResult, reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { clusterName, config, containerService, emulator, eventually, resourceGroup, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId, reapIdleGpuPoolsWorkflowId } from '../workflows/ids.js';

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const metricsAddress = `127.0.0.1:${await freeLoopbackPort()}`;
const logLines: string[] = [];
const temporal = useTemporal(runtimeOptions({ logFormat: 'json', logLevel: 'INFO', metricsAddress }, (line) => logLines.push(line)));
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parseExposition(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [, name, labelText = '', value] = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line)!;
      const labels = Object.fromEntries([...labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k, v]));
      return { name: name!, labels, value: Number(value) };
    });
}

const scrape = async () => parseExposition(await (await fetch(`http://${metricsAddress}/metrics`)).text());
/** Sum of the samples of `name` that have at least these labels; undefined when there is none. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return matching.length ? matching.reduce((sum, s) => sum + s.value, 0) : undefined;
}

const workflowId = fineTuneWorkflowId(`metrics-${unique()}`);
/** The run's pool: its name depends on the run id, known once the run is started. */
let pool: string;
// The pool stays (at 0 nodes) for the reaper pass to decide about.
// Its own pool, never a warm one another file left: the faults below are aimed at it.
const request = testFineTuneRequest({ release: { policy: 'scale-to-zero' }, gpu: { vmSize: 'Standard_NC24ads_A100_v4', reuseWarmPool: false } });
let status: FineTuneStatus;
let reaped: ReaperResult;

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  // Job times have one-second resolution: a trainer of a few seconds gives whole GPU-seconds used.
  await simulator.settings({ trainingMs: 3000 });
  // Started on a task queue no worker polls yet, so the faults are in place before it acts.
  const taskQueue = `test-${unique()}`;
  const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [request] });
  pool = nodePoolName('ft', { workflowId, runId: handle.firstExecutionRunId });
  await emulator.addFault({ kind: 'throttle', method: 'PUT', pool, retryAfterSeconds: 1 });
  await emulator.addFault({ kind: 'server-error', method: 'GET', pool });
  status = await temporal.withWorker(activities, () => handle.result(), taskQueue);
  reaped = await temporal.withWorker(activities, (taskQueue) =>
    temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue, workflowId: reapIdleGpuPoolsWorkflowId(`metrics-${unique()}`), args: [{ dryRun: true }] }),
  );
});

afterAll(async () => {
  await emulator.clearFaults();
  await simulator.settings({ trainingMs: 500 });
  await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 }).catch(() => undefined);
});

describe('the Prometheus endpoint', () => {
  it("serves Temporal's SDK metrics", async () => {
    const samples = await eventually(async () => {
      const s = await scrape();
      return total(s, 'temporal_workflow_completed', { workflow_type: 'fineTune' }) ? s : undefined;
    }, 'the fineTune completion on the endpoint');
    expect(total(samples, 'temporal_workflow_completed', { workflow_type: 'reapIdleGpuPools' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'temporal_activity_execution_latency_count', { activity_type: 'ensureNodePool' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'temporal_workflow_task_execution_latency_count')).toBeGreaterThan(0);
  });

  it('serves the product metrics: phases, GPU time per pool, reaper decisions, ARM throttles and retries', async () => {
    expect(status.phase).toBe('succeeded');
    const samples = await eventually(async () => {
      const s = await scrape();
      return total(s, 'aks_finetune_reaper_decisions') ? s : undefined;
    }, 'the reaper decisions on the endpoint');

    // Every phase the run entered (it starts in validating, which is not an entry).
    for (const phase of ['provisioning', 'preparing', 'training', 'pushing', 'releasing-gpus', 'cleaning-up', 'succeeded']) {
      expect(total(samples, 'aks_finetune_phase_entered', { phase, workflowType: 'fineTune' }), phase).toBeGreaterThanOrEqual(1);
    }

    const poolLabels = { pool, vm_size: 'Standard_NC24ads_A100_v4', spot: 'false' };
    const billed = total(samples, 'aks_finetune_gpu_billed_seconds', poolLabels)!;
    const used = total(samples, 'aks_finetune_gpu_used_seconds', poolLabels)!;
    const idle = total(samples, 'aks_finetune_gpu_idle_seconds', poolLabels)!;
    expect(used).toBeGreaterThanOrEqual(2); // the 3-second trainer on one GPU
    expect(billed).toBe(used + idle);
    // The status rounds GPU-minutes to hundredths: the counter agrees within that.
    expect(Math.abs(billed / 60 - status.gpu!.gpuMinutes)).toBeLessThanOrEqual(0.02);

    const decision = reaped.decisions.find((d) => d.pool === pool)!;
    expect(decision).toBeDefined();
    expect(total(samples, 'aks_finetune_reaper_decisions', { action: decision.action, workflowType: 'reapIdleGpuPools' })).toBeGreaterThanOrEqual(1);

    expect(total(samples, 'aks_finetune_arm_throttles', { operation: 'PUT agentPools' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'aks_finetune_arm_server_errors', { operation: 'GET agentPools', status: '500' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'aks_finetune_arm_retries', { operation: 'PUT agentPools' })).toBeGreaterThanOrEqual(1);
    expect(total(samples, 'aks_finetune_arm_retries', { operation: 'GET agentPools' })).toBeGreaterThanOrEqual(1);
  });
});

describe('ARM operation labels', () => {
  it('name the method and the last resource type, long-running operation polls included', () => {
    const cluster = 'https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c';
    expect(armOperation('PUT', `${cluster}/agentPools/gpu1?api-version=2025-01-01`)).toBe('PUT agentPools');
    expect(armOperation('GET', `${cluster}/agentPools?api-version=2025-01-01`)).toBe('GET agentPools');
    expect(armOperation('POST', `${cluster}/agentPools/gpu1/abort`)).toBe('POST abort');
    expect(armOperation('GET', 'https://management.azure.com/subscriptions/s/providers/Microsoft.ContainerService/locations/eastus/operations/op1')).toBe('GET operations');
  });
});

describe('the log lines', () => {
  const entries = () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>);

  it('are JSON with the run context: workflow id and type, step and phase, pool', () => {
    expect(entries()).toContainEqual(
      expect.objectContaining({ level: 'INFO', message: 'step started', step: 'train', phase: 'training', workflowId, workflowType: 'fineTune', time: expect.any(String) }),
    );
    expect(entries()).toContainEqual(expect.objectContaining({ message: 'GPU nodes ready', pool, workflowId }));
    expect(entries()).toContainEqual(expect.objectContaining({ message: 'GPU time', pool, workflowId }));
  });

  it('from activities carry the workflow id and the activity type', () => {
    expect(entries()).toContainEqual(
      expect.objectContaining({ level: 'WARN', message: 'ARM throttled', operation: 'PUT agentPools', retryAfter: '1', workflowId, activityType: 'ensureNodePool' }),
    );
  });
});
