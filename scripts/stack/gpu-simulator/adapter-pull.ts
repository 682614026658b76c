// SIMULATION of an inference pod's adapter puller, the init container
//   crane export <registry/repo@sha256:...> - | tar -xf - -C <dir> --strip-components=1 data
// (activities/kubernetes/inference.ts): the adapter image's data/ folder, fetched by digest from
// the stack's registry (OCI distribution API, no auth on the local stack), lands in the pod's volume.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { mediaTypes, tarFiles } from '../../../activities/registry/adapter-image.js';
import { parseImageReference } from '../../../domain/image-reference.js';

const exportCommand = /crane export (\S+) - \| tar -xf - -C (\S+) --strip-components=1 data/;

/** The image and pod folder of a container that exports an adapter image, if it is one. */
export function adapterExport(command: string[] | undefined): { image: string; podDir: string } | undefined {
  const match = exportCommand.exec((command ?? []).join(' '));
  return match ? { image: match[1]!, podDir: match[2]! } : undefined;
}

export async function exportAdapterImage(image: string, dir: string): Promise<void> {
  const ref = parseImageReference(image);
  if (!ref) throw new Error(`not an image reference: ${image}`);
  const base = `https://${ref.registry}/v2/${ref.repository}`;
  const get = async (path: string, accept?: string) => {
    const res = await fetch(`${base}${path}`, { headers: accept ? { accept } : {} });
    if (!res.ok) throw new Error(`GET ${base}${path}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };
  const manifest = JSON.parse((await get(`/manifests/${ref.digest ?? ref.tag ?? 'latest'}`, mediaTypes.manifest)).toString()) as {
    layers: { digest: string }[];
  };
  mkdirSync(dir, { recursive: true });
  for (const layer of manifest.layers) {
    const files = await tarFiles(gunzipSync(await get(`/blobs/${layer.digest}`)));
    for (const [name, data] of Object.entries(files)) {
      // --strip-components=1 data: only the data/ folder's files, one level up.
      if (name.startsWith('data/')) writeFileSync(join(dir, basename(name)), data);
    }
  }
}
