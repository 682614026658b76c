// Idempotent create and delete on the Kubernetes API (@kubernetes/client-node's ApiException).
import { ApiException, type CoreV1Api } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { isOwnedBy, type RecordedOwner, recordedOwner } from '../../domain/run-identity.js';

export const hasStatus = (err: unknown, code: number): boolean => err instanceof ApiException && err.code === code;

/**
 * Runs a read-modify-write again, up to `attempts` times in all, while it loses a race with
 * another writer of the object (409 Conflict on a stale resourceVersion), as a controller does;
 * `readModifyWrite` must read the object afresh each time.
 */
export async function retryOnConflict<T>(readModifyWrite: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readModifyWrite();
    } catch (err) {
      if (!hasStatus(err, 409) || attempt === attempts) throw err;
    }
  }
}

/** Runs a create; when the object already exists, returns what `adopt` reads instead. */
export async function createOrAdopt<T>(create: () => Promise<T>, adopt: () => Promise<T>): Promise<{ object: T; adopted: boolean }> {
  try {
    return { object: await create(), adopted: false };
  } catch (err) {
    if (!hasStatus(err, 409)) throw err;
    return { object: await adopt(), adopted: true };
  }
}

/** The run an object's workflow-id annotation and run-id label name. */
export const objectOwner = (object: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } }): RecordedOwner =>
  recordedOwner(object.metadata?.annotations, object.metadata?.labels);

const describeOwner = (o: RecordedOwner) => `${o.workflowId ?? '(none)'} (${o.runId ?? 'no run id'})`;

/**
 * createOrAdopt for an object a run owns: an existing object is adopted only when it names the
 * same run (workflow id and run id), so a retry adopts its own object and never another run's,
 * not even one an earlier run under the same workflow id left behind.
 */
export async function createOrAdoptOwned<T extends { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } }>(
  what: string,
  owner: RecordedOwner,
  create: () => Promise<T>,
  read: () => Promise<T>,
): Promise<{ object: T; adopted: boolean }> {
  const result = await createOrAdopt(create, read);
  const recorded = objectOwner(result.object);
  if (result.adopted && !isOwnedBy(recorded, owner)) {
    throw ApplicationFailure.nonRetryable(`${what} exists but belongs to run ${describeOwner(recorded)}, not ${describeOwner(owner)}`, failureTypes.nameTaken);
  }
  return result;
}

/**
 * Checks that the run's namespace exists. The worker may not create namespaces (least privilege,
 * deploy/worker-rbac.yaml): an operator creates one and lets the worker in (deploy/run-namespace).
 */
export async function ensureNamespaceExists(core: CoreV1Api, namespace: string): Promise<void> {
  try {
    await core.readNamespace({ name: namespace });
  } catch (err) {
    if (!hasStatus(err, 404)) throw err;
    throw ApplicationFailure.nonRetryable(
      `namespace "${namespace}" does not exist: an operator creates it and lets the worker in with ` +
        `\`kubectl create namespace ${namespace} && kubectl apply -n ${namespace} -f deploy/run-namespace/run-namespace.yaml\``,
      failureTypes.invalidRequest,
    );
  }
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
