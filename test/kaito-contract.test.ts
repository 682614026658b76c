// Our tuning Job against the Job KAITO's own controller code renders for the same tuning
// Workspace: scripts/kaito-render calls tuning.CreatePresetTuning from github.com/kaito-project/kaito
// at the release pinned in its go.mod (built by scripts/setup.sh into .tools/bin). Compared field
// by field; every difference must be listed below with its reason, and every listed one must occur.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1Job, V1PodSpec, V1Toleration } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { defaultImages, tuningJob } from '../activities/kubernetes/tuning-job.js';
import type { DatasetSource } from '../domain/fine-tune-request.js';
import { findModelPreset, modelPresetNames, type TuningMethod } from '../domain/models.js';
import { trainingConfig } from '../domain/training-config.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { loadStackConfig } from '../scripts/stack/config.js';

const renderer = join(loadStackConfig().toolsBin, 'kaito-render');

interface Scenario {
  preset: string;
  method: TuningMethod;
  vmSize: string;
  dataset: DatasetSource;
  /** tuning.trainer: the product's entrypoint unless "kaito". */
  trainer?: 'kaito';
}

/** Each difference between our Job and KAITO's, by field, with why it is intended. */
const intendedDifferences: Record<string, string> = {
  'job.backoffLimit': 'KAITO leaves the Kubernetes default (6); a run sets its own bounded retry count from the request',
  'job.activeDeadlineSeconds': 'KAITO sets no deadline; a run bounds its training by the request\'s tuning.maxHours, so a hung trainer cannot hold GPUs forever',
  'trainer.name':
    'KAITO names the trainer container after the Workspace; a run has no Workspace, and a fixed name keeps `kubectl logs -c trainer` the same for every run',
  'trainer.image':
    'kaito-base:0.5.0 is the trainer image of KAITO v0.12.0 (supported_models.yaml, "base"); the Go module proxy serves KAITO only up to v0.11.0, whose base tag is 0.4.2',
  'dataset.name': 'our own downloader script (below), so its own container name',
  'dataset.image':
    'URLs: curlimages/curl pinned to 8.11.1 where KAITO pulls :latest. Image: upstream skopeo v1.17.0 where KAITO uses Microsoft\'s skopeo 1.14.4 build; our script needs grep and gzip-capable tar, which that build is not known to have',
  'dataset.command':
    'URLs: our script puts each quoted URL and file name in the command, fails on the first empty or failed download and lets curl retry; KAITO\'s data-downloader.sh reads $DATA_URLS. Same result: each URL\'s file, by its base name, in /mnt/data. Image: our skopeo script vs KAITO\'s puller.sh; both copy the image\'s /data to /mnt/data',
  'dataset.env': 'our downloader needs no DATA_URLS/DATA_VOLUME_PATH: the URLs are in its command',
  'dataset.mounts':
    'a private dataset image: our puller reads the pull Secret at /etc/dataset-pull-secret (skopeo --authfile); KAITO mounts it under /root/.docker/config.d',
  'trainer.mounts':
    'KAITO also mounts the dataset image\'s pull Secret into the trainer (SetTrainingInput mounts every data-source volume into every container); ours keeps registry credentials out of the trainer',
  'volume[data-volume]': 'a dataset PVC is mounted read-only: the trainer only reads it, so a run cannot alter the user\'s dataset',
  'volume[dataset-pull-secret]': 'the pull Secret as a dockerconfigjson file for skopeo (see dataset.mounts)',
  'volume[docker-config--tuning-input]': 'KAITO\'s volume for the same pull Secret (see dataset.mounts)',
  'trainer.command':
    "the product's trainer entrypoint (/mnt/config/aks_finetune_trainer.py, from the parameters ConfigMap) in place of fine_tuning.py, under the same launcher, working directory and metrics server: it imports KAITO's own config parser and dataset code from /workspace/tfs and adds progress lines, time-based checkpoints and resume, which KAITO's trainer lacks (its own header lists how it differs from fine_tuning.py). tuning.trainer: kaito runs KAITO's command unchanged",
  'trainer.env': "the entrypoint's checkpoint settings, AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES and AKS_FINETUNE_CHECKPOINTS_KEPT (tuning.checkpointEveryMinutes, tuning.checkpointsKept), after KAITO's own variables",
  'pod.tolerations':
    'we tolerate exactly the taints of the pool the run created (sku=gpu) and AKS\'s spot taint; KAITO adds a toleration for the "gpu" taint of its own auto-provisioned nodes, which our pools never carry',
};

