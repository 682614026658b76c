// One ARM read for every caller in this worker process that needs the same answer: the managed
// cluster's GET lists every pool with its provisioningState (agentPoolProfiles) and the pool
// count against maxAgentPools, the usages API every quota of a region. A hundred pool creates in
// flight, or a thousand runs waiting for capacity, so cost one read per interval instead of one
// per run. (A GET, not the agent pool LIST, which AKS rate-limits per subscription:
// learn.microsoft.com/azure/aks/quotas-skus-regions, "Throttling limits on AKS resource provider APIs".)
import type { ContainerServiceClient, ManagedCluster } from '@azure/arm-containerservice';

export interface SharedRead<T> {
  /** The read in flight or the next one, which starts at least `intervalMs` after the last ended: for a caller that polls. */
  next(): Promise<T>;
  /**
   * A read sent after this call, for a caller that must see what it just did (a cleanup looking
   * for a pool it may have created); everyone who calls while one is out shares the one after it.
   */
  fresh(): Promise<T>;
  /** The last result when it is at most `maxAgeMs` old, else the read in flight or a new one: for a caller that reads once. */
  recent(maxAgeMs: number): Promise<T>;
  /** Forgets the last result: this worker just changed what it reads (created or deleted a pool). */
  invalidate(): void;
}

export function sharedRead<T>(read: () => Promise<T>, intervalMs: number): SharedRead<T> {
  let pending: Promise<T> | undefined;
  let queued: Promise<T> | undefined;
  let last: { at: number; value: T } | undefined;
  let lastEndedAt = 0;
  /** Whether the read in flight has sent its request (before that, a new caller may still join it). */
  let sent = false;
  const start = () =>
    (pending ??= (async () => {
      const wait = lastEndedAt + intervalMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sent = true;
      try {
        const value = await read();
        last = { at: Date.now(), value };
        return value;
      } finally {
        lastEndedAt = Date.now();
        pending = undefined;
        sent = false;
      }
    })());
  const afterPending = (inFlight: Promise<T>) =>
    (queued ??= inFlight.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      queued = undefined;
      return start();
    }));
  return {
    next: start,
    fresh: () => (pending && sent ? afterPending(pending) : start()),
    recent: (maxAgeMs) => (last && Date.now() - last.at <= maxAgeMs ? Promise.resolve(last.value) : (pending ?? start())),
    invalidate: () => {
      last = undefined;
    },
  };
}

/** The managed cluster, read once per interval for the whole worker. */
export const managedClusterRead = (containerService: ContainerServiceClient, resourceGroup: string, clusterName: string, intervalMs: number): SharedRead<ManagedCluster> =>
  sharedRead(() => containerService.managedClusters.get(resourceGroup, clusterName), intervalMs);

/** The provisioningState of every pool of the cluster, by name. */
export const poolStatesOf = (cluster: ManagedCluster): Map<string, string> =>
  new Map((cluster.agentPoolProfiles ?? []).map((p) => [p.name, p.provisioningState ?? 'Unknown']));
