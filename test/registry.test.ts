// The OCI registry (distribution) with @azure/container-registry: what the adapter push uses.
import { createHash } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createAzureCredential, createRegistryContentClient } from '../workers/clients.js';
import { config, unique } from './support.js';

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('OCI registry', () => {
  it('stores an artifact pushed with ContainerRegistryContentClient and returns it by tag and by digest', async () => {
    const repository = `adapters/test-${unique()}`;
    const client = createRegistryContentClient(config.registry.endpoint, repository, createAzureCredential(config.azure.staticToken));
    const layerBytes = Buffer.from('adapter weights stand-in');
    const configBytes = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');

    const layer = await client.uploadBlob(layerBytes);
    const configBlob = await client.uploadBlob(configBytes);
    expect(layer.digest).toBe(sha256(layerBytes));

    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.aks-finetune.adapter.v1',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: configBlob.sizeInBytes },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.sizeInBytes }],
      annotations: { 'sh.kaito.model.name': 'phi-3-mini-4k-instruct' },
    };
    const pushed = await client.setManifest(manifest, { tag: 'v1' });
    expect(pushed.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const byTag = await client.getManifest('v1');
    expect(byTag.digest).toBe(pushed.digest);
    expect(byTag.manifest).toMatchObject({ artifactType: manifest.artifactType, annotations: manifest.annotations });
    const byDigest = await client.getManifest(pushed.digest);
    expect(byDigest.digest).toBe(pushed.digest);

    const downloaded = await client.downloadBlob(layer.digest);
    expect(await text(downloaded.content)).toBe(layerBytes.toString());

    // Read it back without the SDK, over the registry's own v2 API: it is really stored there.
    const raw = await fetch(`${config.registry.endpoint}/v2/${repository}/manifests/v1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('docker-content-digest')).toBe(pushed.digest);
    expect(sha256(Buffer.from(await raw.arrayBuffer()))).toBe(pushed.digest);
  });

  it('deletes a manifest by digest', async () => {
    const client = createRegistryContentClient(config.registry.endpoint, `adapters/delete-${unique()}`, createAzureCredential(config.azure.staticToken));
    const blob = await client.uploadBlob(Buffer.from('x'));
    const { digest } = await client.setManifest(
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: blob.digest, size: blob.sizeInBytes },
        layers: [],
      },
      { tag: 'gone' },
    );
    await client.deleteManifest(digest);
    await expect(client.getManifest(digest)).rejects.toMatchObject({ statusCode: 404 });
  });
});
