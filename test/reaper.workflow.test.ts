// The idle-GPU reaper on the local stack: pools created through ARM, GPU pods scheduled onto
// their kwok nodes, decisions made by the real workflow with real activities.
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureReaperSchedule } from '../scripts/setup-temporal.js';
import { runLabelValue } from '../domain/hash.js';
import type { RunOwner } from '../domain/run-identity.js';
import { createWorkerActivities } from '../workers/worker.js';
import { type ReaperInput, type ReaperResult, reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { clusterName, config, containerService, core, emulator, eventually, resourceGroup, unique, createRunNamespace } from './support.js';
import { useTemporal } from './temporal.js';
import { defaultTaskQueue, fineTuneWorkflowId, reapIdleGpuPoolsWorkflowId, reaperScheduleId } from '../workflows/ids.js';

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

let lastReaper: string | undefined;
async function reap(input: ReaperInput = {}): Promise<ReaperResult> {
  lastReaper = reapIdleGpuPoolsWorkflowId(`test-${unique()}`);
  const workflowId = lastReaper;
  return temporal.withWorker(activities, (taskQueue) => temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue, workflowId, args: [input] }));
}

const openRuns: RunOwner[] = [];
/** A run that stays open (until terminated): a workflow on a task queue no worker polls. */
async function openRun(workflowId = fineTuneWorkflowId(`owner-${unique()}`)): Promise<RunOwner> {
  const handle = await temporal.env.client.workflow.start('fineTune', { taskQueue: `nobody-${unique()}`, workflowId, args: [{}] });
  openRuns.push({ workflowId, runId: handle.firstExecutionRunId });
  return openRuns.at(-1)!;
}
/** A run that completed: a reaper in dry-run mode. */
async function completedRun(): Promise<RunOwner> {
  await reap({ dryRun: true });
  const { workflowId, runId } = await temporal.env.client.workflow.getHandle(lastReaper!).describe();
  return { workflowId, runId };
}
const ownerTags = (run: RunOwner) => ({ 'aks-finetune.io/workflow-id': run.workflowId, 'aks-finetune.io/run-id': run.runId });
const ownedMetadata = (run: RunOwner) => ({
  name: `obj-${unique()}`,
  labels: { 'aks-finetune.io/run': runLabelValue(run.workflowId), 'aks-finetune.io/run-id': run.runId },
  annotations: { 'aks-finetune.io/workflow-id': run.workflowId },
});
async function labelledConfigMap(run: RunOwner): Promise<string> {
  const created = await core.createNamespacedConfigMap({ namespace, body: { metadata: ownedMetadata(run) } });
  return `ConfigMap ${namespace}/${created.metadata!.name}`;
}
async function labelledService(run: RunOwner): Promise<string> {
  const created = await core.createNamespacedService({ namespace, body: { metadata: ownedMetadata(run), spec: { ports: [{ port: 80 }] } } });
  return `Service ${namespace}/${created.metadata!.name}`;
}
const decisionFor = (result: ReaperResult, pool: string) => result.decisions.find((d) => d.pool === pool);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await createRunNamespace(namespace);
  await eventually(async () => (await core.listNamespacedServiceAccount({ namespace })).items.length > 0 || undefined, 'the default service account');
});

