// KAITO's own tuning examples (examples/fine-tuning/ at v0.12.0, kept byte for byte under
// test/fixtures/kaito-examples/v0.12.0): each plans, or is refused with the reason, and the phi-3
// Workspace runs on the local stack unchanged, with KAITO's ConfigMap example as its parameters and
// its push Secret against a registry that needs a login.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchV1Api } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { checkTuningConfigMapFile, FineTuneRequestError, parseFineTuneSpec, planFineTune, readFineTuneSpec, startFineTune } from '../client/fine-tune-client.js';
import { fingerprint, trainingConfig } from '../domain/training-config.js';
import { adapterContentDigest } from '../activities/registry/adapter-image.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { lineageFile } from '../workers/copy-adapter.js';
import { runIdLabel } from '../activities/kubernetes/labels.js';
import { runLabelValue } from '../domain/hash.js';
import { createWorkerActivities } from '../workers/worker.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { type AuthRegistry, dockerConfigJson, startAuthRegistry } from './auth-registry.js';
import { adminKubeConfig, config, core, createRunNamespace, emulator, eventually, objectsLabelled, unique } from './support.js';
import { useTemporal } from './temporal.js';

const examples = join(import.meta.dirname, 'fixtures', 'kaito-examples', 'v0.12.0');
const example = (name: string) => join(examples, name);
const planProblems = (file: string, overrides: object = {}) => {
  try {
    planFineTune({ ...readFineTuneSpec(file), ...overrides }, { workflowId: 'kaito-example' });
    return [];
  } catch (err) {
    if (err instanceof FineTuneRequestError) return err.problems;
    throw err;
  }
};

describe("KAITO v0.12.0's tuning examples, unchanged", () => {
  it('keeps all five files, byte for byte as KAITO published them (SOURCE.md has their sha256)', () => {
    const recorded = Object.fromEntries([...readFileSync(join(examples, 'SOURCE.md'), 'utf8').matchAll(/^([0-9a-f]{64}) {2}(\S+)$/gm)].map((m) => [m[2], m[1]]));
    for (const file of Object.keys(recorded)) expect(createHash('sha256').update(readFileSync(join(examples, file))).digest('hex'), file).toBe(recorded[file]);
    expect(readdirSync(examples).filter((f) => f.endsWith('.yaml')).sort()).toEqual(Object.keys(recorded).sort());
    expect(readdirSync(examples).filter((f) => f.endsWith('.yaml')).sort()).toEqual([
      'kaito_configmap_tuning_phi_3.yaml',
      'kaito_workspace_tuning_falcon_7b_mental.yaml',
      'kaito_workspace_tuning_falcon_7b_oai.yaml',
      'kaito_workspace_tuning_phi_3.yaml',
      'kaito_workspace_tuning_phi_3_with_pvc_volume.yaml',
    ]);
  });

  it('plans the phi-3 Workspace once its placeholders are given, and says which placeholders until then', () => {
    const file = example('kaito_workspace_tuning_phi_3.yaml');
    expect(planProblems(file)).toEqual([
      expect.stringMatching(/^output.image "ACR_REPO_HERE.azurecr.io\/IMAGE_NAME_HERE:0.0.1" still holds KAITO's example placeholders ACR_REPO_HERE, IMAGE_NAME_HERE: give your registry/),
      expect.stringMatching(/^the push Secret "ACR_REGISTRY_SECRET_HERE" is KAITO's example placeholder/),
    ]);
    const { plan } = planFineTune({ ...readFineTuneSpec(file), output: { image: 'myacr.azurecr.io/phi-3-dolly:0.0.1', pushSecret: 'acr-push' } }, { workflowId: 'kaito-example' });
    expect(plan).toMatchObject({ runName: 'workspace-tuning-phi-3', method: 'qlora', pushSecret: 'acr-push', output: { registry: 'myacr.azurecr.io', repository: 'phi-3-dolly', tag: '0.0.1' } });
    expect(plan.model.name).toBe('phi-3-mini-128k-instruct');
    expect(plan.vmSize.name).toBe('Standard_NC24ads_A100_v4');
    expect(plan.dataset.urls).toEqual([parse(readFileSync(file, 'utf8')).tuning.input.urls[0]]);
  });

  it('checks the ConfigMap example as KAITO parameters, and names each key a trainer would refuse', () => {
    expect(checkTuningConfigMapFile(example('kaito_configmap_tuning_phi_3.yaml'))).toEqual({ name: 'optimized-phi3-tuning', problems: [] });
  });

  it("refuses the falcon examples first with KAITO's own reason: it no longer tunes falcon", () => {
    for (const name of ['kaito_workspace_tuning_falcon_7b_mental.yaml', 'kaito_workspace_tuning_falcon_7b_oai.yaml']) {
      expect(planProblems(example(name))[0], name).toMatch(/^model "falcon-7b" is not a preset KAITO can tune: KAITO no longer tunes falcon models: since v0.11.0 its tuning table/);
    }
  });
});

const temporal = useTemporal();
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });

