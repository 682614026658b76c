// The table of bad specs: every one is refused by the CLI's plan (exit 2, the message names the
// field), by the typed client before any workflow exists, and by the workflow itself when
// started raw as the Temporal UI does (fails at once with InvalidRequest; nothing is created).
// The whole table goes through the same parse/plan functions the CLI calls, in-process; the
// real CLI is spawned for one case per category, and raw starts run concurrently.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BatchV1Api } from '@kubernetes/client-node';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runIdLabel } from '../activities/kubernetes/labels.js';
import { FineTuneRequestError, parseFineTuneSpec, planFineTune, startFineTune } from '../client/fine-tune-client.js';
import { runLabelValue } from '../domain/hash.js';
import { specSizeLimitBytes } from '../domain/spec-text.js';
import { createWorkerActivities } from '../workers/worker.js';
import { config, emulator, adminKubeConfig, unique } from './support.js';
import { useTemporal } from './temporal.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const temporal = useTemporal();
const dir = mkdtempSync(join(tmpdir(), 'bad-specs-'));
const run = promisify(execFile);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const valid: Record<string, Json> = {
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { urls: ['https://datasets.example.com/train.jsonl'] },
  output: { image: 'myacr.azurecr.io/adapters/phi3:v1' },
  gpu: { vmSize: 'Standard_NC24ads_A100_v4' },
};
const validWorkspace: Record<string, Json> = {
  apiVersion: 'kaito.sh/v1beta1',
  kind: 'Workspace',
  metadata: { name: 'ws-tuning' },
  resource: { instanceType: 'Standard_NC24ads_A100_v4' },
  tuning: {
    preset: { name: 'phi-3-mini-4k-instruct' },
    method: 'qlora',
    input: { urls: ['https://datasets.example.com/train.jsonl'] },
    output: { image: 'myacr.azurecr.io/adapters/ws:v1' },
  },
};

/** A copy of `base` with `path` (dotted) set to `value`, or removed when value is undefined. */
function withField(base: Record<string, Json>, path: string, value: Json | undefined): Record<string, Json> {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let node = copy as Record<string, Json>;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, Json>;
  if (value === undefined) delete node[keys.at(-1)!];
  else node[keys.at(-1)!] = value;
  return copy;
}

interface BadSpec {
  category: string;
  name: string;
  /** The spec file's text. */
  text: string;
  /** What every refusal must mention (the field path, or the text-level reason). */
  mentions: string;
  /** Whether the text parses into a value: only then can a typed or raw start be tried. */
  parses: boolean;
  isWorkspace: boolean;
}

const table: BadSpec[] = [];
let alternate = 0;
/** A case from an object: written as YAML and JSON in turn. */
function add(category: string, path: string, value: Json | undefined, mentions = path, base = valid): void {
  const doc = withField(base, path, value);
  const json = alternate++ % 2 === 1;
  table.push({
    category,
    name: `${path} = ${JSON.stringify(value) ?? 'absent'} (${json ? 'JSON' : 'YAML'})`,
    text: json ? JSON.stringify(doc, null, 2) : stringify(doc),
    mentions,
    parses: true,
    isWorkspace: base === validWorkspace,
  });
}
/** A case written as raw text (YAML-only spellings, syntax errors, size). */
function addText(category: string, name: string, text: string, mentions: string, parses = true, isWorkspace = false): void {
  table.push({ category, name, text, mentions, parses, isWorkspace });
}

// Unknown keys: refused with a did-you-mean suggestion.
for (const [path, mentions] of [
  ['tuning.epoch', 'did you mean tuning.epochs?'],
  ['modle', 'did you mean model?'],
  ['gpu.vmsize', 'did you mean gpu.vmSize?'],
  ['gpu.spots', 'did you mean gpu.spot?'],
  ['output.imagePushSecret', 'output.imagePushSecret is not a known field'],
  ['dataset.url', 'did you mean dataset.urls?'],
  ['deploy.replica', 'did you mean deploy.replicas?'],
  ['release.policies', 'did you mean release.policy?'],
  ['budget.maxUSD', 'budget.maxUSD is not a known field'],
  ['tuning.lora_r', 'did you mean tuning.loraR?'],
  ['Model', 'did you mean model?'],
  ['pollInterval', 'did you mean pollIntervalSeconds?'],
] as const) add('unknown key', path, 1, mentions);

