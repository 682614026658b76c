// Validation runs in the workflow before anything is created: every problem a person can make,
// reported at once with a message that says what to do.
import { describe, expect, it } from 'vitest';
import { runLabelValue } from '../domain/hash.js';
import { type FineTunePlan, type FineTuneRequest, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { parseImageReference } from '../domain/image-reference.js';
import { parseSpecText } from '../domain/spec-text.js';
import { trainingConfig } from '../domain/training-config.js';

const valid: FineTuneRequest = {
  model: 'phi-3-mini-4k-instruct',
  method: 'lora',
  dataset: { urls: ['https://data.example.com/chats.jsonl'] },
  output: { image: 'myacr.azurecr.io/adapters/phi3:v1' },
  gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
};
const problems = (request: FineTuneRequest) => {
  const result = validateFineTuneRequest(request, 'run-1');
  return result.ok ? [] : result.problems;
};

describe('fineTune request validation', () => {
  it('accepts a good request and fills in the plan', () => {
    const result = validateFineTuneRequest(valid, 'Run_1');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.plan).toMatchObject({
      runName: 'run-1',
      namespace: 'aks-finetune',
      output: { registry: 'myacr.azurecr.io', repository: 'adapters/phi3', tag: 'v1' },
      release: { policy: 'delete', idleGraceMinutes: 0 },
      pollIntervalSeconds: 30,
    });
    expect(result.plan.config.training_config.LoraConfig).toEqual({ r: 8, lora_alpha: 8, lora_dropout: 0 });
    expect(result.plan.config.training_config.QuantizationConfig).toBeUndefined();
  });

  it('names a run after its workflow id, keeping long ids apart', () => {
    const name = (id: string) => {
      const result = validateFineTuneRequest(valid, id);
      return result.ok ? result.plan.runName : undefined;
    };
    const a = name('fine-tune-phi-3-mini-4k-instruct-2026-11-27t10-00-00-000z')!;
    const b = name('fine-tune-phi-3-mini-4k-instruct-2026-11-27t11-00-00-000z')!;
    expect(a).not.toBe(b);
    expect(a).toMatch(/^fine-tune-phi-3-mini-4k-instruct-[0-9a-z]+$/);
    expect(a.length).toBeLessThanOrEqual(40);
  });

  it('turns any workflow id into a valid, distinct Kubernetes label value', () => {
    expect(runLabelValue('ft-123')).toBe('ft-123');
    const scheduled = runLabelValue('retrain-nightly-2026-11-27T11:42:11Z-fine-tune');
    expect(scheduled).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    expect(scheduled).not.toBe(runLabelValue('retrain-nightly-2026-11-27T11:42:12Z-fine-tune'));
    expect(runLabelValue(`x${'y'.repeat(100)}`).length).toBeLessThanOrEqual(63);
  });

  it('reports every problem at once', () => {
    const found = problems({ model: 'gpt-5', method: 'qlora', tuning: { loadIn4bit: true, loadIn8bit: true }, gpu: { vmSize: 'Standard_X' } });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringContaining('model "gpt-5" is not a preset KAITO can tune; choose one of phi-3-mini-4k-instruct'),
        'method qlora needs exactly one of loadIn4bit and loadIn8bit set to true',
        'gpu.vmSize "Standard_X" is not a known Azure VM size',
        'dataset needs exactly one of urls, urlsSecret, image or volume',
        'output.image or output.volume is required: the registry/repository[:tag] the adapter image is pushed to, or the PersistentVolumeClaim its files are copied to',
      ]),
    );
  });

  it('checks budgets', () => {
    expect(problems({ ...valid, budget: { maxGpuHours: 0, maxCost: -1 } })).toEqual([
      'budget.maxGpuHours must be a number above 0 and up to 1000000, not 0',
      'budget.maxCost must be a number above 0 and up to 1000000, not -1',
    ]);
    expect(problems({ ...valid, budget: { maxCost: 10 }, prices: { asOf: '2026-01-01', source: 'mine', currency: 'EUR', perHour: {}, spotFactor: 0.3 } })).toEqual([
      'budget.maxCost needs a price for Standard_NC24ads_A100_v4: add it to prices.perHour',
    ]);
  });

  it('refuses quantization with lora', () => {
    expect(problems({ ...valid, tuning: { loadIn4bit: true } })).toEqual([
      'method lora trains a full-precision base: loadIn4bit and loadIn8bit must not be true (use method qlora for a quantized base)',
    ]);
  });

  it('checks that the model fits the GPU, and says what would', () => {
    const [tooBig] = problems({ ...valid, model: 'phi-3-medium-4k-instruct', gpu: { vmSize: 'Standard_NV36ads_A10_v5' } });
    expect(tooBig).toMatch(/^phi-3-medium-4k-instruct with lora needs about [\d.]+ GiB per GPU, but Standard_NV36ads_A10_v5's A10 GPUs have 24 GiB: use method qlora \(about [\d.]+ GiB\) or choose Standard_NC24ads_A100_v4$/);
    expect(problems({ ...valid, model: 'phi-3-medium-4k-instruct', method: 'qlora', gpu: { vmSize: 'Standard_NV36ads_A10_v5' } })).toEqual([]);
    expect(problems({ ...valid, model: 'qwen2.5-coder-32b-instruct' })[0]).toMatch(/needs about .* but Standard_NC24ads_A100_v4's A100 GPUs have 80 GiB: use method qlora/);
  });

  it('refuses GPUs that cannot compute in bfloat16, and sizes without GPUs', () => {
    expect(problems({ ...valid, gpu: { vmSize: 'Standard_NC4as_T4_v3' } })[0]).toContain('T4 GPUs, which do not compute in bfloat16');
    expect(problems({ ...valid, gpu: { vmSize: 'Standard_D4s_v3' } })).toEqual(['gpu.vmSize Standard_D4s_v3 has no GPUs']);
  });

  it('reports dataset URL problems by index (the check itself: test/dataset-url.test.ts)', () => {
    expect(problems({ ...valid, dataset: { urls: ['http://10.0.0.1/x.csv'] } })).toEqual(['dataset.urls[0]: http://10.0.0.1/x.csv: 10.0.0.1 is a private address']);
  });

  it('checks image references and names Kubernetes would reject', () => {
    expect(parseImageReference('myacr.azurecr.io/a/b:v1')).toEqual({ registry: 'myacr.azurecr.io', repository: 'a/b', tag: 'v1', digest: undefined });
    expect(parseImageReference('127.0.0.1:15000/a:1')?.registry).toBe('127.0.0.1:15000');
    expect(parseImageReference('library/ubuntu')?.registry).toBe('docker.io');
    expect(parseImageReference('Bad Image')).toBeUndefined();
    expect(problems({ ...valid, runName: 'Not_A_Name', namespace: 'UPPER', deploy: { name: 'ok', replicas: 0 } })).toEqual([
      `runName must be a run name: a DNS label of at most 40 characters (lowercase letters, digits, '-'), not "Not_A_Name"`,
      'deploy.replicas must be an integer from 1 to 10, not 0',
      `namespace must be a namespace: a DNS label of at most 63 characters (lowercase letters, digits, '-'), not "UPPER"`,
    ]);
    expect(problems({ ...valid, output: { image: 'adapters/phi3:v1' }, dataset: { image: 'not a ref' } })).toEqual([
      'dataset.image "not a ref" is not a valid image reference',
      'output.image "adapters/phi3:v1" names no registry; write it as myregistry.azurecr.io/repository[:tag]',
    ]);
    expect(problems({ ...valid, dataset: { urls: ['https://a.example/x.csv'], volume: 'data' } })).toEqual([
      'dataset needs exactly one of urls, urlsSecret, image or volume (got urls and volume)',
    ]);
  });

  it('translates a KAITO tuning Workspace, given as YAML', () => {
    const workspace = `
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: workspace-tuning-phi-3
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels: { app: tuning-phi-3 }
tuning:
  preset:
    name: phi-3-mini-128k-instruct
  method: qlora
  input:
    urls: ["https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/train-00000-of-00001.parquet"]
  output:
    image: myacr.azurecr.io/adapters/phi-3-dolly:0.0.1
`;
    const result = validateFineTuneRequest({ workspace: parseSpecText(workspace, 'workspace') }, 'wf');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.plan).toMatchObject({
      runName: 'workspace-tuning-phi-3',
      method: 'qlora',
      model: { name: 'phi-3-mini-128k-instruct' },
      vmSize: { name: 'Standard_NC24ads_A100_v4' },
      output: { repository: 'adapters/phi-3-dolly', tag: '0.0.1' },
    });
    expect(problems({ workspace: 'kind: [' } as never)).toEqual([expect.stringContaining('workspace must be a KAITO Workspace object (Workspace text is parsed before validation), not "kind: ["')]);
  });

  it("takes a Workspace's output volume, and lets the request's destination replace the Workspace's, of either kind", () => {
    const workspace = parseSpecText(
      `
apiVersion: kaito.sh/v1beta1
kind: Workspace
resource: { instanceType: Standard_NC24ads_A100_v4 }
tuning:
  preset: { name: phi-3-mini-128k-instruct }
  method: qlora
  input: { volumeSource: { persistentVolumeClaim: { claimName: pvc-in } } }
  output: { volumeSource: { persistentVolumeClaim: { claimName: pvc-out } } }
`,
      'workspace',
    ) as FineTuneRequest['workspace'];
    const plan = (request: FineTuneRequest) => {
      const result = validateFineTuneRequest(request, 'wf');
      if (!result.ok) throw new Error(result.problems.join('; '));
      return result.plan;
    };
    expect(plan({ workspace })).toMatchObject({ output: { kind: 'volume', claimName: 'pvc-out' }, dataset: { volume: 'pvc-in' } });
    expect(plan({ workspace, output: { image: 'myacr.azurecr.io/adapters/phi3:v2' } }).output).toMatchObject({ kind: 'image', repository: 'adapters/phi3', tag: 'v2' });
    // A request's volume replaces a Workspace's image and the push Secret that went with it.
    const imageWorkspace = { ...workspace!, tuning: { ...workspace!.tuning, output: { image: 'myacr.azurecr.io/a:v1', imagePushSecret: 'acr-push' } } };
    expect(plan({ workspace: imageWorkspace, output: { volume: 'pvc-mine' } })).toMatchObject({ output: { kind: 'volume', claimName: 'pvc-mine' }, pushSecret: undefined });
    expect(problems({ ...valid, output: { volume: 'pvc-out' }, promote: { endpoint: { name: 'chat' }, alias: 'prod', suite: { jsonl: '{"prompt": "hi", "expect": {"contains": "hello"}}' } } } as FineTuneRequest)).toContain(
      'output.volume does not go with promote: inference pulls the adapter as an image; use output.image to serve it',
    );
  });

  it('builds KAITO qlora parameters from its template and the overrides', () => {
    expect(trainingConfig('qlora', { loraR: 16, epochs: 2 }).training_config).toMatchObject({
      QuantizationConfig: { load_in_4bit: true, load_in_8bit: false, bnb_4bit_quant_type: 'nf4', bnb_4bit_compute_dtype: 'bfloat16', bnb_4bit_use_double_quant: true },
      LoraConfig: { r: 16, lora_alpha: 8, lora_dropout: 0 },
      TrainingArguments: { output_dir: '/mnt/results', num_train_epochs: 2, save_strategy: 'no', per_device_train_batch_size: 1 },
      DataCollator: { mlm: true },
      DatasetConfig: { shuffle_dataset: true, train_test_split: 1 },
    });
    expect(trainingConfig('qlora').training_config.TrainingArguments).not.toHaveProperty('eval_strategy');
  });

  it("holds out evaluation.testSplit through KAITO's DatasetConfig (train_test_split is the train fraction) and evaluates each epoch", () => {
    const { plan } = validateFineTuneRequest({ ...valid, evaluation: { testSplit: 0.1 } }, 'wf') as { plan: FineTunePlan };
    expect(plan.evaluation).toEqual({ testSplit: 0.1 });
    expect(plan.config.training_config).toMatchObject({ DatasetConfig: { train_test_split: 0.9 }, TrainingArguments: { eval_strategy: 'epoch' } });
    expect(problems({ ...valid, evaluation: { testSplit: 0.9 } })).toEqual([expect.stringContaining('evaluation.testSplit')]);
  });
});
