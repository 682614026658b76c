// Registry activities: read a pushed adapter image back, so the run records the digest the
// registry actually holds (not what a pusher claimed).
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import type { TokenCredential } from '@azure/core-auth';
import type { ContainerRegistryContentClient } from '@azure/container-registry';
import { isRestError } from '@azure/core-rest-pipeline';
import { ApplicationFailure } from '@temporalio/common';
import { hostProblem } from '../../domain/dataset-url.js';
import { failureTypes } from '../../domain/failure-types.js';
import { type ImageReference, parseImageReference } from '../../domain/image-reference.js';
import { maxSuiteBytes } from '../../domain/promotion.js';
import { createRegistryContentClient } from '../../workers/clients.js';
import { mediaTypes, readAdapterImageFiles, tarFiles } from './adapter-image.js';
import { adapterByDigest, type EvaluationArtifact, listEvaluationArtifacts, recordEvaluationArtifact } from './evaluation-artifacts.js';

export interface AdapterImage {
  digest: string;
  annotations: Record<string, string>;
  layerDigest: string;
}

/** What a promotion checks of an adapter image before anything loads it. */
export interface InspectedAdapter {
  digest: string;
  /** The sh.kaito.model.name annotation: the base model the adapter was trained on. */
  baseModel: string | undefined;
  /** data/adapter_config.json, parsed; undefined when absent or not JSON. */
  config: unknown;
}

/** A pushed adapter image's digest, annotations and layer, read back with the client `clientFor` makes. */
export async function readPushedAdapter(image: string, clientFor: (ref: ImageReference) => ContainerRegistryContentClient | Promise<ContainerRegistryContentClient>): Promise<AdapterImage> {
  const ref = parseImageReference(image);
  if (!ref) throw ApplicationFailure.nonRetryable(`not an image reference: ${image}`, failureTypes.invalidRequest);
  try {
    const { digest, manifest } = await (await clientFor(ref)).getManifest(ref.digest ?? ref.tag ?? 'latest');
    const m = manifest as { layers?: { mediaType: string; digest: string }[]; annotations?: Record<string, string> };
    const layer = m.layers?.find((l) => l.mediaType === mediaTypes.layer);
    if (!layer) throw ApplicationFailure.nonRetryable(`${image} has no ${mediaTypes.layer} layer: not an adapter image`, failureTypes.pushFailed);
    return { digest, annotations: m.annotations ?? {}, layerDigest: layer.digest };
  } catch (err) {
    if (isRestError(err) && err.statusCode === 404) {
      throw ApplicationFailure.nonRetryable(`${image} is not in the registry although the push reported success`, failureTypes.pushFailed);
    }
    throw err;
  }
}

export function createRegistryActivities({ credential, allowLoopbackRegistry }: { credential: TokenCredential; allowLoopbackRegistry: boolean }) {
  /** The adapter's repository and digest; a reference without a digest is a bad request, not worth a retry. */
  const byDigest = (image: string) => {
    try {
      return adapterByDigest(image, credential);
    } catch (err) {
      throw ApplicationFailure.nonRetryable((err as Error).message, failureTypes.invalidRequest);
    }
  };

  return {
    /**
     * Refuses an output registry on a loopback address before anything is created: the pusher
     * pod would push to itself. Only a worker that shares the registry's loopback (the local
     * stack, ALLOW_LOOPBACK_REGISTRY=true) allows one. The workflow cannot decide this alone:
     * it does not know where its worker runs.
     */
    async checkOutputRegistry(registry: string): Promise<void> {
      const problem = hostProblem(registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''));
      if (allowLoopbackRegistry || !/loopback|localhost/.test(problem ?? '')) return;
      throw ApplicationFailure.nonRetryable(
        `output.image's registry ${registry} is ${problem}: the pusher pod would push to itself; use a registry the cluster reaches (e.g. myacr.azurecr.io)`,
        failureTypes.invalidRequest,
      );
    },


    async readAdapterImage(image: string): Promise<AdapterImage> {
      return readPushedAdapter(image, (ref) => createRegistryContentClient(`https://${ref.registry}`, ref.repository, credential));
    },

    /**
     * Records an evaluation in the adapter's lineage: an OCI artifact whose subject is the adapter
     * image, in the adapter's repository. Idempotent: the same evaluation gives the same artifact.
     */
    async recordEvaluationArtifact(p: { adapterImage: string; evaluation: unknown; annotations?: Record<string, string> }): Promise<{ digest: string; referrersTag?: string }> {
      const { client, digest } = byDigest(p.adapterImage);
      return recordEvaluationArtifact(client, { subjectDigest: digest, evaluation: p.evaluation, annotations: p.annotations });
    },

    /** The evaluations recorded for an adapter image, oldest first. */
    async listEvaluationArtifacts(adapterImage: string): Promise<EvaluationArtifact[]> {
      const { client, digest } = byDigest(adapterImage);
      return listEvaluationArtifacts(client, digest);
    },

    /**
     * A prompt suite given as a dataset image (KAITO's dataset layout: files under /data): the
     * one .jsonl file its layers hold there, as text. Absent, several, or too large is a bad
     * request.
     */
    async readSuiteImage(image: string): Promise<string> {
      const ref = parseImageReference(image);
      if (!ref) throw ApplicationFailure.nonRetryable(`suite.image ${image} is not an image reference`, failureTypes.invalidRequest);
      const client = createRegistryContentClient(`https://${ref.registry}`, ref.repository, credential);
      const bad = (why: string) => ApplicationFailure.nonRetryable(`suite.image ${image} ${why}`, failureTypes.invalidRequest);
      const { manifest } = await client.getManifest(ref.digest ?? ref.tag ?? 'latest').catch((err: unknown) => {
        throw isRestError(err) && err.statusCode === 404 ? bad('is not in the registry') : err;
      });
      const suites: [string, Buffer][] = [];
      for (const layer of (manifest as { layers?: { digest: string }[] }).layers ?? []) {
        const blob = await buffer((await client.downloadBlob(layer.digest)).content);
        const tar = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
        suites.push(...Object.entries(await tarFiles(tar)).filter(([name]) => /^\/?data\/[^/]+\.jsonl$/.test(name)));
      }
      if (suites.length !== 1) throw bad(`holds ${suites.length} .jsonl files in /data: put the suite there as the only one`);
      const [[, text]] = suites as [[string, Buffer]];
      if (text.length > maxSuiteBytes) throw bad(`holds a suite of ${text.length} bytes: at most ${maxSuiteBytes}`);
      return text.toString('utf8');
    },

    /** What a promotion checks before anything loads the adapter: its base model annotation and adapter_config.json (KAITO's layout). */
    async inspectAdapterImage(image: string): Promise<InspectedAdapter> {
      const { client, digest } = byDigest(image);
      try {
        const adapter = await readAdapterImageFiles(client, digest);
        return { digest, baseModel: adapter.annotations['sh.kaito.model.name'], config: adapter.config };
      } catch (err) {
        if (isRestError(err) && err.statusCode === 404) throw ApplicationFailure.nonRetryable(`${image} is not in the registry`, failureTypes.invalidRequest);
        if (err instanceof Error && /not an adapter image/.test(err.message)) throw ApplicationFailure.nonRetryable(err.message, failureTypes.invalidRequest);
        throw err;
      }
    },
  };
}
