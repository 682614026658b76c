// Run ownership on the local stack: the idle-GPU reaper's Schedule firing every 2 seconds while
// 20 fineTune runs go through their steps never releases an open run's pool, and a run started
// again under the id of a finished run does not adopt what that run left behind.
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureReaperSchedule } from '../scripts/setup-temporal.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { managedPoolTags } from '../domain/pool-tags.js';
import type { RunOwner } from '../domain/run-identity.js';
import { createWorkerActivities } from '../workers/worker.js';
import { fineTune, type FineTuneStatus, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { nodePoolName } from '../workflows/naming.js';
import type { ReaperResult } from '../workflows/reap-idle-gpu-pools.js';
import { reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { config, emulator, eventually, objectsLabelled, poolOf, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId, reapIdleGpuPoolsWorkflowId, reaperScheduleId } from '../workflows/ids.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const namespace = 'aks-finetune';

// The default grace of 0 is what made the old reaper release pools of runs between steps.
const request = (overrides: Partial<FineTuneRequest> = {}) => testFineTuneRequest({ release: { policy: 'delete', idleGraceMinutes: 0 }, ...overrides });

/** Jobs, ConfigMaps, PVCs, Deployments and Services that name this workflow id, whatever its run. */
const objectsOf = async (workflowId: string) => (await objectsLabelled(namespace, `aks-finetune.io/run=${workflowId}`)).sort();

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 2000 });
});

afterEach(async () => {
  await simulator.settings({ trainingMs: 500 });
});

