// The AKS emulator's contract as the Azure SDK sees it, including the failures real ARM gives.
import { isRestError } from '@azure/core-rest-pipeline';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NodePoolState } from '../activities/azure/node-pools.js';
import { createWorkerActivities } from '../workers/worker.js';
import { clusterName, config, containerService, emulator, poolNodes, resourceGroup, unique } from './support.js';

const pools = containerService.agentPools;
const gpuPool = { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User' } as const;
const fast = { updateIntervalInMs: 100 };
const created: string[] = [];
const newPool = () => {
  const name = `emu${unique(6)}`;
  created.push(name);
  return name;
};
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const activity = new MockActivityEnvironment();
const specOf = (name: string, spot = false) => ({ name, vmSize: gpuPool.vmSize, count: 1, spot, taints: ['sku=gpu:NoSchedule'], labels: {}, tags: { team: 'ml' } });
const slowly = async <T>(work: () => Promise<T>): Promise<T> => {
  await emulator.settings({ provisioningDelayMs: 2000, deletionDelayMs: 1000 });
  try {
    return await work();
  } finally {
    await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  }
};
const requestsFor = async (pool: string) => (await emulator.requests()).filter((r) => r.path.endsWith(`/agentPools/${pool}`));

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
});

afterEach(async () => {
  await emulator.clearFaults();
  for (const name of created.splice(0)) await pools.beginDeleteAndWait(resourceGroup, clusterName, name, fast).catch(() => undefined);
});

describe('AKS emulator: agent pool contract', () => {
  it('lists pools and reads one back with provisioning and power state', async () => {
    const name = newPool();
    await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast);
    const pool = await pools.get(resourceGroup, clusterName, name);
    expect(pool).toMatchObject({ name, provisioningState: 'Succeeded', powerState: { code: 'Running' }, scaleSetPriority: 'Regular' });
    const names: string[] = [];
    for await (const p of pools.list(resourceGroup, clusterName)) names.push(p.name ?? '');
    expect(names).toContain(name);
  });

  it('answers a delete of a missing pool with 204, which the SDK treats as done', async () => {
    await expect(pools.beginDeleteAndWait(resourceGroup, clusterName, `gone${unique()}`, fast)).resolves.toBeUndefined();
  });

  it('refuses a second operation while one is in progress (409 OperationNotAllowed)', async () => {
    const name = newPool();
    await emulator.settings({ provisioningDelayMs: 2000 });
    try {
      const first = pools.createOrUpdate(resourceGroup, clusterName, name, gpuPool, fast);
      await first.submitted();
      const second = pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...gpuPool, count: 2 }, fast);
      await expect(second).rejects.toMatchObject({ statusCode: 409, code: 'OperationNotAllowed' });
      await first;
    } finally {
      await emulator.settings({ provisioningDelayMs: 300 });
    }
  });

  it('rejects invalid pool names, unknown VM sizes and VM size changes as ARM does', async () => {
    await expect(pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, 'Bad_Name', gpuPool, fast)).rejects.toMatchObject({
      statusCode: 400,
      code: 'InvalidParameter',
    });
    const name = newPool();
    await expect(pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...gpuPool, vmSize: 'Standard_Nope' }, fast)).rejects.toMatchObject({
      statusCode: 400,
      code: 'VMSizeNotSupported',
    });
    await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast);
    await expect(
      pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...gpuPool, vmSize: 'Standard_NC4as_T4_v3' }, fast),
    ).rejects.toMatchObject({ statusCode: 400, code: 'PropertyChangeNotAllowed' });
  });
});

describe('AKS emulator: failure knobs reach the SDK as real ARM failures', () => {
  it('quota: the PUT fails with 400 QuotaExceeded and nothing is created', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'quota', method: 'PUT', pool: name });
    const error = await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast).catch((e: unknown) => e);
    expect(isRestError(error)).toBe(true);
    expect(error).toMatchObject({ statusCode: 400, code: 'QuotaExceeded' });
    expect((error as Error).message).toMatch(/quota/i);
    await expect(pools.get(resourceGroup, clusterName, name)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('throttling: the SDK waits for Retry-After, then retries and succeeds', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'throttle', method: 'PUT', pool: name, retryAfterSeconds: 2 });
    const pool = await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast);
    expect(pool.provisioningState).toBe('Succeeded');
    const puts = (await requestsFor(name)).filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.status)).toEqual([429, 201]);
    expect(puts[1]!.at - puts[0]!.at).toBeGreaterThanOrEqual(1900);
  });

  it('5xx: the SDK retries server errors and succeeds', async () => {
    const name = newPool();
    await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast);
    await emulator.addFault({ kind: 'server-error', method: 'GET', pool: name, times: 2 });
    const pool = await pools.get(resourceGroup, clusterName, name);
    expect(pool.name).toBe(name);
    const gets = (await requestsFor(name)).filter((r) => r.method === 'GET').slice(-3);
    expect(gets.map((r) => r.status)).toEqual([500, 500, 200]);
  });

  it('capacity: the operation is accepted, then fails with AllocationFailed and creates no nodes', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'capacity', pool: name });
    const error = await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/AllocationFailed/);
    expect((await pools.get(resourceGroup, clusterName, name)).provisioningState).toBe('Failed');
    expect(await poolNodes(name)).toEqual([]);
  });
});