const scenarios: Scenario[] = [
  // Every preset, the default request shape: LoRA, dataset URLs, one A100. mistral-7b is below.
  ...modelPresetNames
    .filter((preset) => preset !== 'mistral-7b')
    .map((preset): Scenario => ({ preset, method: 'lora', vmSize: 'Standard_NC24ads_A100_v4', dataset: { urls: ['https://data.example.com/sets/train.jsonl'] } })),
  { preset: 'phi-4', method: 'qlora', vmSize: 'Standard_NC48ads_A100_v4', dataset: { volume: 'chats' } },
  // KAITO's trainer byte for byte (tuning.trainer: kaito).
  { preset: 'phi-3-medium-4k-instruct', method: 'qlora', vmSize: 'Standard_NC24ads_A100_v4', dataset: { urls: ['https://data.example.com/sets/train.jsonl'] }, trainer: 'kaito' },
  {
    preset: 'qwen2.5-coder-32b-instruct',
    method: 'qlora',
    vmSize: 'Standard_NC96ads_A100_v4',
    dataset: { image: 'myacr.azurecr.io/datasets/chats:v1', imagePullSecret: 'acr-pull' },
  },
];

const pool = 'ft1a2b3c4d';

function kaitoWorkspace(s: Scenario) {
  const { urls, image, imagePullSecret, volume } = s.dataset;
  return {
    apiVersion: 'kaito.sh/v1beta1',
    kind: 'Workspace',
    metadata: { name: 'tune', namespace: 'default' },
    resource: { instanceType: s.vmSize, labelSelector: { matchLabels: { 'kubernetes.azure.com/agentpool': pool } } },
    tuning: {
      preset: { name: s.preset },
      method: s.method,
      config: 'params',
      input: urls ? { urls } : image ? { image, imagePullSecrets: imagePullSecret ? [imagePullSecret] : undefined } : { volumeSource: { persistentVolumeClaim: { claimName: volume } } },
      output: { volumeSource: { persistentVolumeClaim: { claimName: 'results' } } },
    },
  };
}

function renderKaito(s: Scenario): V1Job {
  if (!existsSync(renderer)) throw new Error(`${renderer} is missing: run npm run setup, which builds it`);
  const input = JSON.stringify({ workspace: kaitoWorkspace(s), trainingConfig: stringify(trainingConfig(s.method)) });
  return JSON.parse(execFileSync(renderer, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })) as V1Job;
}

function renderOurs(s: Scenario): V1Job {
  const vm = findVmSize(s.vmSize)!;
  return tuningJob(
    {
      name: 'tune',
      owner: { workflowId: 'run-1', runId: '00000000-0000-0000-0000-000000000001' },
      model: findModelPreset(s.preset)!,
      gpus: vm.gpus,
      pool,
      taints: ['sku=gpu:NoSchedule'],
      dataset: s.dataset,
      configMap: 'params',
      resultsClaim: 'results',
      backoffLimit: 2,
      activeDeadlineSeconds: 86_400,
      trainer: s.trainer === 'kaito' ? { kind: 'kaito' } : { kind: 'aks-finetune', checkpoint: { everyMinutes: 15, kept: 2 } },
    },
    defaultImages,
  );
}

// Kubernetes' defaults written out, so an omitted field and its default compare equal.
const tolerations = (list: V1Toleration[] = []) => list.map((t) => ({ operator: 'Equal', ...t }));
const placement = (pod: V1PodSpec) => [
  ...Object.entries(pod.nodeSelector ?? {}).map(([key, value]) => `${key} In ${value}`),
  ...(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []).flatMap((term) =>
    (term.matchExpressions ?? []).map((e) => `${e.key} ${e.operator} ${(e.values ?? []).join(',')}`),
  ),
];

function containerFields(role: string, c: V1Container | undefined): Record<string, unknown> {
  if (!c) return { [role]: undefined };
  return {
    [`${role}.name`]: c.name,
    [`${role}.image`]: c.image,
    [`${role}.command`]: [...(c.command ?? []), ...(c.args ?? [])],
    [`${role}.env`]: c.env ?? [],
    [`${role}.mounts`]: (c.volumeMounts ?? []).map((m) => `${m.name}:${m.mountPath}${m.readOnly ? ':ro' : ''}`),
    [`${role}.resources`]: c.resources ?? {},
    [`${role}.ports`]: c.ports ?? [],
  };
}