// No string stands for a boolean.
add('string for boolean', 'gpu.spot', 'false');
add('string for boolean', 'gpu.spot', 'true');
add('string for boolean', 'gpu.reuseWarmPool', 'no');
add('string for boolean', 'tuning.loadIn4bit', 'yes');
add('string for boolean', 'deploy', 'false');
add('string for boolean', 'deploy', false);
addText('string for boolean', 'deploy: no (YAML 1.2 reads a string)', `${stringify(valid)}deploy: no\n`, 'deploy');
addText('string for boolean', 'spot: off (YAML)', `${stringify(withField(valid, 'gpu', undefined))}gpu:\n  vmSize: Standard_NC24ads_A100_v4\n  spot: off\n`, 'gpu.spot');

// No string stands for a number.
add('string for number', 'budget', '10 USD');
add('string for number', 'budget.maxCost', '10');
add('string for number', 'tuning.epochs', '3');
add('string for number', 'tuning.loraR', '16');
add('string for number', 'pollIntervalSeconds', '30');
add('string for number', 'deploy.replicas', '2');
add('string for number', 'release.idleGraceMinutes', '5');
add('string for number', 'prices', 'cheap');
add('string for number', 'tuning.maxHours', '24h');

// Numbers finite and in range.
for (const [path, value] of [
  ['tuning.epochs', 0],
  ['tuning.epochs', 1e9],
  ['tuning.loraR', 0.5],
  ['tuning.loraR', 2048],
  ['tuning.loraDropout', 1],
  ['tuning.learningRate', 2],
  ['tuning.batchSize', 0],
  ['tuning.maxSteps', -1],
  ['tuning.gradientAccumulationSteps', 1.5],
  ['pollIntervalSeconds', 0],
  ['pollIntervalSeconds', 601],
  ['deploy.replicas', 11],
  ['release.idleGraceMinutes', -1],
  ['budget.maxGpuHours', 0],
  ['tuning.maxHours', 0],
  ['tuning.maxHours', 1000],
  ['tuning.podStartTimeoutMinutes', 0],
  ['prices.spotFactor', 2],
] as const) add('number range', path, value);
addText('number range', 'epochs: .inf (YAML)', `${stringify(valid)}tuning:\n  epochs: .inf\n`, 'tuning.epochs');
addText('number range', 'learningRate: .nan (YAML)', `${stringify(valid)}tuning:\n  learningRate: .nan\n`, 'tuning.learningRate');

// Wrong types and enum values.
add('type or enum', 'method', 'LoRA');
add('type or enum', 'method', 'full');
add('type or enum', 'release.policy', 'keep');
add('type or enum', 'model', 42);
add('type or enum', 'runName', 123);
add('type or enum', 'dataset.urls', 'https://datasets.example.com/train.jsonl');
add('type or enum', 'dataset.urls', []);
add('type or enum', 'namespace', ['a']);
add('type or enum', 'tuning', [1]);
add('type or enum', 'prices', { asOf: '2026-01-01', source: 'mine', currency: 'EUR', perHour: { Standard_NC24ads_A100_v4: '3' }, spotFactor: 0.3 }, 'prices.perHour.Standard_NC24ads_A100_v4');

// Kubernetes and AKS names, protected namespaces.
add('names', 'runName', 'Bad_Name');
add('names', 'runName', 'a'.repeat(41));
add('names', 'namespace', 'UPPER');
add('names', 'namespace', 'kube-system');
add('names', 'namespace', 'kube-public');
add('names', 'namespace', 'kube-node-lease');
add('names', 'gpu.nodePool', 'GPU-pool');
add('names', 'deploy.name', 'x_y');
add('names', 'dataset', { volume: 'Bad Vol' }, 'dataset.volume');
add('names', 'output.pushSecret', 'ACR_Push', 'output.pushSecret');
add('KAITO Workspace', 'tuning.output.imagePushSecret', 'Acr_Push', 'must be a Secret name', validWorkspace);
add('KAITO Workspace', 'tuning.output.imagePushSecret', 'ACR_REGISTRY_SECRET_HERE', "is KAITO's example placeholder", validWorkspace);
add('KAITO Workspace', 'tuning.output.image', 'ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1', "still holds KAITO's example placeholders ACR_REPO_HERE, IMAGE_NAME_HERE", validWorkspace);
add('semantic', 'deploy', {}, 'output.pushSecret does not go with deploy', withField(valid, 'output', { image: 'myacr.azurecr.io/a:v1', pushSecret: 'acr-push' }));
add('semantic', 'deploy', {}, 'output.volume does not go with deploy: inference pulls the adapter as an image', withField(valid, 'output', { volume: 'adapters' }));