describe('AKS emulator: what real AKS returns and enforces', () => {
  it('returns nodeImageVersion, maxPods, upgradeSettings, Scaling while scaling, and the spot label and taint', async () => {
    const name = newPool();
    const spot = { ...gpuPool, scaleSetPriority: 'Spot', scaleSetEvictionPolicy: 'Delete', spotMaxPrice: -1 } as const;
    const pool = await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, spot, fast);
    expect(pool.nodeImageVersion).toMatch(/^AKSUbuntu-/);
    expect(pool).toMatchObject({ maxPods: 110, upgradeSettings: { maxSurge: '10%' } });
    expect(pool.nodeLabels).toEqual({ 'kubernetes.azure.com/scalesetpriority': 'spot' });
    expect(pool.nodeTaints).toEqual(['kubernetes.azure.com/scalesetpriority=spot:NoSchedule']);
    await slowly(async () => {
      const scaling = pools.createOrUpdate(resourceGroup, clusterName, name, { ...spot, count: 2 }, fast);
      await scaling.submitted();
      expect((await pools.get(resourceGroup, clusterName, name)).provisioningState).toBe('Scaling');
      await scaling;
    });
    expect((await pools.get(resourceGroup, clusterName, name)).provisioningState).toBe('Succeeded');
  });

  it('enforces the Spot rules: spotMaxPrice -1 or > 0, eviction policy Delete or Deallocate, priority fixed', async () => {
    const name = newPool();
    const spot = { ...gpuPool, scaleSetPriority: 'Spot' } as const;
    for (const wrong of [{ spotMaxPrice: 0 }, { spotMaxPrice: -2 }, { scaleSetEvictionPolicy: 'Evict' }]) {
      await expect(pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...spot, ...wrong }, fast)).rejects.toMatchObject({
        statusCode: 400,
        code: 'InvalidParameter',
      });
    }
    await expect(pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...gpuPool, spotMaxPrice: 0.5 }, fast)).rejects.toMatchObject({
      statusCode: 400,
      code: 'InvalidParameter',
    });
    await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...spot, spotMaxPrice: 0.5, scaleSetEvictionPolicy: 'Deallocate' }, fast);
    await expect(pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { ...gpuPool, scaleSetPriority: 'Regular' }, fast)).rejects.toMatchObject({
      statusCode: 400,
      code: 'PropertyChangeNotAllowed',
    });
  });

  it('a DELETE preempts a create in progress (AKSOperationPreemptedByDelete), and a second DELETE is accepted', async () => {
    const name = newPool();
    await slowly(async () => {
      const create = pools.createOrUpdate(resourceGroup, clusterName, name, gpuPool, fast);
      await create.submitted();
      const first = pools.delete(resourceGroup, clusterName, name, fast);
      await first.submitted();
      const second = pools.delete(resourceGroup, clusterName, name, fast);
      await second.submitted();
      await expect(create.pollUntilDone()).rejects.toThrow(/AKSOperationPreemptedByDelete/);
      await Promise.all([first, second]);
    });
    const deletes = (await requestsFor(name)).filter((r) => r.method === 'DELETE');
    expect(deletes.map((r) => r.status)).toEqual([202, 202]);
    await expect(pools.get(resourceGroup, clusterName, name)).rejects.toMatchObject({ statusCode: 404 });
    expect(await poolNodes(name)).toEqual([]);
  });

  it('deleteNodePool releases a pool still being created, without waiting for the create', async () => {
    const name = newPool();
    await slowly(async () => {
      const create = pools.createOrUpdate(resourceGroup, clusterName, name, gpuPool, fast);
      await create.submitted();
      expect(await activity.run(activities.deleteNodePool, name, {})).toBe(true);
      await expect(create.pollUntilDone()).rejects.toThrow(/AKSOperationPreemptedByDelete/);
    });
    await expect(pools.get(resourceGroup, clusterName, name)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('the worker PUTs only the fields it means to set, never what a GET returned', async () => {
    const name = newPool();
    await activity.run(activities.ensureNodePool, specOf(name, true));
    const { eTag } = await pools.get(resourceGroup, clusterName, name);
    expect(await activity.run(activities.claimNodePool, name, eTag!, { owner: 'run-2' })).toBe(true);
    expect(await activity.run(activities.scaleNodePoolToZero, name, {})).toBe(true);
    const puts = (await requestsFor(name)).filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(3);
    const readOnly = ['nodeImageVersion', 'provisioningState', 'eTag', 'powerState', 'currentOrchestratorVersion', 'upgradeSettings', 'maxPods'];
    for (const put of puts) expect(put.propertiesSent?.filter((k) => readOnly.includes(k))).toEqual([]);
    expect((await pools.get(resourceGroup, clusterName, name)).tags).toMatchObject({ team: 'ml', owner: 'run-2' });
  });
});

describe('AKS emulator: throttling, capacity and preemption as AKS reports them, classified by the activities', () => {
  it('throttling: 429 Throttled with Retry-After; the SDK waits each one out, then gives up with the code', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'throttle', method: 'GET', pool: name, retryAfterSeconds: 1, times: 4 });
    const error = await pools.get(resourceGroup, clusterName, name).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 429, code: 'Throttled' });
    const gets = (await requestsFor(name)).filter((r) => r.method === 'GET');
    expect(gets.map((r) => r.status)).toEqual([429, 429, 429, 429]);
    await expect(emulator.addFault({ kind: 'throttle', retryAfterSeconds: 61 })).rejects.toThrow(/retryAfterSeconds/);
  });

  it('capacity: the operation fails with AKS wrapping ZonalAllocationFailed; ensureNodePool retries it as GpuCapacityUnavailable', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'capacity', pool: name, subcode: 'ZonalAllocationFailed' });
    const sdkError = await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, gpuPool, fast).catch((e: unknown) => e);
    expect((sdkError as Error).message).toMatch(/ReconcileVMSSAgentPoolFailed.*Code="ZonalAllocationFailed"/);
    await emulator.addFault({ kind: 'capacity', pool: name, subcode: 'AllocationFailed' });
    const failure = await activity.run(activities.ensureNodePool, specOf(name)).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'GpuCapacityUnavailable', nonRetryable: false });
    expect((failure as Error).message).toMatch(/no Standard_NC24ads_A100_v4 capacity.*Other zones, Spot or on-demand, another GPU size or another region/);
    // The retry Temporal makes gets the pool once capacity is back.
    expect(await activity.run(activities.ensureNodePool, specOf(name))).toMatchObject({ provisioningState: 'Succeeded', adopted: true });
  });

  it('preemption: the operation is accepted, then fails with AKSOperationPreempted naming the newer operation; the retry gets the pool', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'preemption', pool: name });
    const failure = await activity.run(activities.ensureNodePool, specOf(name)).catch((e: unknown) => e);
    expect((failure as Error).message).toMatch(/AKSOperationPreempted|preempted by another operation with ID [0-9a-f-]{36}/);
    expect(await activity.run(activities.ensureNodePool, specOf(name))).toMatchObject({ provisioningState: 'Succeeded', adopted: true });
  });

  it('creates in flight together are followed on one shared read of the cluster per poll interval, and each operation is polled once, at its end', async () => {
    const names = [newPool(), newPool(), newPool(), newPool()];
    await emulator.clearRequests();
    const states = await slowly(() => Promise.all(names.map((name) => new MockActivityEnvironment().run(activities.ensureNodePool, specOf(name)) as Promise<NodePoolState>)));
    expect(states.map((s) => s.provisioningState)).toEqual(['Succeeded', 'Succeeded', 'Succeeded', 'Succeeded']);
    const requests = await emulator.requests();
    const operationPolls = requests.filter((r) => r.method === 'GET' && /\/operations\//.test(r.path));
    const clusterReads = requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/managedClusters/${clusterName}`));
    // 2 s of provisioning at a 200 ms interval: a poll every 200 ms would be some 40 operation polls.
    expect(operationPolls.length).toBeLessThanOrEqual(names.length * 2);
    expect(clusterReads.length).toBeGreaterThan(0);
    expect(clusterReads.length).toBeLessThanOrEqual(2_000 / 200 + 3);
  });

  it('a retried ensureNodePool adopts the create in flight (its worker died following it) without a second PUT', async () => {
    const name = newPool();
    await slowly(async () => {
      // The lost attempt: its PUT went through, nobody follows the operation any more.
      await pools.beginCreateOrUpdate(resourceGroup, clusterName, name, { ...gpuPool, tags: specOf(name).tags }, fast);
      expect(await activity.run(activities.ensureNodePool, specOf(name))).toMatchObject({ provisioningState: 'Succeeded', adopted: true });
    });
    expect((await requestsFor(name)).filter((r) => r.method === 'PUT')).toHaveLength(1);
  });

  it('a size the region does not offer: a synchronous 400, which ensureNodePool fails at once with advice', async () => {
    const name = newPool();
    await emulator.addFault({ kind: 'sku-not-available', pool: name });
    const failure = await activity.run(activities.ensureNodePool, specOf(name)).catch((e: unknown) => e);
    expect(failure).toMatchObject({ type: 'GpuSizeNotOffered', nonRetryable: true });
    expect((failure as Error).message).toMatch(/does not offer Standard_NC24ads_A100_v4 .*az vm list-skus/);
    await expect(pools.get(resourceGroup, clusterName, name)).rejects.toMatchObject({ statusCode: 404 });
  });
});
