// The evaluation lineage artifact against the stack's real registry (distribution 2.8.2, which has
// no referrers API): pushed with `subject`, listed in the referrers tag, read back, idempotent.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createRegistryActivities } from '../activities/registry/adapter-images.js';
import { evaluationArtifactType } from '../activities/registry/evaluation-artifacts.js';
import { createAzureCredential } from '../workers/clients.js';
import { config, pushSimulatedAdapter, unique } from './support.js';

const credential = createAzureCredential(config.azure.staticToken);
const registry = createRegistryActivities({ credential, allowLoopbackRegistry: true });
const host = new URL(config.registry.endpoint).host;

const pushedAdapter = () =>
  pushSimulatedAdapter({ r: 4, loraAlpha: 8, targetModules: ['q_proj'] }, { repository: `adapters/lineage-${unique()}`, annotations: { 'sh.kaito.model.name': 'phi-3-mini-4k-instruct' } });

describe('evaluation lineage artifact', () => {
  it('refers to the adapter by subject, is listed in the referrers tag on a registry without the referrers API, and reads back', async () => {
    const adapter = await pushedAdapter();
    const referrersApi = await fetch(`${config.registry.endpoint}/v2/${adapter.repository}/referrers/${adapter.digest}`);
    expect(referrersApi.status).toBe(404); // the fallback is what this registry needs

    const evaluation = { alias: 'support-bot', passRate: 0.9, production: { passRate: 0.8 }, evalLoss: 1.25, decision: 'promoted' };
    const recorded = await registry.recordEvaluationArtifact({ adapterImage: adapter.image, evaluation, annotations: { 'aks-finetune.io/endpoint': 'support' } });
    const tag = `sha256-${adapter.digest.slice('sha256:'.length)}`;
    expect(recorded.referrersTag).toBe(tag);

    // The artifact, as the registry stores it: OCI 1.1 manifest, empty config, subject = the adapter manifest.
    const subjectManifest = await adapter.client.getManifest(adapter.digest);
    const { manifest } = await adapter.client.getManifest(recorded.digest);
    expect(manifest).toMatchObject({
      artifactType: evaluationArtifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: adapter.digest, size: subjectManifest.content.length },
      annotations: { 'aks-finetune.io/endpoint': 'support' },
    });
    // The referrers tag over the registry's own v2 API: an image index listing the artifact.
    const raw = await fetch(`${config.registry.endpoint}/v2/${adapter.repository}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    const index = (await raw.json()) as { mediaType: string; manifests: { digest: string; artifactType: string }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toEqual([expect.objectContaining({ digest: recorded.digest, artifactType: evaluationArtifactType })]);

    expect(await registry.listEvaluationArtifacts(adapter.image)).toEqual([
      { digest: recorded.digest, annotations: { 'aks-finetune.io/endpoint': 'support' }, evaluation },
    ]);
  });

  it('records the same evaluation once and a second evaluation beside it', async () => {
    const adapter = await pushedAdapter();
    const first = await registry.recordEvaluationArtifact({ adapterImage: adapter.image, evaluation: { passRate: 0.5, decision: 'rejected' } });
    // Same content, keys in another order: the same artifact, the tag unchanged.
    const again = await registry.recordEvaluationArtifact({ adapterImage: adapter.image, evaluation: { decision: 'rejected', passRate: 0.5 } });
    expect(again.digest).toBe(first.digest);
    const second = await registry.recordEvaluationArtifact({ adapterImage: adapter.image, evaluation: { passRate: 0.9, decision: 'promoted' } });
    const listed = await registry.listEvaluationArtifacts(adapter.image);
    expect(listed.map((a) => a.digest)).toEqual([first.digest, second.digest]);
    expect(listed.map((a) => a.evaluation)).toEqual([{ decision: 'rejected', passRate: 0.5 }, { decision: 'promoted', passRate: 0.9 }]);
    // The payload blob is the canonical JSON: its digest does not depend on key order.
    const payload = Buffer.from('{"decision":"rejected","passRate":0.5}');
    const { manifest } = await adapter.client.getManifest(first.digest);
    expect((manifest as { layers: { digest: string }[] }).layers[0]!.digest).toBe(`sha256:${createHash('sha256').update(payload).digest('hex')}`);
  });

  it('refuses an adapter named by tag: lineage refers to exact bytes', async () => {
    await expect(registry.listEvaluationArtifacts(`${host}/adapters/x:v1`)).rejects.toThrow('is not an image reference by digest');
  });

  it('lists nothing for an adapter with no evaluation', async () => {
    const adapter = await pushedAdapter();
    expect(await registry.listEvaluationArtifacts(adapter.image)).toEqual([]);
  });

  it('answers `npm run cli -- lineage <image@digest>` with the recorded evaluations', async () => {
    const adapter = await pushedAdapter();
    const { digest } = await registry.recordEvaluationArtifact({ adapterImage: adapter.image, evaluation: { alias: 'support-bot', passRate: 0.75 } });
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'lineage', adapter.image]);
    expect(stdout).toContain(digest);
    expect(stdout).toContain('"passRate": 0.75');
  });
});