// Image references.
add('images', 'output.image', `myacr.azurecr.io/${'a'.repeat(300)}:v1`);
add('images', 'output.image', 'adapters/phi3:v1');
add('images', 'output.image', `myacr.azurecr.io/a@sha256:${'0'.repeat(64)}`);
add('images', 'output.image', '');
add('images', 'output.image', '169.254.169.254/adapters/x:v1');
add('images', 'output.image', '[fe80::1]:5000/adapters/x:v1');
add('images', 'dataset', { image: 'not a ref' }, 'dataset.image');
add('images', 'dataset', { image: `registry.example.com/${'d'.repeat(260)}` }, 'dataset.image');

// Dataset URLs.
for (const url of [
  'http://2130706433/a.csv',
  'http://0x7f000001/a.csv',
  'http://0177.0.0.1/a.csv',
  'http://127.1/a.csv',
  'http://[::ffff:127.0.0.1]/a.csv',
  'http://[::ffff:169.254.169.254]/latest',
  'http://[64:ff9b::a9fe:a9fe]/latest',
  'http://data.example.com./a.csv',
  'http://metadata.google.internal/computeMetadata/v1/',
  'http://metadata.google/computeMetadata/v1/',
  'http://instance-data.ec2.internal/latest/',
  'http://168.63.129.16/machine',
  'http://minio.data.svc/a.csv',
  'http://minio.data.svc.cluster.local/a.csv',
  'http://minio/a.csv',
  'https://user:secret@data.example.com/a.csv',
  'https://data.example.com/a\u0007.csv',
  'ftp://data.example.com/a.csv',
  'http://100.64.1.1/a.csv',
  'http://224.0.0.1/a.csv',
  'http://0.0.0.0/a.csv',
  'http://[fe80::1]/a.csv',
  `https://data.example.com/${'f'.repeat(256)}.csv`,
]) add('dataset URL', 'dataset.urls', [url], 'dataset.urls[0]');

// What only the domain knows: presets, sizes, memory, combinations.
add('semantic', 'model', 'gpt-5');
add('semantic', 'gpu.vmSize', 'Standard_X');
add('semantic', 'gpu.vmSize', 'Standard_D4s_v3');
add('semantic', 'gpu.vmSize', 'Standard_NC4as_T4_v3');
add('semantic', 'gpu.vmSize', 'Standard_NV36ads_A10_v5', 'needs about', withField(withField(valid, 'method', 'lora'), 'model', 'phi-3-medium-4k-instruct'));
add('semantic', 'tuning', { loadIn4bit: true, loadIn8bit: true }, 'method qlora needs exactly one of loadIn4bit and loadIn8bit');
add('semantic', 'dataset', {}, 'dataset needs exactly one of urls, urlsSecret, image or volume');
add('semantic', 'dataset', { urls: ['https://a.example.com/x.csv'], urlsSecret: { name: 'sas' } }, 'dataset needs exactly one');
add('names', 'dataset', { urlsSecret: { name: 'Bad Secret' } }, 'dataset.urlsSecret.name');
add('semantic', 'dataset', { urls: ['https://a.example.com/x.csv'], volume: 'data' }, 'dataset needs exactly one');
add('semantic', 'output', undefined, 'output.image or output.volume is required');
add('semantic', 'output.volume', 'adapters', 'output needs exactly one of image and volume');
add('semantic', 'output', { volume: 'adapters', pushSecret: 'acr-push' }, 'output.pushSecret logs in to a registry: it goes with output.image, not with output.volume');
add('names', 'output', { volume: 'Bad_Claim' }, 'output.volume');
add('semantic', 'dataset', { urls: ['https://a.example.com/x.csv'], imagePullSecret: 'pull' }, 'dataset.imagePullSecret');
add('semantic', 'budget', { maxCost: 10 }, 'budget.maxCost', withField(valid, 'prices', { asOf: '2026-01-01', source: 'mine', currency: 'EUR', perHour: {}, spotFactor: 0.3 }));