describe('the phi-3 Workspace on the local stack, with a push Secret and a tuning ConfigMap', () => {
  let registry: AuthRegistry;
  const namespace = `kaito-${unique()}`;
  const workspace = readFileSync(example('kaito_workspace_tuning_phi_3.yaml'), 'utf8');
  const configMapExample = parse(readFileSync(example('kaito_configmap_tuning_phi_3.yaml'), 'utf8'));

  beforeAll(async () => {
    registry = await startAuthRegistry();
    await createRunNamespace(namespace);
    // As a KAITO user applies them: the example ConfigMap unchanged, the Secret as kubectl create secret docker-registry makes it.
    await core.createNamespacedConfigMap({ namespace, body: configMapExample });
    for (const [name, password] of [['acr-push', registry.password], ['acr-push-wrong', 'wrong-password']] as const) {
      await core.createNamespacedSecret({
        namespace,
        body: { metadata: { name }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(dockerConfigJson(registry.host, registry.username, password)).toString('base64') } },
      });
    }
  });
  afterAll(async () => {
    await registry?.stop();
  });

  /** The Workspace file's text as the UI would carry it, with what a user gives on the command line. */
  const request = (pushSecret: string, repository: string, configMap = 'optimized-phi3-tuning') => ({
    workspace,
    namespace,
    output: { image: `${registry.host}/${repository}:0.0.1`, pushSecret },
    tuning: { configMap },
    pollIntervalSeconds: 1,
  });

  it("trains with the ConfigMap, pushes with the Secret to the registry that needs a login, and the Secret's values reach no history", async () => {
    const repository = `adapters/kaito-${unique()}`;
    const workflowId = fineTuneWorkflowId(`kaito-example-${unique()}`);
    const handle = await temporal.withWorker(activities, async (taskQueue) => {
      const started = await startFineTune(temporal.env.client, request('acr-push', repository), { workflowId, taskQueue });
      await started.result();
      return started;
    });
    const status = await handle.result();
    expect(status.phase).toBe('succeeded');
    // Every payload as its text (the history carries their bytes base64-encoded).
    const history = JSON.stringify(await handle.fetchHistory(), (key, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
    );
    expect(history.includes('acr-push'), "the Secret's name is in the history").toBe(true);
    expect(history.includes(registry.password), "the Secret's password is not").toBe(false);
    expect(history.includes(Buffer.from(`${registry.username}:${registry.password}`).toString('base64')), "nor its auth").toBe(false);

    // The registry holds the image under the login only.
    const login = { login: { kind: 'password' as const, username: registry.username, password: registry.password }, source: 'the test' };
    const pushed = await createRegistryContentClient(`https://${registry.host}`, repository, createAzureCredential('unused'), login).getManifest('0.0.1');
    expect(pushed.digest).toBe(status.adapter?.digest);
    await expect(createRegistryContentClient(`https://${registry.host}`, repository, createAzureCredential('unused')).getManifest('0.0.1')).rejects.toThrow();

    // The run trained with the ConfigMap's parameters (KAITO's "optimized" values), not KAITO's default
    // template: the adapter's lineage records the hash of the training_config the trainer read.
    const fromConfigMap = trainingConfig('qlora', {}, undefined, parse(configMapExample.data['training_config.yaml']).training_config);
    expect((pushed.manifest as { annotations: Record<string, string> }).annotations['aks-finetune.io/config-hash']).toBe(fingerprint(fromConfigMap));
    expect(fingerprint(fromConfigMap)).not.toBe(fingerprint(trainingConfig('qlora')));
  });

  it('refuses a wrong Secret and a wrong ConfigMap before any GPU is asked for, saying what is wrong', async () => {
    await emulator.clearRequests();
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'typo-params' }, data: { 'training_config.yaml': 'training_config:\n  LoraConfig:\n    lora_alpa: 8\n  TrainingArguments:\n    output_dir: /mnt/elsewhere\n' } },
    });
    const cases = [
      { pushSecret: 'acr-push-wrong', configMap: 'optimized-phi3-tuning', says: `refused the login in push Secret acr-push-wrong in namespace ${namespace}` },
      { pushSecret: 'acr-push-missing', configMap: 'optimized-phi3-tuning', says: `output.pushSecret acr-push-missing: no such Secret in namespace ${namespace}` },
      { pushSecret: 'acr-push', configMap: 'typo-params', says: 'tuning.configMap typo-params: training_config.LoraConfig.lora_alpa is not a known field: did you mean training_config.LoraConfig.lora_alpha?' },
      { pushSecret: 'acr-push', configMap: 'typo-params', says: 'training_config.TrainingArguments.output_dir must be "/mnt/results"' },
      { pushSecret: 'acr-push', configMap: 'no-such-params', says: `tuning.configMap no-such-params: no such ConfigMap in namespace ${namespace}` },
    ];
    await temporal.withWorker(activities, async (taskQueue) => {
      for (const c of cases) {
        const handle = await startFineTune(temporal.env.client, request(c.pushSecret, `adapters/kaito-${unique()}`, c.configMap), { workflowId: fineTuneWorkflowId(`kaito-bad-${unique()}`), taskQueue });
        const error = await handle.result().catch((err: unknown) => err);
        expect(error, c.says).toBeInstanceOf(WorkflowFailedError);
        expect((error as WorkflowFailedError).cause?.message, c.says).toContain(c.says);
        expect(((error as WorkflowFailedError).cause as { type?: string }).type).toBe('InvalidRequest');
      }
    });
    expect((await emulator.requests()).filter((r) => r.method === 'PUT')).toEqual([]);
    const jobs = await adminKubeConfig.makeApiClient(BatchV1Api).listNamespacedJob({ namespace });
    expect(jobs.items.filter((j) => !j.metadata?.name?.startsWith('workspace-tuning-phi-3'))).toEqual([]);
  });
});

