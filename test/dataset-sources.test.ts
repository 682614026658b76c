// What reaches the tuning pod and the run's records from a dataset source: the dataset image's
// pull Secret is given to the tool that pulls it, and recorded URLs lose their query strings.
import { describe, expect, it } from 'vitest';
import { defaultImages, tuningJob } from '../activities/kubernetes/tuning-job.js';
import { datasetForRecords, datasetLineage, urlForRecords } from '../domain/dataset-url.js';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { findModelPreset } from '../domain/models.js';
import { urlsFromList } from '../workers/download-dataset.js';

const job = (dataset: { image?: string; imagePullSecret?: string; urlsSecret?: { name: string; key?: string } }) =>
  tuningJob(
    { name: 'r1-train', owner: { workflowId: 'wf', runId: 'r1' }, model: findModelPreset('phi-3-mini-4k-instruct')!, gpus: 1, pool: 'ft1', taints: [], dataset, configMap: 'c', resultsClaim: 'r', backoffLimit: 1, activeDeadlineSeconds: 3600 },
    defaultImages,
  ).spec!.template.spec!;

describe('dataset sources', () => {
  it('gives dataset.imagePullSecret to skopeo, which pulls the dataset image', () => {
    const pod = job({ image: 'private.example.com/data/chats:v1', imagePullSecret: 'data-pull' });
    const pull = pod.initContainers!.find((c) => c.name === 'dataset-pull')!;
    expect(pull.command!.join(' ')).toContain('skopeo copy --authfile /etc/dataset-pull-secret/config.json docker://private.example.com/data/chats:v1');
    expect(pull.volumeMounts).toContainEqual({ name: 'dataset-pull-secret', mountPath: '/etc/dataset-pull-secret', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'dataset-pull-secret', secret: { secretName: 'data-pull', items: [{ key: '.dockerconfigjson', path: 'config.json' }] } });
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

describe('dataset URLs from a Secret', () => {
  it('mounts the Secret for the downloader; no URL is in the spec', () => {
    const pod = job({ urlsSecret: { name: 'dataset-sas', key: 'list' } });
    const download = pod.initContainers!.find((c) => c.name === 'dataset-download')!;
    expect(download.command!.slice(-2)).toEqual(['--urls-file', '/etc/dataset-urls/urls']);
    expect(download.volumeMounts).toContainEqual({ name: 'dataset-urls', mountPath: '/etc/dataset-urls', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'dataset-urls', secret: { secretName: 'dataset-sas', items: [{ key: 'list', path: 'urls' }] } });
  });

  it('reads one URL a line, records the Secret, not its URLs', () => {
    expect(urlsFromList('# SAS URLs\nhttps://a.blob.core.windows.net/d/x.jsonl?sig=1\n\n  https://b.example.com/y.csv  \n')).toEqual([
      'https://a.blob.core.windows.net/d/x.jsonl?sig=1',
      'https://b.example.com/y.csv',
    ]);
    expect(datasetLineage({ urlsSecret: { name: 'dataset-sas' } })).toBe('secret:dataset-sas/urls');
    expect(datasetLineage({ urls: ['https://a.example.com/x.csv?sig=SECRET'] })).toBe('https://a.example.com/x.csv');
  });

  it('is one dataset source among the others', () => {
    const result = validateFineTuneRequest(
      { model: 'phi-3-mini-4k-instruct', method: 'qlora', dataset: { urlsSecret: { name: 'dataset-sas' } }, output: { image: 'myacr.azurecr.io/a:v1' }, gpu: { vmSize: 'Standard_NC24ads_A100_v4' } },
      'wf',
    );
    expect(result.ok).toBe(true);
  });
});
