// The adapter image in KAITO's layout: one tar+gzip layer holding data/adapter_config.json and
// data/adapter_model.safetensors, an OCI image config whose diff_ids name the uncompressed tar,
// and the base model in the annotation sh.kaito.model.name. The tar is byte-for-byte
// reproducible (fixed times and owners), so pushing the same adapter twice gives one digest.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ContainerRegistryContentClient } from '@azure/container-registry';
import { extract, pack } from 'tar-stream';

export const adapterFiles = ['adapter_config.json', 'adapter_model.safetensors'] as const;
export const mediaTypes = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function adapterTar(resultsDir: string): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  const fixed = { mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '', mode: 0o644 };
  tar.entry({ name: 'data/', type: 'directory', ...fixed, mode: 0o755 });
  for (const file of adapterFiles) {
    const content = await readFile(join(resultsDir, file)).catch((err: NodeJS.ErrnoException) => {
      throw new Error(
        err.code === 'ENOENT' ? `the trainer left no ${file} in ${resultsDir}: training did not produce an adapter` : err.message,
      );
    });
    tar.entry({ name: `data/${file}`, ...fixed }, content);
  }
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * The sha256 of the adapter's reproducible tar: the diff_id the same files get as an adapter image's
 * layer, so an adapter copied to a volume and one pushed as an image can be told apart or matched.
 */
export const adapterContentDigest = async (resultsDir: string) => sha256(await adapterTar(resultsDir));

export interface AdapterPushResult {
  digest: string;
  layerDigest: string;
  sizeBytes: number;
}

/** Packages the adapter files of `resultsDir` and pushes them as an image tagged `tag`. */
export async function pushAdapterImage(
  client: ContainerRegistryContentClient,
  resultsDir: string,
  tag: string,
  annotations: Record<string, string>,
): Promise<AdapterPushResult> {
  const tar = await adapterTar(resultsDir);
  const layer = gzipSync(tar, { level: 9 });
  // Node's gzip header carries no timestamp, so the layer bytes depend on the files only.
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const layerBlob = await client.uploadBlob(layer);
  const configBlob = await client.uploadBlob(config);
  const { digest } = await client.setManifest(
    {
      schemaVersion: 2,
      mediaType: mediaTypes.manifest,
      config: { mediaType: mediaTypes.config, digest: configBlob.digest, size: configBlob.sizeInBytes },
      layers: [{ mediaType: mediaTypes.layer, digest: layerBlob.digest, size: layerBlob.sizeInBytes }],
      annotations,
    },
    { tag },
  );
  return { digest, layerDigest: layerBlob.digest, sizeBytes: layer.length };
}

/** The regular files of a tar archive, by path. */
export async function tarFiles(tar: Buffer): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {};
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    void buffer(stream).then((data) => {
      if (header.type === 'file') files[header.name] = data;
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.end(tar);
  await done;
  return files;
}

export interface PulledAdapter {
  /** The manifest's annotations: sh.kaito.model.name names the base model. */
  annotations: Record<string, string>;
  /** adapter_config.json, parsed; undefined when the image has none or it is not JSON. */
  config: unknown;
}

/** An adapter image's annotations and data/ files, read by digest (the client checks the manifest's and blob's digests). */
export async function readAdapterImageFiles(client: ContainerRegistryContentClient, digest: string): Promise<PulledAdapter & { files: Record<string, Buffer> }> {
  const { manifest } = await client.getManifest(digest);
  const m = manifest as { layers?: { mediaType: string; digest: string }[]; annotations?: Record<string, string> };
  const layer = m.layers?.find((l) => l.mediaType === mediaTypes.layer);
  if (!layer) throw new Error(`${digest} has no ${mediaTypes.layer} layer: not an adapter image`);
  const files = await tarFiles(gunzipSync(await buffer((await client.downloadBlob(layer.digest)).content)));
  let config: unknown;
  try {
    config = JSON.parse(files['data/adapter_config.json']?.toString() ?? '');
  } catch {
    config = undefined;
  }
  return { annotations: m.annotations ?? {}, config, files };
}

/**
 * Pulls an adapter image by digest and writes its data/ files into `dir` (as `crane export | tar
 * --strip-components=1 data` would). The files land in a sibling folder first and are renamed into
 * place, so `dir` never holds half an adapter.
 */
export async function pullAdapterImage(client: ContainerRegistryContentClient, digest: string, dir: string): Promise<PulledAdapter> {
  const { files, ...adapter } = await readAdapterImageFiles(client, digest);
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    if (name.startsWith('data/') && basename(name) === name.slice('data/'.length)) await writeFile(join(partial, basename(name)), data);
  }
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return adapter;
}
