// HTTP status helpers for @kubernetes/client-node's ApiException.
import { ApiException } from '@kubernetes/client-node';

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