// KAITO Workspace files: every field honoured or refused by name with the reason.
add('KAITO Workspace', 'apiVersion', 'kaito.sh/v1', 'workspace.apiVersion', validWorkspace);
add('KAITO Workspace', 'resource.count', 2, 'workspace.resource.count', validWorkspace);
add('KAITO Workspace', 'inference', { preset: { name: 'phi-3-mini-4k-instruct' } }, 'workspace.inference is not supported', validWorkspace);
add('KAITO Workspace', 'tuning.config', 'My_Params', 'workspace.tuning.config', validWorkspace);
add('KAITO Workspace', 'tuning.preset.name', 'falcon-7b', 'KAITO no longer tunes falcon models', validWorkspace);
add('KAITO Workspace', 'resource.instanceType', 'Standard_NC6s_v3', 'Azure retired it on 2025-09-30', validWorkspace);
add('KAITO Workspace', 'tuning.output.volumeSource', { emptyDir: {} }, 'workspace.tuning.output.volumeSource.emptyDir', validWorkspace);
add('KAITO Workspace', 'tuning.preset.presetOptions', { image: 'private/model' }, 'workspace.tuning.preset.presetOptions is not supported', validWorkspace);
add('KAITO Workspace', 'tuning.method', 'dora', 'workspace.tuning.method', validWorkspace);
add('KAITO Workspace', 'tuning.epochs', 3, 'workspace.tuning.epochs is not a known field', validWorkspace);
add('KAITO Workspace', 'tuning.input.urls', ['http://10.0.0.5/a.csv'], 'dataset.urls[0]', validWorkspace);
add('KAITO Workspace', 'metadata.namespace', 'kube-system', 'kube-system', validWorkspace);
addText('KAITO Workspace', 'two Workspaces in one file', `${stringify(validWorkspace)}---\n${stringify(validWorkspace)}`, '2 KAITO Workspaces', true, true);
addText('KAITO Workspace', 'PVCs and no Workspace', 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: a}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: b}\n', '0 KAITO Workspaces', true, true);
addText('KAITO Workspace', 'Workspace with a YAML syntax error', `${stringify(validWorkspace)}tuning: [\n`, 'YAML syntax error', true, true);

// Text that is not a spec: refused with exit 2 before validation, syntax errors with line and column.
addText('spec text', 'YAML syntax error', 'model: phi-3-mini-4k-instruct\ngpu:\n  vmSize: [Standard_NC24ads_A100_v4\n', ':4:1: YAML syntax error', false);
addText('spec text', 'JSON syntax error', '{"model": "phi-3-mini-4k-instruct",, "gpu": {}}', ':1:36: YAML syntax error', false);
addText('spec text', 'empty file', '', 'is empty', false);
addText('spec text', 'over 256 KiB', `# ${'x'.repeat(specSizeLimitBytes)}\n${stringify(valid)}`, 'at most 262144 bytes', false);
addText('spec text', 'duplicate key', `${stringify(valid)}model: phi-3-mini-128k-instruct\n`, 'YAML syntax error', false);
addText('spec text', 'alias bomb', `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`, 'alias', false);
const manyKeys = stringify(Object.fromEntries(Array.from({ length: 30_000 }, (_, k) => [`k${k}`, 1])));
addText('spec text', '255 KiB of unknown keys (50 reported)', manyKeys.slice(0, manyKeys.lastIndexOf('\n', 255 * 1024) + 1), 'more unknown fields in request');
addText('spec text', 'a scalar document', 'hello\n', 'request must be an object', true);
addText('spec text', 'a list document', '- model: phi-3-mini-4k-instruct\n', 'request must be an object', true);

const categories = [...new Set(table.map((c) => c.category))];
const fileOf = new Map<BadSpec, string>();
table.forEach((c, i) => {
  const file = join(dir, `case-${i}.${c.text.trimStart().startsWith('{') ? 'json' : 'yaml'}`);
  writeFileSync(file, c.text);
  fileOf.set(c, file);
});

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', ...args], { timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

/** At most `limit` promises at a time (the CLI spawns share the machine with the stack). */
async function inBatches<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += limit) results.push(...(await Promise.all(items.slice(i, i + limit).map(work))));
  return results;
}