describe('run ownership', () => {
  it('20 concurrent runs with the reaper scheduled every 2 seconds: no open run loses its pool, all succeed, nothing is left', async () => {
    const scheduleId = `${reaperScheduleId}-test-${unique()}`;
    const taskQueue = `test-${unique()}`;
    const ids = Array.from({ length: 20 }, (_, i) => fineTuneWorkflowId(`own-${i}-${unique()}`));
    await ensureReaperSchedule(temporal.env.client, { taskQueue, intervalSeconds: 2, graceMinutes: 0, scheduleId });
    const schedule = temporal.env.client.schedule.getHandle(scheduleId);
    let runs: { owner: RunOwner; pool: string; status?: FineTuneStatus; error?: unknown }[];
    try {
      runs = await temporal.withWorker(
        activities,
        async () => {
          // A run whose pool went away under it may wait on nodes that never come: the run timeout ends it.
          const handles = await Promise.all(ids.map((workflowId) => temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [request()], workflowRunTimeout: '6 minutes' })));
          const results = await Promise.all(
            handles.map(async (handle) => {
              const owner = { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
              // Its own pool, or a warm pool it claimed (its status says which).
              const pool = nodePoolName('ft', owner);
              return handle.result().then((status) => ({ owner, pool: status.gpu!.pool, status }), (error: unknown) => ({ owner, pool, error }));
            }),
          );
          await schedule.pause('the runs are done');
          // Let a reaper run that is still going finish on this worker.
          await eventually(async () => ((await schedule.describe()).info.runningActions.length === 0 ? true : undefined), 'the last reaper run to end');
          return results;
        },
        taskQueue,
      );
    } finally {
      await schedule.delete().catch(() => undefined);
    }

    // What the reaper decided, run by run.
    const reaperResults: ReaperResult[] = [];
    for await (const run of temporal.env.client.workflow.list({ query: `WorkflowType = 'reapIdleGpuPools' AND TaskQueue = '${taskQueue}'` })) {
      reaperResults.push((await temporal.env.client.workflow.getHandle(run.workflowId, run.runId).result()) as ReaperResult);
    }
    const ourPools = new Map(runs.map((run) => [run.pool, run]));
    const releasedByReaper = reaperResults.flatMap((r) => r.decisions).filter((d) => d.action === 'released' && ourPools.has(d.pool));
    const keptForOpenRuns = reaperResults.flatMap((r) => r.decisions).filter((d) => d.action === 'kept' && ourPools.has(d.pool));
    // ARM's own record: a delete of a run's pool that started before the run's own release step.
    const deletesWhileOpen = (await emulator.operations()).filter((op) => {
      const run = ourPools.get(op.pool);
      const ownRelease = run?.status?.steps.find((s) => s.name === 'release GPUs');
      return op.kind === 'delete' && run !== undefined && (!ownRelease || Date.parse(op.startTime) < Date.parse(ownRelease.startedAt));
    });
    const openRunPoolsReleased = new Set([...releasedByReaper.map((d) => d.pool), ...deletesWhileOpen.map((op) => op.pool)]);
    console.log(
      `reaper: ${reaperResults.length} runs, ${keptForOpenRuns.length} decisions kept an open run's pool; ` +
        `open-run pools released: ${openRunPoolsReleased.size} (by the reaper's decisions: ${releasedByReaper.length}, ARM deletes before the run's own release: ${deletesWhileOpen.length})`,
    );

    expect([...openRunPoolsReleased]).toEqual([]);
    expect(runs.map((r) => r.status?.phase ?? String(r.error))).toEqual(ids.map(() => 'succeeded'));
    const statuses = runs.map((r) => r.status!);
    // The reaper did look at the runs' pools while they were open (else this test proves nothing).
    expect(keptForOpenRuns.length).toBeGreaterThan(0);
    // Each run released its own pool, and left nothing in the cluster.
    for (const s of statuses) expect(s.released).toContain(`AgentPool/${s.gpu!.pool} (deleted)`);
    for (const pool of ourPools.keys()) expect(await poolOf(pool)).toBeUndefined();
    for (const workflowId of ids) await eventually(async () => ((await objectsOf(workflowId)).length === 0 ? true : undefined), `${workflowId}'s objects to go`);
  }, 480_000);

  it('a run started again with the id of a finished run that left things behind does not adopt them; the reaper sweeps them', async () => {
    const workflowId = fineTuneWorkflowId(`again-${unique()}`);
    const taskQueue = `test-${unique()}`;
    await simulator.settings({ trainingMs: 600_000 });
    // The first run is terminated while training: no cleanup runs, its pool and objects stay.
    const first = await temporal.withWorker(
      activities,
      async () => {
        const handle = await temporal.env.client.workflow.start(fineTune, { taskQueue, workflowId, args: [request()] });
        const training = async () => ((await handle.query(fineTuneStatusQuery).catch(() => undefined))?.training?.state === 'running' ? true : undefined);
        await eventually(training, 'the first run to train');
        const status = await handle.query(fineTuneStatusQuery);
        await handle.terminate('the worker was killed');
        return { owner: { workflowId, runId: handle.firstExecutionRunId } as RunOwner, status };
      },
      taskQueue,
    );
    const leftPool = first.status.gpu!.pool;
    const leftObjects = await objectsOf(workflowId);
    expect(leftObjects).toHaveLength(3); // ConfigMap, PVC, the training Job
    expect((await poolOf(leftPool))?.tags?.['aks-finetune.io/run-id']).toBe(first.owner.runId);

    await simulator.settings({ trainingMs: 500 });
    // Warm pools aside (claiming an ended run's idle pool is a feature, tested elsewhere): adoption only.
    const again = request({ gpu: { vmSize: 'Standard_NC24ads_A100_v4', reuseWarmPool: false } });
    const second = await temporal.withWorker(activities, () => temporal.env.client.workflow.execute(fineTune, { taskQueue, workflowId, args: [again] }), taskQueue);
    expect(second.phase).toBe('succeeded');
    // Neither adopted nor released: another pool, other objects, and the first run's are untouched.
    expect(second.gpu!.pool).not.toBe(leftPool);
    expect(second.gpu!.reusedPool).toBe(false);
    expect(second.released.filter((r) => leftObjects.includes(r) || r.startsWith(`AgentPool/${leftPool}`))).toEqual([]);
    // (the second run's own claim may still be terminating: deleted while its pusher pod goes)
    await eventually(async () => ((await objectsOf(workflowId)).join() === leftObjects.join() ? true : undefined), "only the first run's objects to remain");
    expect((await poolOf(leftPool))?.tags?.['aks-finetune.io/run-id']).toBe(first.owner.runId);

    // Asked for that pool by name, the later run's identity is refused, not adopted.
    const { runId } = await temporal.env.client.workflow.getHandle(workflowId).describe();
    const refusal = await new MockActivityEnvironment()
      .run(activities.ensureNodePool, {
        name: leftPool,
        vmSize: 'Standard_NC24ads_A100_v4',
        count: 1,
        spot: false,
        taints: [],
        labels: {},
        tags: managedPoolTags({ workflowId, runId }, { policy: 'delete' }),
      })
      .catch((e: unknown) => e);
    expect(refusal).toMatchObject({ type: 'NodePoolConflict', nonRetryable: true, message: expect.stringContaining('it is not adopted') });

    // The orphan sweep removes what the terminated run left: its objects, then (once its trainer pod is gone) its pool.
    const reap = () =>
      temporal.withWorker(activities, (q) => temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue: q, workflowId: reapIdleGpuPoolsWorkflowId(unique()), args: [{ defaultGraceMinutes: 0 }] }));
    const swept = await reap();
    expect(swept.objects.filter((o) => o.action === 'deleted' && o.reason.includes(first.owner.runId)).map((o) => o.object.split(' ')[0]).sort()).toEqual([
      'ConfigMap',
      'Job',
      'PersistentVolumeClaim',
    ]);
    const releasesLeftPool = (r: ReaperResult) => r.decisions.find((d) => d.pool === leftPool)?.action === 'released';
    // Released in the same reaper run once the trainer pod went with its Job, else in a later one.
    if (!releasesLeftPool(swept)) await eventually(async () => (releasesLeftPool(await reap()) ? true : undefined), "the ended run's pool to be released");
    expect(await poolOf(leftPool)).toBeUndefined();
    await eventually(async () => ((await objectsOf(workflowId)).length === 0 ? true : undefined), 'the swept objects to go');
  }, 180_000);
});

afterAll(async () => {
  await simulator.settings({ trainingMs: 500 });
});
