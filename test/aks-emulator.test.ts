// The AKS emulator's contract as the Azure SDK sees it, including the failures real ARM gives.
import { isRestError } from '@azure/core-rest-pipeline';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterName, containerService, emulator, poolNodes, resourceGroup, unique } from './support.js';

const pools = containerService.agentPools;
const gpuPool = { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User' } as const;
const fast = { updateIntervalInMs: 100 };
const created: string[] = [];
const newPool = () => {
  const name = `emu${unique(6)}`;
  created.push(name);
  return name;
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