describe("KAITO's multi-document PVC example, unchanged", () => {
  const file = example('kaito_workspace_tuning_phi_3_with_pvc_volume.yaml');
  const text = readFileSync(file, 'utf8');
  const vmSize = 'Standard_NC24ads_A100_v4';

  it('is read for its Workspace and plans once a size Azure still has is given: the adapter goes to its output claim', () => {
    expect(parseAllDocuments(text).map((d) => (d.toJS() as { kind: string }).kind)).toEqual(['PersistentVolumeClaim', 'PersistentVolumeClaim', 'Workspace']);
    expect(parseFineTuneSpec(text, 'pvc.yaml')).toMatchObject({ workspace: { kind: 'Workspace' } });
    // KAITO's example still names an NCv3 size, which Azure retired: the one thing to give.
    expect(planProblems(file)).toEqual([expect.stringMatching(/^gpu.vmSize Standard_NC6s_v3: Azure retired it on 2025-09-30 .*; choose Standard_NV36ads_A10_v5$/)]);
    const { plan, kubernetesObjects } = planFineTune({ ...readFineTuneSpec(file), gpu: { vmSize } }, { workflowId: 'kaito-example' });
    expect(plan).toMatchObject({ output: { kind: 'volume', claimName: 'pvc-azurefile-output' }, dataset: { volume: 'pvc-azurefile-input' }, method: 'qlora' });
    expect(kubernetesObjects).toContain('Job aks-finetune/workspace-tuning-phi-3-<run tag>-copy-1');
  });

  it("runs on the local stack with the file's claims as applied: the adapter lands at the output claim's root, which no cleanup touches", async () => {
    const namespace = `kaito-pvc-${unique()}`;
    await createRunNamespace(namespace);
    // As kubectl apply -f applies the file: its two claims (azurefile-csi, as AKS has it), then the run from its Workspace.
    for (const doc of parseAllDocuments(text).map((d) => d.toJS() as { kind: string })) {
      if (doc.kind === 'PersistentVolumeClaim') await core.createNamespacedPersistentVolumeClaim({ namespace, body: doc });
    }
    const workflowId = fineTuneWorkflowId(`kaito-pvc-${unique()}`);
    const status = await temporal.withWorker(activities, async (taskQueue) => {
      // A claim that is not there fails the run before any GPU is asked for.
      await emulator.clearRequests();
      const missing = await startFineTune(temporal.env.client, { workspace: text, namespace, gpu: { vmSize }, output: { volume: 'no-such-claim' } }, { workflowId: fineTuneWorkflowId(`kaito-pvc-missing-${unique()}`), taskQueue });
      const error = (await missing.result().catch((err: unknown) => err)) as WorkflowFailedError;
      expect(error.cause?.message).toContain(`output.volume no-such-claim: no such PersistentVolumeClaim in namespace ${namespace}`);
      expect((await emulator.requests()).filter((r) => r.method === 'PUT')).toEqual([]);
      return (await startFineTune(temporal.env.client, { workspace: text, namespace, gpu: { vmSize }, pollIntervalSeconds: 1 }, { workflowId, taskQueue })).result();
    });
    expect(status.phase).toBe('succeeded');
    expect(status.adapter).toMatchObject({ volume: 'pvc-azurefile-output', files: ['adapter_config.json', 'adapter_model.safetensors'], contentDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(status.steps.map((s) => s.name)).toContain('copy adapter to volume');

    // The files on the claim's volume are the ones the run reports, with the run's lineage beside them.
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'pvc-azurefile-output', namespace });
    const dir = (await core.readPersistentVolume({ name: claim.spec!.volumeName! })).spec!.hostPath!.path;
    expect(await adapterContentDigest(dir)).toBe(status.adapter!.contentDigest);
    const lineage = JSON.parse(readFileSync(join(dir, lineageFile), 'utf8')) as { contentDigest: string; annotations: Record<string, string> };
    expect(lineage).toMatchObject({ contentDigest: status.adapter!.contentDigest, annotations: { 'sh.kaito.model.name': 'phi-3-mini-128k-instruct' } });

    // The user's claims stay; everything the run made is gone.
    // (A deleted PVC stays listed until the pvc-protection controller drops its finalizer.)
    const runObjects = () => objectsLabelled(namespace, `${runIdLabel}=${runLabelValue(workflowId)}`);
    await eventually(async () => ((await runObjects()).length === 0 ? true : undefined), 'the run objects gone', 90_000).catch(() => undefined);
    expect(await runObjects()).toEqual([]);
    const claims = (await core.listNamespacedPersistentVolumeClaim({ namespace })).items.map((c) => c.metadata!.name);
    expect(claims.sort()).toEqual(['pvc-azurefile-input', 'pvc-azurefile-output']);
    expect(await adapterContentDigest(dir)).toBe(status.adapter!.contentDigest);
  });
});