describe('bad specs', () => {
  it('holds at least 100 cases across the categories', () => {
    expect(table.length).toBeGreaterThanOrEqual(100);
    expect(categories.length).toBeGreaterThanOrEqual(10);
  });

  it.each(table.map((c) => [`${c.category}: ${c.name}`, c] as const))('plan refuses %s', (_name, c) => {
    let error: unknown;
    try {
      planFineTune(parseFineTuneSpec(c.text, fileOf.get(c)!), { workflowId: 'bad-spec' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FineTuneRequestError);
    expect((error as Error).message).toContain(c.mentions);
    // Problems echo a short value, never the document.
    for (const problem of (error as FineTuneRequestError).problems) expect(problem.length).toBeLessThan(600);
  });

  it('the real CLI exits 2 naming the field, for one case of each category', async () => {
    const sample = categories.map((category) => table.find((c) => c.category === category)!);
    const results = await inBatches(sample, 4, (c) => cli(['plan', fileOf.get(c)!]));
    sample.forEach((c, i) => {
      expect(results[i]!.code, `${c.category}: ${c.name}\n${results[i]!.out}`).toBe(2);
      expect(results[i]!.out, c.name).toContain(c.mentions);
    });
    const missing = await cli(['plan', join(dir, 'no-such-file.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('cannot be read');
  });

  it('plan of a spec just under 256 KiB succeeds, and of one over the cap is refused without parsing', async () => {
    const padded = `${stringify(valid)}# ${'x'.repeat(specSizeLimitBytes - 1024)}\n`;
    const under = join(dir, 'under-cap.yaml');
    writeFileSync(under, padded);
    const over = join(dir, 'over-cap.yaml');
    writeFileSync(over, `${padded}${'#'.repeat(4096)}\n`);
    const [ok, refused] = await Promise.all([cli(['plan', under]), cli(['plan', over])]);
    expect(ok.code, ok.out).toBe(0);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain(`a spec may be at most ${specSizeLimitBytes} bytes`);
  });

  it('the typed client refuses each before starting a workflow', async () => {
    const parsed = table.filter((c) => c.parses);
    for (const c of parsed) {
      let request: unknown;
      try {
        request = parseFineTuneSpec(c.text, c.name);
      } catch (err) {
        expect((err as Error).message).toContain(c.mentions);
        continue;
      }
      const workflowId = fineTuneWorkflowId(`bad-typed-${unique()}`);
      await expect(startFineTune(temporal.env.client, request as never, { workflowId, taskQueue: 'unused' }), c.name).rejects.toThrow(c.mentions);
    }
  });

  it('a raw start like the UI fails at once with InvalidRequest and creates nothing', async () => {
    // Workspace files go in as text, as the UI's JSON form would carry them; requests as their JSON value.
    const raw = table
      .filter((c) => c.parses)
      .flatMap((c) => {
        if (c.isWorkspace) return [{ c, arg: { workspace: c.text } }];
        try {
          return [{ c, arg: parseFineTuneSpec(c.text, c.name) as unknown }];
        } catch {
          return [];
        }
      });
    expect(raw.length).toBeGreaterThanOrEqual(90);
    await emulator.clearRequests();
    const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
    const ids = raw.map(() => fineTuneWorkflowId(`bad-raw-${unique(10)}`));
    const failures = await temporal.withWorker(activities, (taskQueue) =>
      Promise.all(
        raw.map(({ arg }, i) =>
          temporal.env.client.workflow
            .start('fineTune', { taskQueue, workflowId: ids[i]!, args: [arg] })
            .then((handle) => handle.result())
            .then(
              () => undefined,
              (err: unknown) => err,
            ),
        ),
      ),
    );
    raw.forEach(({ c }, i) => {
      const failure = failures[i];
      expect(failure, c.name).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type, c.name).toBe('InvalidRequest');
      expect(cause.message, c.name).toContain(c.mentions);
    });
    expect(await emulator.requests()).toEqual([]);
    const runLabels = new Set(ids.map(runLabelValue));
    const jobs = await adminKubeConfig.makeApiClient(BatchV1Api).listJobForAllNamespaces({ labelSelector: runIdLabel });
    expect(jobs.items.filter((j) => runLabels.has(j.metadata?.labels?.[runIdLabel] ?? ''))).toEqual([]);
  });
});

describe('KAITO Workspace files that are accepted', () => {
  it('picks the Workspace out of a multi-document file and reads method in any case', () => {
    const pvc = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n';
    const text = `${pvc}---\n${stringify(withField(validWorkspace, 'tuning.method', 'QLoRA'))}`;
    const { plan } = planFineTune(parseFineTuneSpec(text, 'multi.yaml'), { workflowId: 'ws' });
    expect(plan.method).toBe('qlora');
    expect(plan.runName).toBe('ws-tuning');
  });

  it('accepts kaito.sh/v1alpha1 as well', () => {
    const { plan } = planFineTune(parseFineTuneSpec(stringify(withField(validWorkspace, 'apiVersion', 'kaito.sh/v1alpha1')), 'a.yaml'), { workflowId: 'ws' });
    expect(plan.model.name).toBe('phi-3-mini-4k-instruct');
  });
});
