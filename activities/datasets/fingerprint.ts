// What a dataset is right now, cheaply: an image's digest, or for URLs their ETags (else
// Last-Modified and size, else a hash of the content). Retraining skips a run when the
// fingerprint is the one the last successful run trained on.
import { createHash } from 'node:crypto';
import type { TokenCredential } from '@azure/core-auth';
import type { DatasetSource } from '../../domain/fine-tune-request.js';
import { parseImageReference } from '../../domain/image-reference.js';
import { createRegistryContentClient } from '../../workers/clients.js';

async function urlFingerprint(url: string): Promise<string> {
  const head = await fetch(url, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(30_000) });
  if (!head.ok) throw new Error(`HEAD ${url}: ${head.status}`);
  const etag = head.headers.get('etag');
  if (etag) return `etag ${etag}`;
  const modified = head.headers.get('last-modified');
  if (modified) return `modified ${modified} size ${head.headers.get('content-length') ?? '?'}`;
  // No validator: hash the content itself.
  const res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(10 * 60_000) });
  if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status}`);
  const hash = createHash('sha256');
  for await (const chunk of res.body) hash.update(chunk);
  return `sha256 ${hash.digest('hex')}`;
}

export function createDatasetActivities({ credential }: { credential: TokenCredential }) {
  return {
    /** A fingerprint of the dataset, or undefined when it has no cheap one (a volume or a Secret's URL list: always train). */
    async datasetFingerprint(dataset: DatasetSource): Promise<string | undefined> {
      if (dataset.image) {
        const ref = parseImageReference(dataset.image);
        if (!ref) throw new Error(`not an image reference: ${dataset.image}`);
        const client = createRegistryContentClient(`https://${ref.registry}`, ref.repository, credential);
        const { digest } = await client.getManifest(ref.digest ?? ref.tag ?? 'latest');
        return `image ${digest}`;
      }
      if (dataset.urls) {
        const parts = await Promise.all(dataset.urls.map(async (url) => `${url} ${await urlFingerprint(url)}`));
        return `urls ${createHash('sha256').update(parts.join('\n')).digest('hex')}`;
      }
      return undefined;
    },
  };
}
