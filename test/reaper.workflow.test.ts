// The idle-GPU reaper on the local stack: pools created through ARM, GPU pods scheduled onto
// their kwok nodes, decisions made by the real workflow with real activities.
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureReaperSchedule, reaperScheduleId } from '../scripts/setup-temporal.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type ReaperInput, type ReaperResult, reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { clusterName, config, containerService, core, emulator, eventually, resourceGroup, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const namespace = `reaper-${unique()}`;
const pools = containerService.agentPools;
const created: string[] = [];

async function createPool(tags: Record<string, string>): Promise<string> {
  const name = `rp${unique(8)}`;
  created.push(name);
  await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', tags }, { updateIntervalInMs: 100 });
  return name;
}
const managed = (extra: Record<string, string> = {}) => ({ 'aks-finetune.io/managed': 'true', ...extra });
const poolExists = (name: string) => pools.get(resourceGroup, clusterName, name).then(() => true, () => false);

async function startGpuPod(pool: string): Promise<string> {
  const name = `train-${unique()}`;
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        nodeSelector: { 'kubernetes.azure.com/agentpool': pool },
        containers: [{ name: 'train', image: 'trainer:test', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
      },
    },
  });
  await eventually(async () => ((await core.readNamespacedPod({ name, namespace })).status?.phase === 'Running' ? true : undefined), 'the GPU pod to run');
  return name;
}

async function reap(input: ReaperInput = {}): Promise<ReaperResult> {
  return temporal.withWorker(activities, (taskQueue) =>
    temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue, workflowId: `reaper-test-${unique()}`, args: [input] }),
  );
}
const decisionFor = (result: ReaperResult, pool: string) => result.decisions.find((d) => d.pool === pool);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await eventually(async () => (await core.listNamespacedServiceAccount({ namespace })).items.length > 0 || undefined, 'the default service account');
});

afterAll(async () => {
  for (const name of created) await pools.beginDeleteAndWait(resourceGroup, clusterName, name, { updateIntervalInMs: 100 }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('idle GPU reaper', () => {
  it('releases a managed pool once it has been idle for its grace period, not before', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0.05' }));
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'idle', reason: expect.stringMatching(/^idle 0\.0 of 0\.05 minutes$/) });
    expect(await poolExists(pool)).toBe(true);
    await pause(3500);
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released', reason: expect.stringContaining('deleted: idle') });
    expect(await poolExists(pool)).toBe(false);
  });

  it('leaves a pool with a running GPU pod alone, and releases it once the pod is gone', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0' }));
    const pod = await startGpuPod(pool);
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'busy', reason: `GPU pods: ${namespace}/${pod}` });
    expect(await poolExists(pool)).toBe(true);
    await core.deleteNamespacedPod({ name: pod, namespace, gracePeriodSeconds: 0 });
    await eventually(async () => ((await core.listNamespacedPod({ namespace })).items.length === 0 ? true : undefined), 'the pod to go');
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released' });
  });

  it('cancels a pending release when a GPU pod arrives during the grace period', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0.05' }));
    expect(decisionFor(await reap(), pool)?.action).toBe('idle');
    await startGpuPod(pool);
    await pause(3500);
    expect(decisionFor(await reap(), pool)?.action).toBe('busy');
    expect(await poolExists(pool)).toBe(true);
  });

  it('never touches a pool it does not manage', async () => {
    const pool = await createPool({ team: 'someone-else' });
    const result = await reap({ defaultGraceMinutes: 0 });
    expect(decisionFor(result, pool)).toBeUndefined();
    expect(await poolExists(pool)).toBe(true);
  });

  it('releases at once an idle pool whose run has ended (orphan sweep)', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/workflow-id': `ended-run-${unique()}`, 'aks-finetune.io/idle-grace-minutes': '60' }));
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released', reason: expect.stringMatching(/deleted: its run ended-run-\w+ has ended/) });
    expect(await poolExists(pool)).toBe(false);
  });

  it('scales a pool to zero when its release policy says so', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0', 'aks-finetune.io/release-policy': 'scale-to-zero' }));
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released', reason: expect.stringContaining('scaled to 0') });
    expect((await pools.get(resourceGroup, clusterName, pool)).count).toBe(0);
  });

  it('only reports in a dry run', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0' }));
    const result = await reap({ dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(decisionFor(result, pool)).toMatchObject({ action: 'would-release' });
    expect(await poolExists(pool)).toBe(true);
  });

  it('is scheduled by the Temporal set-up: created once, updated after, never overlapping', async () => {
    const options = { taskQueue: 'fine-tuning', intervalSeconds: 60, graceMinutes: 5 };
    try {
      expect(await ensureReaperSchedule(temporal.env.client, options)).toBe('created');
      expect(await ensureReaperSchedule(temporal.env.client, { ...options, intervalSeconds: 120 })).toBe('updated');
      const schedule = await temporal.env.client.schedule.getHandle(reaperScheduleId).describe();
      expect(schedule.spec.intervals?.[0]?.every).toBe(120_000);
      expect(schedule.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      expect(schedule.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reapIdleGpuPools', args: [{ defaultGraceMinutes: 5 }] });
    } finally {
      await temporal.env.client.schedule.getHandle(reaperScheduleId).delete().catch(() => undefined);
    }
  });
});
