// An adapter image's lineage as a reader wants it: its annotations (what it was trained from, by
// which run) and the evaluations recorded against it (OCI artifacts with the image as subject).
import type { TokenCredential } from '@azure/core-auth';
import { adapterByDigest, listEvaluationArtifacts } from '../activities/registry/evaluation-artifacts.js';

export async function readAdapterLineage(image: string, credential: TokenCredential): Promise<{ annotations: Record<string, string>; evaluations: unknown[] }> {
  const { client, digest } = adapterByDigest(image, credential);
  const [{ manifest }, artifacts] = await Promise.all([client.getManifest(digest), listEvaluationArtifacts(client, digest)]);
  return { annotations: (manifest as { annotations?: Record<string, string> }).annotations ?? {}, evaluations: artifacts.map((a) => a.evaluation) };
}
