// GPUs when Azure is short of them, on the local stack: the emulator's quotas and capacity
// shortages (its usages API, QuotaExceeded at the PUT, allocation failures in the operation),
// and fineTune going down its attempts: quota skipped before any request, the next zone after a
// ZonalAllocationFailed, Spot giving way to on-demand, a quota taken between check and PUT, the
// effective batch on a size with more GPUs, a cluster at its node pool limit (the run waits), and
// a bounded failure that leaves no pool.
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { createComputeClient } from '../workers/clients.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type FineTuneStatus, fineTune } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { clusterName, config, containerService, core, emulator, eventually, poolOf, resourceGroup, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const compute = createComputeClient(config);
const a100 = 'Standard_NC24ads_A100_v4';
const h100x2 = 'Standard_NC80adis_H100_v5';

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 500 });
});

afterEach(async () => {
  await emulator.capacity({});
  await emulator.clearFaults();
});

/** Runs a fineTune with its own pool (no warm pool: the attempts must be made); the status, or the failure and the status. */
async function runFineTune(gpu: FineTuneRequest['gpu'], extra: Partial<FineTuneRequest> = {}) {
  const workflowId = fineTuneWorkflowId(`capacity-${unique()}`);
  await emulator.clearRequests();
  return temporal.withWorker(activities, async (taskQueue) => {
    const handle = await temporal.env.client.workflow.start(fineTune, {
      taskQueue,
      workflowId,
      args: [testFineTuneRequest({ ...extra, gpu: { reuseWarmPool: false, ...gpu } })],
    });
    const result = await handle.result().then(
      (status) => ({ status, error: undefined }),
      async (error: unknown) => ({ status: await handle.query<FineTuneStatus>('status'), error }),
    );
    return { ...result, workflowId };
  });
}

/** The PUTs of the run's pool, as the emulator logged them: the size and zones each asked for. */
async function poolPuts(pool: string) {
  return (await emulator.requests()).filter((r) => r.method === 'PUT' && r.path.endsWith(`/agentPools/${pool}`)).map((r) => ({ vmSize: r.vmSize, zones: r.availabilityZones, status: r.status }));
}

describe("the emulator's quotas and capacity", () => {
  it('serves the Compute usages API: each family and the regional totals, counting pools by their vCPUs', async () => {
    await emulator.capacity({ quotas: { standardNCADSA100v4Family: 48, lowPriorityCores: 10 } });
    const rows = [];
    for await (const u of compute.usage.list('eastus')) rows.push(u);
    expect(rows.find((u) => u.name.value === 'standardNCADSA100v4Family')).toMatchObject({ unit: 'Count', limit: 48, name: { localizedValue: 'Standard NCADSA100v4 Family vCPUs' } });
    expect(rows.find((u) => u.name.value === 'cores')).toMatchObject({ name: { localizedValue: 'Total Regional vCPUs' } });
    expect(rows.find((u) => u.name.value === 'lowPriorityCores')).toMatchObject({ limit: 10, currentValue: 0 });
  });

  it('refuses a PUT over a quota at once (400 QuotaExceeded, with the numbers), and fails the operation of a size without capacity', async () => {
    await emulator.capacity({ quotas: { lowPriorityCores: 10 }, unavailable: [{ vmSize: a100, zone: '2' }] });
    const pool = `q${unique(8)}`;
    const spot = { vmSize: a100, count: 1, mode: 'User' as const, scaleSetPriority: 'Spot' as const, scaleSetEvictionPolicy: 'Delete' as const, spotMaxPrice: -1 };
    const refused = await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, pool, spot, { updateIntervalInMs: 200 }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ statusCode: 400, code: 'QuotaExceeded' });
    expect((refused as Error).message).toMatch(/exceeding approved Low Priority Cores quota\. .*Current Limit: 10, Current Usage: 0, Additional Required: 24/);
    expect(await poolOf(pool)).toBeUndefined();

    const zonal = { vmSize: a100, count: 1, mode: 'User' as const, availabilityZones: ['2'] };
    const failed = await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, pool, zonal, { updateIntervalInMs: 200 }).catch((e: unknown) => e);
    expect((failed as Error).message).toMatch(/Code="ZonalAllocationFailed"/);
    expect(await poolOf(pool)).toMatchObject({ provisioningState: 'Failed', availabilityZones: ['2'] });
    await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 });

    // Another zone has capacity: the pool's nodes carry AKS's zone label, <region>-<zone>.
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, pool, { ...zonal, availabilityZones: ['3'] }, { updateIntervalInMs: 200 });
    const nodes = await core.listNode({ labelSelector: `kubernetes.azure.com/agentpool=${pool}` });
    expect(nodes.items.map((n) => n.metadata?.labels?.['topology.kubernetes.io/zone'])).toEqual(['eastus-3']);
    await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 });
  });

  it('reports maxAgentPools (AKS: 100) on the managed cluster and refuses a pool beyond it; an existing pool may still change', async () => {
    expect((await containerService.managedClusters.get(resourceGroup, clusterName)).maxAgentPools).toBe(100);
    const max = (await poolNames()).length + 1;
    await emulator.capacity({ maxAgentPools: max });
    const spec = { vmSize: a100, count: 1, mode: 'User' as const };
    const first = `l${unique(8)}`;
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, first, spec, { updateIntervalInMs: 200 });
    try {
      expect((await containerService.managedClusters.get(resourceGroup, clusterName)).maxAgentPools).toBe(max);
      const refused = await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, `l${unique(8)}`, spec, { updateIntervalInMs: 200 }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ statusCode: 400 });
      expect((refused as Error).message).toContain(`the maximum allowed is ${max}`);
      await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, first, { ...spec, count: 2 }, { updateIntervalInMs: 200 });
    } finally {
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, first, { updateIntervalInMs: 200 });
    }
  });
});

