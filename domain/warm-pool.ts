// Which idle pool a run may take over instead of provisioning its own (warm-pool reuse).
import { isOwnedBy, type RecordedOwner, type RunOwner } from './run-identity.js';

/** What the choice needs to know of a managed pool. */
export interface PoolCandidate {
  name: string;
  vmSize: string;
  spot: boolean;
  count: number;
  provisioningState: string;
  eTag?: string;
  /** The run that owns the pool now, as its tags record it. */
  owner: RecordedOwner;
}

/**
 * Pools of the wanted VM size and spot setting that no open run owns (nor this run, whose own
 * pool a retry adopts instead), settled and claimable (an eTag to claim against); pools with a
 * running node first, since they save the whole provisioning.
 */
export function warmPoolCandidates<P extends PoolCandidate>(
  pools: readonly P[],
  wanted: { vmSize: string; spot: boolean; self: RunOwner },
  isOpenRun: (owner: RecordedOwner) => boolean,
): P[] {
  return pools
    .filter(
      (p) =>
        p.vmSize.toLowerCase() === wanted.vmSize.toLowerCase() &&
        p.spot === wanted.spot &&
        p.provisioningState === 'Succeeded' &&
        p.eTag !== undefined &&
        !isOwnedBy(p.owner, wanted.self) &&
        !isOpenRun(p.owner),
    )
    .sort((a, b) => Number(b.count > 0) - Number(a.count > 0));
}
