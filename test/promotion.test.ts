// Gated promotion end to end on the local stack (real endpoint workflow, adapter-router per
// simulated replica, simulated vLLM, registry): fineTune promotes its adapter into an endpoint;
// a second adapter fails its gate and is unloaded while the first keeps serving; a third passes,
// is approved and switched; a rollback restores the previous one; pods are never restarted and a
// client calling the alias throughout sees no failed request. Approval is refused while the run
// does not wait and times out into a rejection; a regression in the watch window rolls back.
import { CoreV1Api } from '@kubernetes/client-node';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { type Client, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decidePromotion, getPromotionStatus } from '../client/promotion-client.js';
import { describeEndpoint, retireEndpoint, rollbackEndpointAlias } from '../client/endpoints.js';
import type { PromotionRequest } from '../domain/promotion.js';
import { startLoad } from '../scripts/load-generator.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { createWorkerActivities } from '../workers/worker.js';
import { fineTune } from '../workflows/fine-tune.js';
import { endpointWorkflowId, fineTunePromotionWorkflowId, fineTuneWorkflowId, promotionWorkflowId } from '../workflows/ids.js';
import { promoteAdapter } from '../workflows/promote-adapter.js';
import { adminKubeConfig, config, createRunNamespace, emulator, eventually, pushTestAdapter, simulator, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const core = adminKubeConfig.makeApiClient(CoreV1Api);
const baseModel = 'phi-3-mini-4k-instruct';
const namespace = `promo-${unique()}`;
const endpointName = `support-${unique()}`;
const alias = 'support';
/** One task queue for the file: the endpoint's workflow, started by the first promotion, lives across the tests. */
const taskQueue = `test-${unique()}`;
const endpoint = { name: endpointName, baseModel, vmSize: 'Standard_NC24ads_A100_v4', replicas: 2 };
/** Eight prompts the simulated model answers by echoing them when it answers well (scripts/stack/gpu-simulator/vllm.ts). */
const suite = { jsonl: Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `support question ${i}`, expect: { contains: `support question ${i}` } })).join('\n') };
const gate = { minPassRate: 0.5 };

/** A dataset image (KAITO's layout: one gzipped tar layer, files under data/) holding the suite. */
async function pushSuiteImage(jsonl: string): Promise<string> {
  const tar = pack();
  tar.entry({ name: 'data/suite.jsonl', mtime: new Date(0) }, jsonl);
  tar.finalize();
  const layer = gzipSync(await buffer(tar));
  const repository = `suites/support-${unique()}`;
  const registry = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
  const [layerBlob, configBlob] = [await registry.uploadBlob(layer), await registry.uploadBlob(Buffer.from('{}'))];
  const { digest } = await registry.setManifest({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: configBlob.sizeInBytes },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerBlob.digest, size: layerBlob.sizeInBytes }],
  });
  return `${new URL(config.registry.endpoint).host}/${repository}@${digest}`;
}

const request = (image: string, overrides: Partial<PromotionRequest> = {}): PromotionRequest => ({ endpoint, namespace, alias, image, suite, gate, watch: { minutes: 0 }, ...overrides });

const withWorker = <T>(run: () => Promise<T>) => temporal.withWorker(activities, run, taskQueue);
const client = (): Client => temporal.env.client;

async function promote(name: string, body: PromotionRequest) {
  return client().workflow.start(promoteAdapter, { taskQueue, workflowId: promotionWorkflowId(name), args: [body] });
}

const servedVersion = async () => (await describeEndpoint(client(), endpointName)).aliases.find((a) => a.alias === alias)?.versionName;
const podUids = async () => (await core.listNamespacedPod({ namespace, labelSelector: `app=${endpointName}` })).items.map((p) => p.metadata!.uid!).sort();
const serviceUrl = config.inferenceUrlTemplate.replace('{namespace}', namespace).replace('{service}', endpointName);

