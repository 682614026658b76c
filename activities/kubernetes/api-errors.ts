// Idempotent create and delete on the Kubernetes API (@kubernetes/client-node's ApiException).
import { ApiException, type CoreV1Api } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { runIdLabel } from './labels.js';

export const hasStatus = (err: unknown, code: number): boolean => err instanceof ApiException && err.code === code;

/** Runs a create; when the object already exists, returns what `adopt` reads instead. */
export async function createOrAdopt<T>(create: () => Promise<T>, adopt: () => Promise<T>): Promise<{ object: T; adopted: boolean }> {
  try {
    return { object: await create(), adopted: false };
  } catch (err) {
    if (!hasStatus(err, 409)) throw err;
    return { object: await adopt(), adopted: true };
  }
}

/**
 * createOrAdopt for an object a run owns: an existing object is adopted only when it carries
 * the same run label, so a retry adopts its own object and never another run's.
 */
export async function createOrAdoptOwned<T extends { metadata?: { labels?: Record<string, string> } }>(
  what: string,
  runId: string,
  create: () => Promise<T>,
  read: () => Promise<T>,
): Promise<{ object: T; adopted: boolean }> {
  const result = await createOrAdopt(create, read);
  const owner = result.object.metadata?.labels?.[runIdLabel];
  if (result.adopted && owner !== runId) {
    throw ApplicationFailure.nonRetryable(`${what} exists but belongs to run ${owner ?? '(none)'}, not ${runId}`, failureTypes.nameTaken);
  }
  return result;
}

export async function ensureNamespaceExists(core: CoreV1Api, namespace: string): Promise<void> {
  await createOrAdopt(
    () => core.createNamespace({ body: { metadata: { name: namespace } } }),
    () => core.readNamespace({ name: namespace }),
  );
}

/** Runs a delete; an object that is already gone counts as deleted. Returns whether it existed. */
export async function deleteIfPresent(remove: () => Promise<unknown>): Promise<boolean> {
  try {
    await remove();
    return true;
  } catch (err) {
    if (hasStatus(err, 404)) return false;
    throw err;
  }
}
