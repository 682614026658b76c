// What reaches the tuning pod and the run's records from a dataset source: the dataset image's
// pull Secret is given to the tool that pulls it, and recorded URLs lose their query strings.
import { describe, expect, it } from 'vitest';
import { defaultImages, tuningJob } from '../activities/kubernetes/tuning-job.js';
import { datasetForRecords, urlForRecords } from '../domain/dataset-url.js';
import { findModelPreset } from '../domain/models.js';

const job = (dataset: { image?: string; imagePullSecret?: string }) =>
  tuningJob(
    { name: 'r1-train', runId: 'r1', workflowId: 'wf', model: findModelPreset('phi-3-mini-4k-instruct')!, gpus: 1, pool: 'ft1', taints: [], dataset, configMap: 'c', resultsClaim: 'r', backoffLimit: 1 },
    defaultImages,
  ).spec!.template.spec!;

describe('dataset sources', () => {
  it('gives dataset.imagePullSecret to skopeo, which pulls the dataset image', () => {
    const pod = job({ image: 'private.example.com/data/chats:v1', imagePullSecret: 'data-pull' });
    const pull = pod.initContainers!.find((c) => c.name === 'dataset-pull')!;
    expect(pull.command!.join(' ')).toContain('skopeo copy --src-authfile /etc/dataset-pull/auth.json docker://private.example.com/data/chats:v1');
    expect(pull.volumeMounts).toContainEqual({ name: 'dataset-pull-secret', mountPath: '/etc/dataset-pull', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'dataset-pull-secret', secret: { secretName: 'data-pull', items: [{ key: '.dockerconfigjson', path: 'auth.json' }] } });
    const anonymous = job({ image: 'public.example.com/data/chats:v1' });
    expect(anonymous.initContainers!.find((c) => c.name === 'dataset-pull')!.command!.join(' ')).toContain('skopeo copy docker://');
    expect(anonymous.volumes!.map((v) => v.name)).not.toContain('dataset-pull-secret');
  });

  it('records URLs without credentials, query strings or fragments', () => {
    const sas = 'https://acct.blob.core.windows.net/data/train.jsonl?sv=2024-01-01&sig=SECRET#frag';
    expect(urlForRecords(sas)).toBe('https://acct.blob.core.windows.net/data/train.jsonl');
    expect(datasetForRecords({ urls: [sas] })).toEqual({ urls: ['https://acct.blob.core.windows.net/data/train.jsonl'] });
    expect(JSON.stringify(datasetForRecords({ urls: [sas, 'https://u:p@x.example.com/a.csv'] }))).not.toMatch(/SECRET|u:p/);
  });
});