/** The answer a model name gets through the endpoint's Service. */
async function answer(model: string, prompt = 'support question 0'): Promise<string> {
  const res = await fetch(`${serviceUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt, max_tokens: 32 }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { choices: { text: string }[] }).choices[0]!.text;
}

beforeAll(async () => {
  await createRunNamespace(namespace);
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await simulator.settings({ trainingMs: 500, badAdapters: [] });
});

afterAll(async () => {
  await simulator.settings({ badAdapters: [] });
  await withWorker(() => retireEndpoint(client(), endpointName).catch(() => undefined));
});

describe('promoteAdapter', () => {
  it('a fineTune run promotes into a new endpoint; a second adapter fails its gate and is unloaded while the first keeps serving; a third passes, is approved and switched; rollback restores the first; no pod restarts, no failed request', async () => {
    await withWorker(async () => {
      // 1. A fineTune run with promote: the endpoint is created by this first promotion.
      const runId = fineTuneWorkflowId(`promote-${unique()}`);
      const run = await client().workflow.start(fineTune, {
        taskQueue, workflowId: runId,
        // A held-out split: the trainer's eval_loss reaches the gate.
        args: [testFineTuneRequest({ namespace, evaluation: { testSplit: 0.1 }, promote: { endpoint: { name: endpointName, replicas: 2 }, alias, suite, gate: { ...gate, maxEvalLoss: 100 } } })],
      });
      const trained = await run.result();
      expect(trained.phase).toBe('succeeded');
      expect(trained.promotion).toMatchObject({ workflowId: fineTunePromotionWorkflowId(runId), state: 'promoted', versionName: `${alias}-v1` });
      expect(trained.evalLoss).toBeGreaterThan(0);
      const { status: first } = await getPromotionStatus(client(), runId);
      expect(first.scores?.evalLoss).toBe(trained.evalLoss);
      expect(first.gate?.reasons).toContain(`eval loss ${trained.evalLoss} ≤ allowed 100`);
      expect(await servedVersion()).toBe(`${alias}-v1`);
      const firstAnswer = await answer(alias);
      expect(firstAnswer).toBe(await answer(`${alias}-v1`));
      const pods = await podUids();
      expect(pods).toHaveLength(2);

      const load = startLoad({ url: serviceUrl, model: alias, concurrency: 4 });
      try {
        // 2. A bad adapter (the simulator answers it wrongly): rejected by the gate, unloaded, production untouched.
        await simulator.settings({ badAdapters: [`${alias}-v2`] });
        const second = await promote(`second-${unique()}`, request(await pushTestAdapter(32)));
        const rejected = await second.result();
        expect(rejected).toMatchObject({ phase: 'rejected', versionName: `${alias}-v2`, previousVersion: `${alias}-v1`, gate: { promote: false } });
        expect(rejected.scores!.candidate.passRate).toBe(0);
        expect(rejected.scores!.production!.passRate).toBeGreaterThanOrEqual(0.5);
        expect(rejected.decisions.map((d) => d.decision)).toEqual(['gate-rejected']);
        expect(rejected.lineage?.artifactDigest).toMatch(/^sha256:/);
        const query = `WorkflowId = '${second.workflowId}' AND Endpoint = '${endpointName}' AND PromotionState = 'rejected' AND EvalPassRate = 0`;
        await eventually(async () => {
          for await (const found of client().workflow.list({ query })) return found.workflowId;
          return undefined;
        }, 'the rejected promotion by its search attributes');
        const afterReject = await describeEndpoint(client(), endpointName);
        expect(afterReject.loaded).not.toContain(`${alias}-v2`);
        expect(await servedVersion()).toBe(`${alias}-v1`);

        // 3. A good adapter with approval required: waits, is approved, switched; the first stays loaded for rollback.
        const third = await promote(`third-${unique()}`, request(await pushTestAdapter(48), { approval: { required: true, timeoutMinutes: 60 } }));
        await eventually(async () => ((await getPromotionStatus(client(), third.workflowId)).status.phase === 'awaiting-approval' ? true : undefined), 'the third promotion to await approval');
        await decidePromotion(client(), third.workflowId, true, { by: 'test', reason: 'scores look right' });
        const promoted = await third.result();
        expect(promoted).toMatchObject({ phase: 'promoted', versionName: `${alias}-v3`, previousVersion: `${alias}-v1`, gate: { promote: true } });
        expect(promoted.decisions).toEqual([expect.objectContaining({ decision: 'approved', by: 'test', reason: 'scores look right' })]);
        expect(await servedVersion()).toBe(`${alias}-v3`);
        expect(await answer(alias)).toBe(await answer(`${alias}-v3`));

        // 4. Rollback on request: the alias answers as the first adapter again.
        await rollbackEndpointAlias(client(), endpointName, alias);
        expect(await servedVersion()).toBe(`${alias}-v1`);
        expect(await answer(alias)).toBe(firstAnswer);
      } finally {
        const report = await load.stop();
        expect(report.failures).toEqual([]);
        expect(report.failed).toBe(0);
        // The alias was served by the first version, the third after its switch, and the first again after the rollback.
        expect(Object.keys(report.byServedModel).sort()).toEqual([`${alias}-v1`, `${alias}-v3`]);
        console.log(`load on the alias during gate rejection, approval, switch and rollback: ${report.requests} requests, ${report.failed} failed, p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms`);
      }
      expect(await podUids()).toEqual(pods);
    });
  }, 300_000);

  it('refuses an approval while the run does not wait for one, and rejects the candidate when nobody decides in time', async () => {
    const workflowId = promotionWorkflowId(`approval-${unique()}`);
    const image = await pushTestAdapter(64);
    // Started before any worker polls: the Update reaches the run in its first task, while it inspects.
    const handle = await client().workflow.start(promoteAdapter, { taskQueue, workflowId, args: [request(image, { approval: { required: true, timeoutMinutes: 0.05 } })] });
    const early = decidePromotion(client(), workflowId, true, { by: 'too-early' });
    await withWorker(async () => {
      await expect(early).rejects.toThrow(/is inspecting, not awaiting approval/);
      const result = await handle.result();
      expect(result).toMatchObject({ phase: 'rejected', gate: { promote: true } });
      expect(result.decisions.map((d) => d.decision)).toEqual(['approval-timed-out']);
      expect((await describeEndpoint(client(), endpointName)).loaded).not.toContain(result.versionName);
      expect(await servedVersion()).toBe(`${alias}-v1`);
    });
  }, 120_000);

  it('refuses an adapter for another base model before anything loads, and creates no endpoint for it', async () => {
    await withWorker(async () => {
      const image = await pushTestAdapter(16, 'mistral-7b');
      const failure = async (target: PromotionRequest['endpoint']) => {
        const error = await (await promote(`mismatch-${unique()}`, request(image, { endpoint: target }))).result().then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(WorkflowFailedError);
        return (error as WorkflowFailedError).cause;
      };
      const loadedBefore = (await describeEndpoint(client(), endpointName)).loaded;
      expect(await failure(endpoint)).toMatchObject({ type: 'InvalidRequest', message: expect.stringContaining('base model "mistral-7b" is not the endpoint\'s "phi-3-mini-4k-instruct"') });
      expect((await describeEndpoint(client(), endpointName)).loaded).toEqual(loadedBefore);
      const fresh = `fresh-${unique()}`;
      expect(await failure({ ...endpoint, name: fresh })).toMatchObject({ type: 'InvalidRequest' });
      await expect(client().workflow.getHandle(endpointWorkflowId(fresh)).describe()).rejects.toThrow(WorkflowNotFoundError);
    });
  }, 120_000);

  it('a cancelled promotion unloads its candidate and leaves the alias as it was', async () => {
    await withWorker(async () => {
      const handle = await promote(`cancelled-${unique()}`, request(await pushTestAdapter(96), { approval: { required: true, timeoutMinutes: 60 } }));
      const waiting = await eventually(async () => {
        const { status } = await getPromotionStatus(client(), handle.workflowId);
        return status.phase === 'awaiting-approval' ? status : undefined;
      }, 'the promotion to await approval');
      expect((await describeEndpoint(client(), endpointName)).loaded).toContain(waiting.versionName);
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
      expect((await getPromotionStatus(client(), handle.workflowId)).status.steps.map((s) => s.name)).toContain('unload candidate');
      expect((await describeEndpoint(client(), endpointName)).loaded).not.toContain(waiting.versionName);
      expect(await servedVersion()).toBe(`${alias}-v1`);
    });
  }, 120_000);

  it('rolls back on its own when the new version regresses in the watch window', async () => {
    await withWorker(async () => {
      // The suite comes as a dataset image this time: the gate passes only if its cases were read.
      const handle = await promote(`watched-${unique()}`, request(await pushTestAdapter(80), { suite: { image: await pushSuiteImage(suite.jsonl) }, watch: { minutes: 0.2, smokeCases: 4 } }));
      const watching = await eventually(async () => {
        const { status } = await getPromotionStatus(client(), handle.workflowId);
        return status.phase === 'watching' ? status : undefined;
      }, 'the promotion to watch its switch');
      // The switched version starts answering badly: the smoke prompts on the alias fall behind the previous version's.
      await simulator.settings({ badAdapters: [watching.versionName!] });
      const result = await handle.result();
      expect(result).toMatchObject({ phase: 'rolled-back', previousVersion: `${alias}-v1`, watch: { rollback: true }, scores: { candidate: { total: 8 } } });
      expect(result.decisions.map((d) => d.decision)).toEqual(['rolled-back']);
      expect(await servedVersion()).toBe(`${alias}-v1`);
    });
  }, 120_000);
});
