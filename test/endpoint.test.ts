// The endpoint workflow on the local stack with real activities: it creates its pool and objects,
// loads and promotes adapters that clients reach through the Service by a stable alias, rolls
// back, refuses invalid Updates and an adapter its replicas cannot load, scales to zero when idle
// and wakes on a loadCandidate, continues-as-new without losing state, and its pool and objects
// are the reaper's to keep while it is open and to sweep once it is terminated; a worker upgrade
// rolls onto a live endpoint's replicas at its next change without failing a request.
import { AppsV1Api } from '@kubernetes/client-node';
import { startLoad } from '../scripts/load-generator.js';
import { type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { desiredStateConfigMapName } from '../domain/adapter-router.js';
import { poolOwner } from '../domain/pool-tags.js';
import { createWorkerActivities } from '../workers/worker.js';
import { describeEndpointQuery, type EndpointDescription, type LoadCandidateRequest, loadCandidateUpdate, promoteUpdate, retireUpdate, rollbackUpdate, type ScaleRequest, scaleUpdate, unloadUpdate } from '../workflows/endpoint-api.js';
import { endpoint } from '../workflows/endpoint.js';
import { endpointWorkflowId } from '../workflows/ids.js';
import { endpointPoolName } from '../workflows/naming.js';
import { reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { adminKubeConfig, config, core, createRunNamespace, emulator, eventually, objectsLabelled, poolOf, pushSimulatedAdapter, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const apps = adminKubeConfig.makeApiClient(AppsV1Api);
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const namespace = `ep-${unique()}`;
const baseModel = 'phi-3-mini-4k-instruct';
const vmSize = 'Standard_NC24ads_A100_v4';
const serviceUrl = (name: string) => config.inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', name);

/** An adapter image in the local registry (KAITO's layout), by digest; rank and alpha make its content, so its answers. */
async function adapterImage(r: number, loraAlpha: number): Promise<string> {
  return (await pushSimulatedAdapter({ r, loraAlpha }, { repository: `adapters/endpoint-${unique()}`, annotations: { 'sh.kaito.model.name': baseModel } })).image;
}

/** What the Service answers for `model` (an alias, a version name): deterministic per adapter in the simulation. */
async function complete(name: string, model: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${serviceUrl(name)}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'name a colour', max_tokens: 8 }),
  });
  const body = (await res.json()) as { choices?: { text: string }[] };
  return { status: res.status, text: body.choices?.[0]?.text ?? JSON.stringify(body) };
}

async function startEndpoint(taskQueue: string, spec: Record<string, unknown> = {}, extra: { continueAsNewAfterEvents?: number } = {}) {
  const name = `ep-${unique()}`;
  const handle = await temporal.env.client.workflow.start(endpoint, {
    taskQueue,
    workflowId: endpointWorkflowId(name),
    args: [{ spec: { name, baseModel, vmSize, maxLoraRank: 16, ...spec }, namespace, ...extra }],
  });
  return { name, handle, pool: endpointPoolName(handle.workflowId) };
}