async function poolNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const p of containerService.agentPools.list(resourceGroup, clusterName)) names.push(p.name!);
  return names;
}

describe('fineTune when Azure is short of GPUs', () => {
  it('waits while the cluster has as many node pools as AKS allows, without a PUT, and gets its pool once another is released', async () => {
    await emulator.capacity({ maxAgentPools: (await poolNames()).length + 1 });
    const blocker = `b${unique(8)}`;
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, blocker, { vmSize: a100, count: 1, mode: 'User' }, { updateIntervalInMs: 200 });
    await emulator.clearRequests();
    const released = () => containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, blocker, { updateIntervalInMs: 200 });
    const status = await temporal.withWorker(activities, async (taskQueue) => {
      const handle = await temporal.env.client.workflow.start(fineTune, {
        taskQueue,
        workflowId: fineTuneWorkflowId(`pool-limit-${unique()}`),
        args: [testFineTuneRequest({ gpu: { reuseWarmPool: false, vmSize: a100, capacityWaitMinutes: 5 } })],
      });
      const waiting = await eventually(async () => {
        const s = await handle.query<FineTuneStatus>('status');
        return s.gpu?.attempts?.some((a) => a.code === 'NodePoolLimit') ? s : undefined;
      }, 'the run waiting for room for a node pool');
      expect(waiting.gpu!.attempts![0]).toMatchObject({ outcome: 'skipped', refusal: 'capacity', code: 'NodePoolLimit' });
      expect(waiting.gpu!.attempts![0]!.message).toMatch(/the cluster has \d+ node pools, the most AKS allows \(maxAgentPools \d+\)/);
      expect(await poolPuts(waiting.gpu!.pool)).toEqual([]);
      await released();
      return handle.result();
    }).finally(released);
    expect(status.phase).toBe('succeeded');
    expect(status.gpu!.attempts!.at(-1)).toMatchObject({ outcome: 'created' });
    expect(await poolOf(status.gpu!.pool)).toBeUndefined();
  });

  it('skips a size without quota before any request for it, and keeps the effective batch on the next size with 2 GPUs', async () => {
    await emulator.capacity({ quotas: { standardNCADSA100v4Family: 0 } });
    const { status, error } = await runFineTune({ vmSize: a100, candidates: [{ vmSize: h100x2 }] }, { tuning: { batchSize: 1, gradientAccumulationSteps: 4 } });
    expect(error).toBeUndefined();
    expect(status.phase).toBe('succeeded');
    expect(status.gpu).toMatchObject({ vmSize: h100x2, gpusPerNode: 2 });
    expect(status.gpu!.attempts).toEqual([
      expect.objectContaining({ vmSize: a100, outcome: 'skipped', refusal: 'quota', code: 'standardNCADSA100v4Family', message: expect.stringMatching(/0 of 0 vCPUs in use, Standard_NC24ads_A100_v4 needs 24; ask for at least 24/) }),
      expect.objectContaining({ vmSize: h100x2, outcome: 'created' }),
    ]);
    expect(status.gpu!.trainingChange).toBe('1 → 2 GPU(s): per-device batch 1 → 1, gradient accumulation 4 → 2, effective batch 4 kept');
    expect(await poolPuts(status.gpu!.pool)).toEqual([{ vmSize: h100x2, status: 201 }]);
    expect(await poolOf(status.gpu!.pool)).toBeUndefined();
  });

  it('moves on when the quota is taken between the check and the PUT (QuotaExceeded from the PUT itself)', async () => {
    // No limits at the check; the PUT then meets a quota another run took (a one-time refusal).
    await emulator.addFault({ kind: 'quota', method: 'PUT', times: 1 });
    const { status, error } = await runFineTune({ vmSize: a100, candidates: [{ vmSize: h100x2 }] });
    expect(error).toBeUndefined();
    expect(status.gpu!.attempts!.map((a) => [a.vmSize, a.outcome, a.code])).toEqual([
      [a100, 'refused', 'QuotaExceeded'],
      [h100x2, 'created', undefined],
    ]);
    expect(await poolPuts(status.gpu!.pool)).toEqual([{ vmSize: a100, status: 400 }, { vmSize: h100x2, status: 201 }]);
  });

  it('tries the next zone after a ZonalAllocationFailed, and its nodes are in that zone', async () => {
    await emulator.capacity({ unavailable: [{ vmSize: a100, zone: '1' }] });
    const { status, error } = await runFineTune({ vmSize: a100, zones: ['1', '2'] });
    expect(error).toBeUndefined();
    expect(status.gpu).toMatchObject({ vmSize: a100, zone: '2' });
    expect(status.gpu!.attempts!.map((a) => [a.zone, a.outcome, a.code])).toEqual([
      ['1', 'refused', 'ZonalAllocationFailed'],
      ['2', 'created', undefined],
    ]);
    expect(await poolPuts(status.gpu!.pool)).toEqual([
      { vmSize: a100, zones: ['1'], status: 201 },
      { vmSize: a100, zones: ['2'], status: 201 },
    ]);
  });

  it('gives Spot its time, then goes on demand (spotFallbackAfterMinutes)', async () => {
    await emulator.capacity({ unavailable: [{ vmSize: a100, spot: true }] });
    const { status, error } = await runFineTune({ vmSize: a100, spot: true, spotFallbackAfterMinutes: 0.2 });
    expect(error).toBeUndefined();
    expect(status.gpu).toMatchObject({ vmSize: a100, spot: false });
    // Spot keeps its place at the head of each round: refused once or more, then on demand.
    const attempts = status.gpu!.attempts!;
    const onDemand = attempts.at(-1)!;
    const spotAttempts = attempts.slice(0, -1);
    expect(spotAttempts.length).toBeGreaterThanOrEqual(1);
    for (const spot of spotAttempts) {
      expect(spot).toMatchObject({ spot: true, outcome: 'refused', code: 'AllocationFailed' });
    }
    expect(onDemand).toMatchObject({ spot: false, outcome: 'created' });
    expect(Date.parse(onDemand.at) - Date.parse(spotAttempts[0]!.at)).toBeGreaterThanOrEqual(12_000);
  });

  it('fails within its bound when no attempt gets GPUs, each attempt listed, and leaves no pool', async () => {
    await emulator.capacity({ unavailable: [{ vmSize: a100 }, { vmSize: h100x2 }] });
    const started = Date.now();
    const { status, error } = await runFineTune({ vmSize: a100, zones: ['1', '2'], candidates: [{ vmSize: h100x2 }], capacityWaitMinutes: 0.5 });
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('GpuCapacityUnavailable');
    expect(cause.message).toMatch(/^No GPU capacity within 0\.5 minutes \(looked for \d\): \d+ attempt\(s\)/);
    expect(cause.message).toContain('Standard_NC24ads_A100_v4 zone 1: refused ZonalAllocationFailed');
    expect(cause.message).toContain('Standard_NC80adis_H100_v5: refused AllocationFailed');
    expect(Date.now() - started).toBeLessThan(90_000);
    // Two rounds at least (15 s apart), each of the three attempts refused.
    expect(status.gpu!.attempts!.length).toBeGreaterThanOrEqual(6);
    expect(status.gpu!.attempts!.every((a) => a.outcome === 'refused' && a.refusal === 'capacity')).toBe(true);
    expect(await poolOf(status.gpu!.pool)).toBeUndefined();
    expect(await poolNames()).not.toContain(status.gpu!.pool);
  });
});