/** The compared fields of a tuning Job: weights puller, dataset fetcher and trainer by role. */
function fields(job: V1Job): Record<string, unknown> {
  const { template, ...jobSpec } = job.spec!;
  const pod = template.spec!;
  const [weights, dataset] = pod.initContainers ?? [];
  return {
    ...Object.fromEntries(Object.entries(jobSpec).map(([key, value]) => [`job.${key}`, value])),
    ...containerFields('weights', weights),
    ...containerFields('dataset', dataset),
    ...containerFields('trainer', pod.containers[0]),
    'pod.containers': pod.containers.length,
    ...Object.fromEntries((pod.volumes ?? []).map(({ name, ...source }) => [`volume[${name}]`, source])),
    'pod.tolerations': tolerations(pod.tolerations),
    'pod.placement': placement(pod),
    'pod.restartPolicy': pod.restartPolicy,
    'pod.imagePullSecrets': pod.imagePullSecrets ?? [],
  };
}

/** JSON with object keys sorted: key order carries no meaning in a manifest. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );

function differences(ours: Record<string, unknown>, kaito: Record<string, unknown>) {
  const keys = [...new Set([...Object.keys(ours), ...Object.keys(kaito)])];
  return keys.filter((key) => canonical(ours[key]) !== canonical(kaito[key])).map((field) => ({ field, ours: ours[field], kaito: kaito[field] }));
}

describe("the tuning Job against KAITO's own code", () => {
  const seen = new Set<string>();

  it.each(scenarios.map((s) => [`${s.preset} ${s.method} on ${s.vmSize}, dataset ${Object.keys(s.dataset).join('+')}`, s] as const))(
    '%s differs from KAITO only where intended',
    (_name, scenario) => {
      const ours = fields(renderOurs(scenario));
      const kaito = fields(renderKaito(scenario));
      const found = differences(ours, kaito);
      found.forEach((d) => seen.add(d.field));
      expect(found.filter((d) => !(d.field in intendedDifferences))).toEqual([]);
      // The fields that carry KAITO's contract are the same, not merely listed.
      for (const field of ['weights.image', 'weights.command', 'trainer.resources', 'trainer.ports', 'pod.placement']) {
        expect(ours[field], field).toEqual(kaito[field]);
      }
      if (scenario.trainer === 'kaito') {
        expect(ours['trainer.command']).toEqual(kaito['trainer.command']);
        expect(ours['trainer.env']).toEqual(kaito['trainer.env']);
      } else {
        // KAITO's command with only the script swapped, KAITO's variables with the checkpoint settings after them.
        const script = (command: unknown) => JSON.stringify(command).replace('/mnt/config/aks_finetune_trainer.py', '/workspace/tfs/fine_tuning.py');
        expect(script(ours['trainer.command'])).toEqual(JSON.stringify(kaito['trainer.command']));
        expect((ours['trainer.env'] as unknown[]).slice(0, (kaito['trainer.env'] as unknown[]).length)).toEqual(kaito['trainer.env']);
      }
    },
  );

  it('lists no difference that no longer occurs', () => {
    expect(Object.keys(intendedDifferences).filter((field) => !seen.has(field))).toEqual([]);
  });

  it("pulls each preset's weights with KAITO's own command", () => {
    const job = renderKaito(scenarios[0]!);
    expect(job.spec!.template.spec!.initContainers![0]!.command).toEqual([
      'oras',
      'pull',
      'mcr.microsoft.com/aks/kaito/kaito-phi-3-mini-4k-instruct:0.2.0',
      '-o',
      '/workspace/weights',
    ]);
  });

  it('finds KAITO unable to tune the presets we refuse, and mistral-7b broken at the pinned release', () => {
    const fails = (preset: string) => {
      try {
        renderKaito({ ...scenarios[0]!, preset });
        return 'rendered';
      } catch (err) {
        return String((err as { stderr?: string }).stderr);
      }
    };
    for (const preset of ['mistral-7b-instruct', 'falcon-7b', 'falcon-7b-instruct']) {
      expect(findModelPreset(preset)).toBeUndefined();
      expect(fails(preset)).toMatch(/does not support tuning|model is not registered/);
    }
    // KAITO v0.11.0 (and v0.12.0) keys mistral's tuning parameters "mistral-7b-v0.3", a name its
    // metadata lacks, so its controller panics; the weights image and trainer are the generic ones.
    expect(fails('mistral-7b')).toContain('model metadata not found: mistral-7b-v0.3');
  });
});
