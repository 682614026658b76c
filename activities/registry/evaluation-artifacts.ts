// The evaluation record of an adapter as an OCI 1.1 artifact that refers to the adapter image
// (`subject`), so "scoring what" travels with the image in its own registry. Registries with the
// referrers API (ACR, distribution 3) index the subject themselves; on one without it
// (distribution 2.8, the local stack's) the artifact is also listed in the referrers tag
// `sha256-<hex>`, as the distribution spec's fallback asks.
// Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
// and #referrers-tag-schema, #pushing-manifests-with-subject.
import { text } from 'node:stream/consumers';
import type { ContainerRegistryContentClient } from '@azure/container-registry';
import type { TokenCredential } from '@azure/core-auth';
import { createHttpHeaders, createPipelineRequest, isRestError, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import {
  artifactManifest,
  type Descriptor,
  emptyConfig,
  emptyReferrersIndex,
  type ImageIndex,
  ociMediaTypes,
  referrerDescriptor,
  referrersOfType,
  referrersTag,
  withReferrer,
} from '../../domain/oci-referrers.js';
import { parseImageReference } from '../../domain/image-reference.js';
import { canonicalJson } from '../../domain/training-config.js';
import { createRegistryContentClient } from '../../workers/clients.js';

export const evaluationArtifactType = 'application/vnd.aks-finetune.evaluation.v1+json';

export interface EvaluationArtifact {
  digest: string;
  annotations: Record<string, string>;
  evaluation: unknown;
}

const isNotFound = (err: unknown) => isRestError(err) && err.statusCode === 404;

/**
 * GET /v2/<name>/referrers/<digest>: the index, or undefined where the registry has no referrers
 * API (404: the spec's signal to use the tag schema). @azure/container-registry 1.1.2 has no call
 * for it, so the request goes through the client's own pipeline, which does ACR's token exchange.
 */
async function referrersFromApi(client: ContainerRegistryContentClient, subjectDigest: string): Promise<ImageIndex | undefined> {
  const service = (client as unknown as { client: { sendRequest(r: PipelineRequest): Promise<PipelineResponse> } }).client;
  const url = `${client.endpoint.replace(/\/$/, '')}/v2/${client.repositoryName}/referrers/${subjectDigest}`;
  const res = await service.sendRequest(createPipelineRequest({ url, method: 'GET', headers: createHttpHeaders({ accept: ociMediaTypes.index }) }));
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${res.bodyAsText ?? ''}`);
  return JSON.parse(res.bodyAsText ?? '{}') as ImageIndex;
}

/** The referrers tag's index (empty when the tag does not exist yet). */
async function referrersFromTag(client: ContainerRegistryContentClient, subjectDigest: string): Promise<ImageIndex> {
  return client.getManifest(referrersTag(subjectDigest)).then(
    (m) => m.manifest as unknown as ImageIndex,
    (err: unknown) => (isNotFound(err) ? emptyReferrersIndex() : Promise.reject(err)),
  );
}

/**
 * Pushes `evaluation` (canonical JSON, so the same evaluation always gives the same artifact
 * digest: recording it twice leaves one artifact) as an artifact whose subject is the manifest
 * `subjectDigest`, and lists it in the referrers tag where the registry has no referrers API.
 * The tag is read-modify-write, as the spec has it: two writers at the same instant can lose one
 * entry; a retried record adds it again.
 */
export async function recordEvaluationArtifact(
  client: ContainerRegistryContentClient,
  p: { subjectDigest: string; evaluation: unknown; annotations?: Record<string, string> },
): Promise<{ digest: string; referrersTag?: string }> {
  const subject = await client.getManifest(p.subjectDigest);
  const subjectDescriptor: Descriptor = { mediaType: subject.mediaType, digest: subject.digest, size: subject.content.length };
  const payload = await client.uploadBlob(Buffer.from(canonicalJson(p.evaluation)));
  await client.uploadBlob(Buffer.from(emptyConfig.bytes));
  const manifest = artifactManifest({
    artifactType: evaluationArtifactType,
    subject: subjectDescriptor,
    layers: [{ mediaType: evaluationArtifactType, digest: payload.digest, size: payload.sizeInBytes }],
    annotations: p.annotations,
  });
  const bytes = Buffer.from(JSON.stringify(manifest));
  const { digest } = await client.setManifest(bytes, { mediaType: ociMediaTypes.manifest });

  if (await referrersFromApi(client, subject.digest)) return { digest };
  const tag = referrersTag(subject.digest);
  const { index, changed } = withReferrer(await referrersFromTag(client, subject.digest), referrerDescriptor(manifest, digest, bytes.length));
  if (changed) await client.setManifest(Buffer.from(JSON.stringify(index)), { tag, mediaType: ociMediaTypes.index });
  return { digest, referrersTag: tag };
}

/** The evaluation artifacts that refer to `subjectDigest`, from the referrers API or else its tag, oldest first. */
export async function listEvaluationArtifacts(client: ContainerRegistryContentClient, subjectDigest: string): Promise<EvaluationArtifact[]> {
  const index = (await referrersFromApi(client, subjectDigest)) ?? (await referrersFromTag(client, subjectDigest));
  return Promise.all(
    referrersOfType(index, evaluationArtifactType).map(async ({ digest }) => {
      const { manifest } = await client.getManifest(digest);
      const m = manifest as { layers?: Descriptor[]; annotations?: Record<string, string> };
      const layer = m.layers?.find((l) => l.mediaType === evaluationArtifactType);
      if (!layer) throw new Error(`${digest} is listed as an evaluation of ${subjectDigest} but has no ${evaluationArtifactType} layer`);
      const { content } = await client.downloadBlob(layer.digest);
      return { digest, annotations: m.annotations ?? {}, evaluation: JSON.parse(await text(content)) as unknown };
    }),
  );
}

/** The repository's client and the manifest digest of an image named by digest (lineage refers to exact bytes). */
export function adapterByDigest(image: string, credential: TokenCredential): { client: ContainerRegistryContentClient; digest: string } {
  const ref = parseImageReference(image);
  if (!ref?.digest) throw new Error(`${image} is not an image reference by digest (registry/repository@sha256:...)`);
  return { client: createRegistryContentClient(`https://${ref.registry}`, ref.repository, credential), digest: ref.digest };
}

/** listEvaluationArtifacts for an image reference by digest: what the CLI's `lineage` prints. */
export function readEvaluationLineage(image: string, credential: TokenCredential): Promise<EvaluationArtifact[]> {
  const { client, digest } = adapterByDigest(image, credential);
  return listEvaluationArtifacts(client, digest);
}