afterAll(async () => {
  for (const run of openRuns) await temporal.env.client.workflow.getHandle(run.workflowId, run.runId).terminate('test over').catch(() => undefined);
  for (const name of created) await pools.beginDeleteAndWait(resourceGroup, clusterName, name, { updateIntervalInMs: 100 }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('idle GPU reaper', () => {
  it('releases a managed pool once it has been idle for its grace period, not before', async () => {
    const pool = await createPool(managed({ 'aks-finetune.io/idle-grace-minutes': '0.05' }));
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'idle', reason: expect.stringMatching(/^idle 0\.0 of 0\.05 minutes$/) });
    expect(await poolExists(pool)).toBe(true);
    await pause(3500);
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released', reason: expect.stringMatching(/^deleted: no owner, idle [0-9.]+ minutes, grace 0\.05$/) });
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

  it('keeps the pool of an open run, idle or not, and releases it once the run has ended (orphan sweep)', async () => {
    const run = await openRun();
    const pool = await createPool(managed({ ...ownerTags(run), 'aks-finetune.io/idle-grace-minutes': '0' }));
    expect(decisionFor(await reap({ defaultGraceMinutes: 0 }), pool)).toMatchObject({ action: 'kept', reason: `its run ${run.workflowId} (${run.runId}) is open` });
    expect(await poolExists(pool)).toBe(true);
    await temporal.env.client.workflow.getHandle(run.workflowId, run.runId).terminate('the test ends the run');
    await temporal.closedInVisibility(run.workflowId);
    expect(decisionFor(await reap(), pool)).toMatchObject({ action: 'released', reason: expect.stringMatching(/^deleted: its run \S+ \(\S+\) has ended, idle 0\.0 minutes, grace 0$/) });
    expect(await poolExists(pool)).toBe(false);
  });

  it('releases the pool of an ended run whose create failed (provisioningState Failed), not only Succeeded ones', async () => {
    const run = await openRun();
    const name = `rp${unique(8)}`;
    created.push(name);
    await emulator.addFault({ kind: 'preemption', pool: name });
    const tags = managed({ ...ownerTags(run), 'aks-finetune.io/idle-grace-minutes': '0' });
    await pools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, name, { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', tags }, { updateIntervalInMs: 100 }).catch(() => undefined);
    expect((await pools.get(resourceGroup, clusterName, name)).provisioningState).toBe('Failed');
    await temporal.env.client.workflow.getHandle(run.workflowId, run.runId).terminate('the run was terminated before its create ended');
    await temporal.closedInVisibility(run.workflowId);
    expect(decisionFor(await reap(), name)).toMatchObject({ action: 'released' });
    expect(await poolExists(name)).toBe(false);
  });

  it("does not take a later run under the same workflow id for the owner of an ended run's pool", async () => {
    const earlier = await openRun();
    await temporal.env.client.workflow.getHandle(earlier.workflowId).terminate('the earlier run ends');
    await openRun(earlier.workflowId); // the id is used again, and that run is open
    const pool = await createPool(managed({ ...ownerTags(earlier), 'aks-finetune.io/idle-grace-minutes': '0' }));
    expect(decisionFor(await reap(), pool)?.action).toBe('released');
  });

  it('sweeps the objects of an ended run from the cluster, keeping those of open runs and the inference a completed run deployed', async () => {
    const open = await openRun();
    const ended = await openRun();
    await temporal.env.client.workflow.getHandle(ended.workflowId).terminate('killed mid-run');
    const completed = await completedRun();
    const objects = [
      await labelledConfigMap(open),
      await labelledConfigMap(ended),
      await labelledService(ended),
      await labelledConfigMap(completed),
      await labelledService(completed),
    ];
    const dry = await reap({ dryRun: true });
    expect(objects.map((o) => dry.objects.find((d) => d.object === o)?.action)).toEqual(['kept', 'would-delete', 'would-delete', 'would-delete', 'kept']);
    const result = await reap();
    expect(objects.map((o) => result.objects.find((d) => d.object === o)?.action)).toEqual(['kept', 'deleted', 'deleted', 'deleted', 'kept']);
    expect(result.objects.find((d) => d.object === objects[1])?.reason).toBe(`its run ${ended.workflowId} (${ended.runId}) has ended (TERMINATED)`);
    expect(result.objects.find((d) => d.object === objects[4])?.reason).toMatch(/^inference deployed by run \S+ \(\S+\), which completed$/);
    const left = [
      ...(await core.listNamespacedConfigMap({ namespace, labelSelector: 'aks-finetune.io/run' })).items,
      ...(await core.listNamespacedService({ namespace, labelSelector: 'aks-finetune.io/run' })).items,
    ].map((o) => o.metadata?.name);
    expect(left.sort()).toEqual([objects[0]!, objects[4]!].map((o) => o.split('/')[1]).sort());
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
    const options = { taskQueue: defaultTaskQueue, intervalSeconds: 60, graceMinutes: 5 };
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
