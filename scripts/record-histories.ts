// `npm run histories:record [scenario...]`: runs each workflow scenario on the local stack with
// the real activities and saves its event history under test/histories/<scenario>.json, which
// test/replay.test.ts replays against the current workflow code. Re-record after a workflow change
// only when no run of the old code can still be open (see docs/operations.md, "Upgrading the worker while runs
// are in flight"). Every scenario cleans up what it created: pools, Deployments, Services, state.
import { writeFile } from 'node:fs/promises';
import { AppsV1Api } from '@kubernetes/client-node';
import { type Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { connectClient } from '../client/temporal-connection.js';
import { runIdLabel } from '../activities/kubernetes/labels.js';
import { poolTags } from '../domain/pool-tags.js';
import { historiesDir, type RecordedHistory } from '../test/recorded-histories.js';
import { adminKubeConfig, clusterName, config, containerService, core, emulator, eventually, pushDataset, pushTestAdapter, resourceGroup, simulator, testFineTuneRequest, unique } from '../test/support.js';
import { decidePromotion, getPromotionStatus } from '../client/promotion-client.js';
import { retireEndpoint } from '../client/endpoints.js';
import { createWorker } from '../workers/worker.js';
import { fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { retrainChildWorkflowId } from '../workflows/ids.js';
import { endpoint } from '../workflows/endpoint.js';
import { loadCandidateUpdate, promoteUpdate, retireUpdate, rollbackUpdate, scaleUpdate, unloadUpdate } from '../workflows/endpoint-api.js';
import { reapIdleGpuPools } from '../workflows/reap-idle-gpu-pools.js';
import { promoteAdapter } from '../workflows/promote-adapter.js';
import { retrain } from '../workflows/retrain.js';


interface Run {
  client: Client;
  taskQueue: string;
  /** Workflow ids this scenario starts with; the clean-up finds their pools and objects by it. */
  workflowId: string;
  /** Pools the scenario created itself, not through a run: the clean-up deletes them if they are still there. */
  pools: string[];
}

/** Runs the scenario and returns the closed run whose history is recorded; throws if it did not end as intended. */
type Scenario = (run: Run) => Promise<WorkflowHandle>;

const namespace = 'aks-finetune';
const registryHost = new URL(config.registry.endpoint).host;
const apps = adminKubeConfig.makeApiClient(AppsV1Api);

function expectThat(condition: boolean, what: string): void {
  if (!condition) throw new Error(`the run did not end as the scenario intends: ${what}`);
}

async function expectFailure(handle: WorkflowHandle, check: (cause: unknown) => boolean, what: string): Promise<WorkflowHandle> {
  const error = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expectThat(error instanceof WorkflowFailedError && check(error.cause), what);
  return handle;
}

const scenarios: Record<string, Scenario> = {
  'fine-tune-success': async ({ client, taskQueue, workflowId }) => {
    const handle = await client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
    expectThat((await handle.result()).phase === 'succeeded', 'phase succeeded');
    return handle;
  },

  'fine-tune-failure': async ({ client, taskQueue, workflowId }) => {
    await simulator.settings({ failTraining: { reason: 'OOMKilled', exitCode: 137, times: 2 } });
    const handle = await client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ method: 'lora' })] });
    return expectFailure(handle, (cause) => cause instanceof ApplicationFailure && cause.type === 'TrainingFailed', 'TrainingFailed (OOM)');
  },

  'fine-tune-cancel': async ({ client, taskQueue, workflowId }) => {
    await simulator.settings({ trainingMs: 20_000 });
    const handle = await client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest()] });
    await eventually(async () => ((await handle.query(fineTuneStatusQuery)).training?.state === 'running' ? true : undefined), 'training to run');
    await handle.cancel();
    return expectFailure(handle, (cause) => cause instanceof CancelledFailure, 'cancelled');
  },

  'fine-tune-deploy': async ({ client, taskQueue, workflowId }) => {
    const handle = await client.workflow.start(fineTune, { taskQueue, workflowId, args: [testFineTuneRequest({ runName: `svc-${unique()}`, deploy: { replicas: 1 } })] });
    const status = await handle.result();
    expectThat(status.phase === 'succeeded' && status.inference !== undefined, 'succeeded with an inference Deployment');
    return handle;
  },

  retrain: async ({ client, taskQueue, workflowId }) => {
    const dataset = `datasets/history-${unique()}`;
    await pushDataset(dataset, 'first version');
    const handle = await client.workflow.start(retrain, {
      taskQueue,
      workflowId,
      args: [{ schedule: workflowId, request: testFineTuneRequest({ dataset: { image: `${registryHost}/${dataset}:v1` } }) }],
    });
    expectThat((await handle.result()).trained, 'trained');
    return handle;
  },

  promotion: async ({ client, taskQueue, workflowId }) => {
    // Into a new endpoint (created by the promotion, retired after), evaluated, gated, approved, switched.
    const endpoint = `history-${unique()}`;
    const suite = { jsonl: ['one', 'two', 'three'].map((p) => JSON.stringify({ prompt: `question ${p}`, expect: { contains: `question ${p}` } })).join('\n') };
    const handle = await client.workflow.start(promoteAdapter, {
      taskQueue,
      workflowId,
      args: [{
        endpoint: { name: endpoint, baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4' }, namespace, alias: 'support',
        image: await pushTestAdapter(16), suite, gate: { minPassRate: 0.3 }, approval: { required: true, timeoutMinutes: 60 }, watch: { minutes: 0 },
      }],
    });
    try {
      await eventually(async () => ((await getPromotionStatus(client, workflowId)).status.phase === 'awaiting-approval' ? true : undefined), 'the promotion to await approval');
      await decidePromotion(client, workflowId, true, { by: 'history recorder' });
      expectThat((await handle.result()).phase === 'promoted', 'promoted');
    } finally {
      await retireEndpoint(client, endpoint);
    }
    return handle;
  },

  endpoint: async ({ client, taskQueue, workflowId }) => {
    // Every change an endpoint takes, in one run: loads, promotions (one repeated), a rollback, a load retried under the
    // same Update id, to zero and back, retire. Endpoints live for months: this history guards their replay.
    const handle = await client.workflow.start(endpoint, {
      taskQueue,
      workflowId,
      args: [{ spec: { name: `history-${unique()}`, baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4', maxLoraRank: 16 }, namespace }],
    });
    const load = async (loraAlpha: number, updateId?: string) => (await handle.executeUpdate(loadCandidateUpdate, { args: [{ alias: 'support', image: await pushTestAdapter(loraAlpha) }], updateId })).versionName;
    const promoteVersion = (versionName: string) => handle.executeUpdate(promoteUpdate, { args: [{ versionName }] });
    await promoteVersion(await load(16));
    const second = await load(32);
    await promoteVersion(second);
    await promoteVersion(second); // serves it already: changes nothing
    await handle.executeUpdate(rollbackUpdate, { args: [{ alias: 'support' }] });
    const retried = `history-load-${unique()}`;
    const third = await load(24, retried);
    expectThat((await load(24, retried)) === third, 'a repeated Update id loads nothing twice');
    await handle.executeUpdate(unloadUpdate, { args: [{ versionName: third }] });
    await handle.executeUpdate(scaleUpdate, { args: [{ toZero: true }] });
    await handle.executeUpdate(scaleUpdate, { args: [{ wake: true }] });
    await handle.executeUpdate(retireUpdate, { args: [] });
    expectThat((await handle.result()).aliases.length === 1, 'retired serving one alias');
    return handle;
  },

  reaper: async ({ client, taskQueue, workflowId, pools }) => {
    // An idle managed pool past its grace: the reaper releases it.
    const pool = `rp${unique(8)}`;
    pools.push(pool);
    const tags = { [poolTags.managed]: 'true', [poolTags.idleGraceMinutes]: '0' };
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, pool, { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', tags }, {
      updateIntervalInMs: 200,
    });
    const handle = await client.workflow.start(reapIdleGpuPools, { taskQueue, workflowId, args: [{}] });
    const result = await handle.result();
    expectThat(result.decisions.some((d) => d.pool === pool && d.action === 'released'), `pool ${pool} released`);
    return handle;
  },
};

/** Ends the scenario's runs if still open, then removes what they may have left: pools, Deployments, Services, retrain state. */
async function cleanUp(client: Client, { workflowId, pools }: Pick<Run, 'workflowId' | 'pools'>): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  if ((await handle.describe().catch(() => undefined))?.status.name === 'RUNNING') {
    await handle.cancel();
    await Promise.race([handle.result().catch(() => undefined), new Promise((r) => setTimeout(r, 60_000))]);
    await handle.terminate('history recording clean-up').catch(() => undefined);
  }
  const owned = (id: string | undefined) => id !== undefined && id.startsWith(workflowId); // a retrain's child is <id>-fine-tune
  for await (const pool of containerService.agentPools.list(resourceGroup, clusterName)) {
    if (owned(pool.tags?.[poolTags.workflowId]) || pools.includes(pool.name!)) {
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool.name!, { updateIntervalInMs: 200 });
    }
  }
  for (const runId of [workflowId, retrainChildWorkflowId(workflowId)]) {
    const labelSelector = `${runIdLabel}=${runId}`;
    for (const d of (await apps.listNamespacedDeployment({ namespace, labelSelector })).items) {
      await apps.deleteNamespacedDeployment({ name: d.metadata!.name!, namespace });
    }
    for (const s of (await core.listNamespacedService({ namespace, labelSelector })).items) {
      await core.deleteNamespacedService({ name: s.metadata!.name!, namespace });
    }
  }
  await core.deleteNamespacedConfigMap({ name: `aks-finetune-retrain-${workflowId}`, namespace }).catch(() => undefined);
}