const describeOf = (handle: WorkflowHandle<typeof endpoint>): Promise<EndpointDescription> => handle.query(describeEndpointQuery);
const replicasOf = async (name: string) => (await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas;
const routerImageOf = async (name: string) => (await apps.readNamespacedDeployment({ name, namespace })).spec?.template.spec?.containers.find((c) => c.name === 'adapter-router')?.image;
/** The uids of the endpoint's pods that are not being deleted. */
const podUidsOf = async (name: string) =>
  (await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` })).items.flatMap((p) => (p.metadata?.deletionTimestamp ? [] : [p.metadata!.uid!])).sort();

let images: { first: string; second: string; overRank: string };

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await createRunNamespace(namespace);
  images = { first: await adapterImage(8, 16), second: await adapterImage(8, 32), overRank: await adapterImage(32, 16) };
});

afterAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
});

describe('endpoint', () => {
  it('creates its pool and objects, serves an alias through the Service, promotes, rolls back, and refuses what its state does not allow', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { name, handle, pool } = await startEndpoint(taskQueue);
      // Queued behind the creation: it returns once every replica serves the version.
      const { versionName: v1 } = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
      expect(v1).toBe('bot-v1');
      const created = await poolOf(pool);
      // Owned by the workflow id alone: continue-as-new keeps it.
      expect(poolOwner(created?.tags)).toEqual({ workflowId: handle.workflowId, runId: undefined });
      expect(await replicasOf(name)).toBe(1);
      expect(await objectsLabelled(namespace, `app.kubernetes.io/managed-by=aks-finetune`)).toEqual(
        expect.arrayContaining([`ConfigMap/${desiredStateConfigMapName(name)}`, `Deployment/${name}`, `Service/${name}`]),
      );

      await handle.executeUpdate(promoteUpdate, { args: [{ versionName: v1 }] });
      const first = await complete(name, 'bot');
      expect(first.status).toBe(200);
      expect(first).toEqual(await complete(name, v1));

      const { versionName: v2 } = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.second }] });
      expect(await handle.executeUpdate(promoteUpdate, { args: [{ versionName: v2 }] })).toEqual({ alias: 'bot', versionName: 'bot-v2', previous: 'bot-v1' });
      // Promoting it again (a repeated request) changes nothing: bot-v1 stays the rollback target.
      expect(await handle.executeUpdate(promoteUpdate, { args: [{ versionName: v2 }] })).toEqual({ alias: 'bot', versionName: 'bot-v2', previous: 'bot-v1' });
      const second = await complete(name, 'bot');
      expect(second).toEqual(await complete(name, v2));
      expect(second.text).not.toBe(first.text);
      expect((await describeOf(handle)).aliases).toEqual([{ alias: 'bot', versionName: 'bot-v2', digest: images.second.split('@')[1], image: images.second, rollbackTo: 'bot-v1' }]);

      expect(await handle.executeUpdate(rollbackUpdate, { args: [{ alias: 'bot' }] })).toEqual({ alias: 'bot', versionName: 'bot-v1' });
      expect(await complete(name, 'bot')).toEqual(first);

      // Refused by the validators: nothing is recorded, nothing changes.
      const before = await describeOf(handle);
      await expect(handle.executeUpdate(promoteUpdate, { args: [{ versionName: 'bot-v9' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      await expect(handle.executeUpdate(rollbackUpdate, { args: [{ alias: 'bot' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      await expect(handle.executeUpdate(unloadUpdate, { args: [{ versionName: 'bot-v1' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      await expect(handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: 'registry.example/a:v1' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      expect(await describeOf(handle)).toEqual(before);

      // An adapter over the endpoint's max-lora-rank: the replicas refuse it, the Update fails with why, the endpoint serves on.
      const refused = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.overRank }] }).then(
        () => undefined,
        (err: WorkflowUpdateFailedError) => err,
      );
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((refused!.cause as Error | undefined)?.message)).toMatch(/rank/);
      expect((await describeOf(handle)).loaded).toEqual(before.loaded);
      expect(await complete(name, 'bot')).toEqual(first);

      await handle.executeUpdate(retireUpdate, { args: [] });
      await handle.result();
      expect(await poolOf(pool)).toBeUndefined();
      expect(await objectsLabelled(namespace, `app=${name}`)).toEqual([]);
    });
  });

  it('scales to zero after its idle grace, releasing its pool, and a loadCandidate wakes it', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { name, handle, pool } = await startEndpoint(taskQueue, { idleGraceSeconds: 10 });
      const { versionName } = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
      await handle.executeUpdate(promoteUpdate, { args: [{ versionName }] });
      expect((await complete(name, 'bot')).status).toBe(200);

      await eventually(async () => ((await describeOf(handle)).scale === 'scaled-to-zero' ? true : undefined), 'scale to zero', 120_000);
      await eventually(async () => ((await poolOf(pool)) === undefined ? true : undefined), 'the pool deleted');
      expect(await replicasOf(name)).toBe(0);

      const { versionName: v2 } = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.second }] });
      expect(await poolOf(pool)).toBeDefined();
      expect(await replicasOf(name)).toBe(1);
      const woken = await describeOf(handle);
      expect(woken).toMatchObject({ scale: 'running', loaded: ['bot-v1', v2], counters: { coldStarts: 1 } });
      expect(woken.coldStartSeconds).toHaveLength(1);
      expect(woken.gpuMinutesSaved).toBeGreaterThan(0);
      // The alias is served again on the new replica, which loaded every adapter before it took traffic.
      expect((await complete(name, 'bot')).status).toBe(200);
      await handle.executeUpdate(retireUpdate, { args: [] });
      await handle.result();
    });
  });

  it('continues-as-new without losing its state, and a repeated Update id still changes nothing twice', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { handle } = await startEndpoint(taskQueue, {}, { continueAsNewAfterEvents: 10 });
      const load = { args: [{ alias: 'bot', image: images.first }] as [LoadCandidateRequest], updateId: `load-${unique()}` };
      const { versionName } = await handle.executeUpdate(loadCandidateUpdate, load);
      await handle.executeUpdate(promoteUpdate, { args: [{ versionName }] });
      // The run open now, and what it holds. Each wake of a running endpoint changes nothing but adds history events,
      // so that run soon continues-as-new.
      const { runId } = await handle.describe();
      const before = await temporal.env.client.workflow.getHandle(handle.workflowId, runId).query(describeEndpointQuery);
      await eventually(async () => {
        await handle.executeUpdate(scaleUpdate, { args: [{ wake: true }] });
        return (await handle.describe()).runId !== runId ? true : undefined;
      }, 'a new run');
      expect(runId).not.toBe(handle.firstExecutionRunId);
      expect(await describeOf(handle)).toEqual(before);
      expect(before.aliases.map((a) => `${a.alias}→${a.versionName}`)).toEqual(['bot→bot-v1']);
      // A retry of the first load (same Update id) in the new run gets the first answer, not a second version.
      expect(await handle.executeUpdate(loadCandidateUpdate, load)).toEqual({ versionName });
      expect(await describeOf(handle)).toEqual(before);
      await handle.executeUpdate(retireUpdate, { args: [] });
      await handle.result();
    });
  });

  it('the reaper keeps the pool and objects of an open endpoint and sweeps them once it is terminated', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { name, handle, pool } = await startEndpoint(taskQueue);
      await eventually(async () => ((await describeOf(handle)).generation >= 1 && (await replicasOf(name).catch(() => undefined)) === 1 ? true : undefined), 'the endpoint created');
      const reap = () => temporal.env.client.workflow.execute(reapIdleGpuPools, { taskQueue, workflowId: `reaper-${unique()}`, args: [{ defaultGraceMinutes: 0 }] });
      const open = await reap();
      expect(open.decisions.find((d) => d.pool === pool)).toMatchObject({ action: 'kept' });
      expect(open.objects.filter((o) => o.object.endsWith(`/${name}`)).map((o) => o.action)).toEqual(['kept', 'kept']);

      await handle.terminate('test: an endpoint whose workflow ended without retiring');
      await temporal.closedInVisibility(handle.workflowId);
      const swept = await reap();
      expect(swept.objects.filter((o) => o.object.includes(`/${name}`)).map((o) => o.action)).toEqual(['deleted', 'deleted', 'deleted']);
      // Its replica's pod goes with the Deployment; then the idle pool is released.
      await eventually(async () => {
        const result = await reap();
        return result.decisions.some((d) => d.pool === pool && d.action === 'released') || (await poolOf(pool)) === undefined ? true : undefined;
      }, 'the pool released', 60_000);
      expect(await poolOf(pool)).toBeUndefined();
    });
  });

  it('a cancelled endpoint tears down its objects and pool before it ends', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { name, handle, pool } = await startEndpoint(taskQueue);
      await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
      expect(await poolOf(pool)).toBeDefined();
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
      expect(await poolOf(pool)).toBeUndefined();
      expect(await objectsLabelled(namespace, `app=${name}`)).toEqual([]);
      expect((await core.listNamespacedConfigMap({ namespace })).items.map((c) => c.metadata?.name)).not.toContain(desiredStateConfigMapName(name));
    });
  });

  it('a promote approved after the endpoint went to zero wakes it and serves the alias; once retiring it takes no more changes', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      const { name, handle, pool } = await startEndpoint(taskQueue);
      const { versionName } = await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
      await handle.executeUpdate(scaleUpdate, { args: [{ toZero: true }] });
      expect(await poolOf(pool)).toBeUndefined();
      await handle.executeUpdate(promoteUpdate, { args: [{ versionName }] });
      expect(await describeOf(handle)).toMatchObject({ scale: 'running', counters: { coldStarts: 1 } });
      expect((await complete(name, 'bot')).status).toBe(200);
      // Sent together: whichever of the two runs second must not bring the pool back after the teardown.
      const [retired, late] = await Promise.allSettled([
        handle.executeUpdate(retireUpdate, { args: [] }),
        handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.second }] }),
      ]);
      expect(retired.status).toBe('fulfilled');
      await handle.result();
      expect(await poolOf(pool)).toBeUndefined();
      expect(await objectsLabelled(namespace, `app=${name}`)).toEqual([]);
      if (late.status === 'rejected') expect(String(late.reason)).toMatch(/retired|Update|workflow/i);
    });
  });

  it('rolls a worker upgrade onto a live two-replica endpoint at its next change, one replica at a time, failing no request on the alias', async () => {
    const taskQueue = `test-${unique()}`;
    const { name, handle } = await temporal.withWorker(
      activities,
      async () => {
        const started = await startEndpoint(taskQueue, { replicas: 2 });
        const { versionName } = await started.handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
        await started.handle.executeUpdate(promoteUpdate, { args: [{ versionName }] });
        return started;
      },
      taskQueue,
    );
    expect(await routerImageOf(name)).toBe(config.workerImage);
    const before = await podUidsOf(name);
    expect(before).toHaveLength(2);

    // The same endpoint, now served by a worker with another image: its next change carries the new template.
    const nextImage = `${config.workerImage}-next`;
    const upgraded = createWorkerActivities({ ...config, workerImage: nextImage }, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
    await temporal.withWorker(
      upgraded,
      async () => {
        const load = startLoad({ url: serviceUrl(name), model: 'bot', concurrency: 4 });
        try {
          await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.second }] });
          expect(await routerImageOf(name)).toBe(nextImage);
          // Both replicas replaced, each by one that serves every adapter before it takes traffic.
          await eventually(async () => {
            const now = await podUidsOf(name);
            return now.length === 2 && now.every((uid) => !before.includes(uid)) && (await apps.readNamespacedDeployment({ name, namespace })).status?.readyReplicas === 2 ? true : undefined;
          }, 'both replicas replaced and ready');
        } finally {
          const report = await load.stop();
          expect(report.requests).toBeGreaterThan(0);
          expect(report.failed, JSON.stringify(report.failures)).toBe(0);
        }
        const after = await podUidsOf(name);
        // A change that builds the same template leaves the pods alone.
        await handle.executeUpdate(unloadUpdate, { args: [{ versionName: 'bot-v2' }] });
        expect(await podUidsOf(name)).toEqual(after);
        expect((await describeOf(handle)).loaded).toEqual(['bot-v1']);
        await handle.executeUpdate(retireUpdate, { args: [] });
        await handle.result();
      },
      taskQueue,
    );
  });

  it('a wake that ARM refuses fails its Update with ARM\'s message and leaves the endpoint at zero, without a pool; the same Update id fails the same way after a continue-as-new', async () => {
    await temporal.withWorker(activities, async (taskQueue) => {
      // A short history: the endpoint continues-as-new after every change.
      const { name, handle, pool } = await startEndpoint(taskQueue, {}, { continueAsNewAfterEvents: 10 });
      await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'bot', image: images.first }] });
      await handle.executeUpdate(scaleUpdate, { args: [{ toZero: true }] });
      expect(await poolOf(pool)).toBeUndefined();
      await emulator.addFault({ kind: 'quota', method: 'PUT', pool, times: 1 });
      // The run that will take the wake: the one left once the last change's continue-as-new is done.
      const runId = await eventually(async () => {
        const before = (await handle.describe()).runId;
        await new Promise((r) => setTimeout(r, 1_500));
        return (await handle.describe()).runId === before ? before : undefined;
      }, 'the endpoint to settle on a run');
      const wake = { args: [{ wake: true }] as [ScaleRequest], updateId: `wake-${unique()}` };
      const wakeFailure = () => handle.executeUpdate(scaleUpdate, wake).then(() => undefined, (err: WorkflowUpdateFailedError) => String((err.cause as Error | undefined)?.message));
      expect(await wakeFailure()).toMatch(/quota/);
      expect(await describeOf(handle)).toMatchObject({ scale: 'scaled-to-zero', counters: { coldStarts: 0 } });
      expect(await poolOf(pool)).toBeUndefined();
      expect(await replicasOf(name)).toBe(0);
      // After the failed wake the run continues-as-new, carrying the outcome: a retry of that Update (same id) in the
      // new run gets the same failure instead of waking the endpoint now that ARM would allow it.
      await eventually(async () => ((await handle.describe()).runId !== runId ? true : undefined), 'a new run');
      expect(await wakeFailure()).toMatch(/quota/);
      expect(await describeOf(handle)).toMatchObject({ scale: 'scaled-to-zero', counters: { coldStarts: 0 } });
      // The next wake (a new Update) goes through.
      await handle.executeUpdate(scaleUpdate, { args: [{ wake: true }] });
      expect(await describeOf(handle)).toMatchObject({ scale: 'running', counters: { coldStarts: 1 } });
      await handle.executeUpdate(retireUpdate, { args: [] });
      await handle.result();
    });
  });
});
