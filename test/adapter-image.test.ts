// The adapter image pushed to the real registry has KAITO's layout, and pushing the same
// adapter again gives the same digest (so a retried push is harmless).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { adapterContentDigest, pushAdapterImage, tarFiles } from '../activities/registry/adapter-image.js';
import { writeAdapter } from '../scripts/stack/gpu-simulator/adapter-files.js';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { copyAdapter, lineageFile } from '../workers/copy-adapter.js';
import { config, unique } from './support.js';

describe('adapter image', () => {
  const client = () => createRegistryContentClient(config.registry.endpoint, `adapters/layout-${unique()}`, createAzureCredential(config.azure.staticToken));

  it("uses KAITO's layout: one tar+gzip layer with data/adapter_*, diff_ids of the tar, the model annotation", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adapter-'));
    writeAdapter(dir, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['q_proj'] });
    const registry = client();
    const pushed = await pushAdapterImage(registry, dir, 'v1', { 'sh.kaito.model.name': 'phi-3-mini-4k-instruct' });

    const { manifest, digest } = await registry.getManifest('v1');
    expect(digest).toBe(pushed.digest);
    const m = manifest as { config: { mediaType: string; digest: string }; layers: { mediaType: string; digest: string }[]; annotations: Record<string, string> };
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip']);
    expect(m.annotations['sh.kaito.model.name']).toBe('phi-3-mini-4k-instruct');

    const tar = gunzipSync(await buffer((await registry.downloadBlob(m.layers[0]!.digest)).content));
    const entries = await tarFiles(tar);
    expect(Object.keys(entries).sort()).toEqual(['data/adapter_config.json', 'data/adapter_model.safetensors']);
    expect(JSON.parse(entries['data/adapter_config.json']!.toString())).toMatchObject({ peft_type: 'LORA', r: 4, base_model_name_or_path: '/workspace/weights' });
    const imageConfig = JSON.parse((await buffer((await registry.downloadBlob(m.config.digest)).content)).toString());
    expect(imageConfig).toEqual({ rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(tar).digest('hex')}`] } });

    // Same files, same annotations: same digest.
    expect((await pushAdapterImage(registry, dir, 'v1-again', { 'sh.kaito.model.name': 'phi-3-mini-4k-instruct' })).digest).toBe(pushed.digest);
  });

  it("copies an adapter to a volume (output.volume) with the digest it has as an image's layer, again and again, leaving the volume's other files", async () => {
    const results = mkdtempSync(join(tmpdir(), 'results-'));
    const volume = mkdtempSync(join(tmpdir(), 'volume-'));
    writeAdapter(results, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['q_proj'] });
    writeFileSync(join(volume, 'notes.txt'), 'the user keeps this');
    const lineage = { 'sh.kaito.model.name': 'phi-3-mini-4k-instruct' };
    const copied = await copyAdapter(results, volume, lineage);
    expect(await copyAdapter(results, volume, lineage)).toEqual(copied); // a retried copier writes the same bytes
    expect(readdirSync(volume).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', lineageFile, 'notes.txt']);
    expect(JSON.parse(readFileSync(join(volume, lineageFile), 'utf8'))).toEqual({ contentDigest: copied.contentDigest, annotations: lineage });

    const registry = client();
    await pushAdapterImage(registry, results, 'v1', lineage);
    const m = (await registry.getManifest('v1')).manifest as { config: { digest: string } };
    const imageConfig = JSON.parse((await buffer((await registry.downloadBlob(m.config.digest)).content)).toString());
    expect(imageConfig.rootfs.diff_ids).toEqual([copied.contentDigest]);
    expect(await adapterContentDigest(volume)).toBe(copied.contentDigest);
  });

  it('says what is missing when the trainer left no adapter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adapter-'));
    writeFileSync(join(dir, 'adapter_config.json'), '{}');
    await expect(pushAdapterImage(client(), dir, 'v1', {})).rejects.toThrow(
      `the trainer left no adapter_model.safetensors in ${dir}: training did not produce an adapter`,
    );
  });
});