async function record(client: Client, taskQueue: string, scenario: string): Promise<string> {
  const run: Run = { client, taskQueue, workflowId: `history-${scenario}-${unique()}`, pools: [] };
  const { workflowId } = run;
  const simulatorBefore = await simulator.settings();
  try {
    const handle = await scenarios[scenario]!(run);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const recorded: RecordedHistory = {
      scenario,
      workflowType: events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? 'unknown',
      workflowId,
      history: JSON.parse(historyToJSON(history)),
    };
    const file = `${historiesDir}${scenario}.json`;
    const text = `${JSON.stringify(recorded, null, 1)}\n`;
    await writeFile(file, text);
    return `${recorded.workflowType} ${workflowId}: ${events.length} events, ${(text.length / 1024).toFixed(0)} KiB -> test/histories/${scenario}.json`;
  } finally {
    await simulator.settings({ trainingMs: simulatorBefore.trainingMs, failTraining: simulatorBefore.failTraining });
    await cleanUp(client, run);
  }
}

async function main(): Promise<void> {
  const chosen = process.argv.slice(2);
  const unknown = chosen.filter((name) => !(name in scenarios));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}: choose from ${Object.keys(scenarios).join(', ')}`);
  Runtime.install({ logger: new DefaultLogger('ERROR') }); // the scenarios' own failures are expected
  const taskQueue = `histories-${unique()}`;
  const connection = await NativeConnection.connect(config.temporal.connection);
  const client = await connectClient(config.temporal);
  const emulatorBefore = await emulator.settings();
  // Short provisioning and training keep the histories small.
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  const simulatorBefore = await simulator.settings();
  await simulator.settings({ trainingMs: 500 });
  const worker = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, connection, {
    tuning: { armPollIntervalMs: 200, kubePollIntervalMs: 200 },
  });
  const failures: string[] = [];
  try {
    await worker.runUntil(async () => {
      for (const scenario of chosen.length > 0 ? chosen : Object.keys(scenarios)) {
        try {
          console.log(`recorded ${scenario}: ${await record(client, taskQueue, scenario)}`);
        } catch (err) {
          failures.push(scenario);
          console.error(`FAILED ${scenario} (its previous history, if any, is kept): ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    });
  } finally {
    await emulator.settings({ provisioningDelayMs: emulatorBefore.provisioningDelayMs, deletionDelayMs: emulatorBefore.deletionDelayMs });
    await simulator.settings({ trainingMs: simulatorBefore.trainingMs });
    await connection.close();
    await client.connection.close();
  }
  if (failures.length > 0) throw new Error(`${failures.length} scenario(s) not recorded: ${failures.join(', ')}`);
}

main().catch((err: unknown) => {
  console.error(`histories:record: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
