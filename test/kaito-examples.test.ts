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
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { createWorkerActivities } from '../workers/worker.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { type AuthRegistry, dockerConfigJson, startAuthRegistry } from './auth-registry.js';
import { adminKubeConfig, config, core, createRunNamespace, emulator, unique } from './support.js';
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

describe('a multi-document KAITO file', () => {
  it('is read for its Workspace, and refused for the output volume this product does not write', () => {
    expect(planProblems(example('kaito_workspace_tuning_phi_3_with_pvc_volume.yaml'))).toEqual([
      'workspace.tuning.output.volumeSource is not supported: volume outputs are not supported: the adapter is pushed as an image (output.image)',
    ]);
    const text = readFileSync(example('kaito_workspace_tuning_phi_3_with_pvc_volume.yaml'), 'utf8');
    expect(parseAllDocuments(text).map((d) => (d.toJS() as { kind: string }).kind)).toEqual(['PersistentVolumeClaim', 'PersistentVolumeClaim', 'Workspace']);
    expect(parseFineTuneSpec(text, 'pvc.yaml')).toMatchObject({ workspace: { kind: 'Workspace' } });
  });
});
