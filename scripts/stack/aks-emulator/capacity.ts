// Azure's limits on GPUs, as emulator settings (PUT /_emulator/capacity): vCPU quotas by the
// Compute usages API's names, and where allocation fails. Served as Azure serves them:
// - GET .../providers/Microsoft.Compute/locations/{location}/usages lists every quota with its
//   usage and limit (https://learn.microsoft.com/rest/api/compute/usage/list; azure-rest-api-specs
//   specification/compute ComputeRP.json, "Usage_List": value[].{unit, currentValue, limit, name.{value, localizedValue}}).
//   Usage counts each pool's nodes × the size's vCPUs, twice: in the size's family and in the
//   regional total ("cores"); a Spot pool only in "lowPriorityCores"
//   (https://learn.microsoft.com/azure/virtual-machines/spot-vms#quota).
// - A PUT that would go over a quota is refused at once: 400 QuotaExceeded, with the numbers in
//   Compute's wording (https://learn.microsoft.com/azure/quotas/view-quotas, "exceeding approved ... Cores quota").
// - A PUT where the size has no capacity is accepted and its operation fails, AKS's code wrapping
//   Compute's ZonalAllocationFailed (a zonal pool) or AllocationFailed (a regional one)
//   (https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/zonalallocationfailed-allocationfailed-error).
import { findVmSize, vmSizeNames } from '../../../domain/vm-sizes.js';
import { seededRandom } from '../../eviction-plan.js';
import type { AgentPoolProperties } from './agent-pool-spec.js';
import type { OperationError } from './agent-pools.js';
import { ArmError } from './arm-error.js';
import { capacityError } from './faults.js';

export interface CapacitySettings {
  /** vCPU limits by usages name: a family (standardNCADSA100v4Family...), "cores", "lowPriorityCores". Unset: defaultQuotaLimit. */
  quotas: Record<string, number>;
  /**
   * Where allocation fails: a size, in one zone or all (no zone), for Spot or on-demand or both (no
   * spot); with rate, that fraction of the requests (drawn from seed), for scarcity that comes and goes.
   */
  unavailable: { vmSize: string; zone?: string; spot?: boolean; rate?: number }[];
  seed?: number;
  /** Node pools the cluster may have, the system pool included (ManagedClusterProperties.maxAgentPools). Unset: AKS's maximum, maxAgentPoolsPerCluster. */
  maxAgentPools?: number;
}

/**
 * AKS's limit: "Maximum node pools per cluster: 100" (learn.microsoft.com/azure/aks/quotas-skus-regions,
 * "Service quotas and limits"); a managed cluster reports it as the read-only maxAgentPools.
 */
export const maxAgentPoolsPerCluster = 100;

/** The limit of a quota the settings leave out: large, so only what a test sets binds. */
export const defaultQuotaLimit = 10_000;

export const noLimits = (): CapacitySettings => ({ quotas: {}, unavailable: [] });

const invalid = (message: string) => new ArmError(400, 'InvalidCapacity', message);

export function parseCapacity(body: unknown): CapacitySettings {
  const b = (body ?? {}) as Partial<CapacitySettings>;
  const quotas = b.quotas ?? {};
  if (typeof quotas !== 'object' || Array.isArray(quotas) || !Object.values(quotas).every((v) => Number.isInteger(v) && v >= 0)) {
    throw invalid('quotas must map usage names to whole vCPU limits (0 or more)');
  }
  const unavailable = b.unavailable ?? [];
  const valid = (u: CapacitySettings['unavailable'][number]) =>
    u && typeof u.vmSize === 'string' && (u.zone === undefined || ['1', '2', '3'].includes(u.zone)) && (u.rate === undefined || (u.rate > 0 && u.rate <= 1));
  if (!Array.isArray(unavailable) || !unavailable.every(valid)) {
    throw invalid('unavailable must be a list of { vmSize, zone?: "1"|"2"|"3", spot?: boolean, rate?: a fraction above 0, at most 1 }');
  }
  if (b.seed !== undefined && !Number.isInteger(b.seed)) throw invalid('seed must be a whole number');
  if (b.maxAgentPools !== undefined && !(Number.isInteger(b.maxAgentPools) && b.maxAgentPools >= 1 && b.maxAgentPools <= maxAgentPoolsPerCluster)) {
    throw invalid(`maxAgentPools must be a whole number from 1 to ${maxAgentPoolsPerCluster}`);
  }
  return { quotas, unavailable, ...(b.seed !== undefined ? { seed: b.seed } : {}), ...(b.maxAgentPools !== undefined ? { maxAgentPools: b.maxAgentPools } : {}) };
}

/** The draw behind `rate`: seeded when the settings are set, so a seed gives the same shortages. */
export const capacityRandom = (settings: CapacitySettings) => seededRandom(settings.seed ?? 1);

interface QuotaRow {
  name: string;
  localizedValue: string;
}

const families = [...new Set(vmSizeNames.map((n) => findVmSize(n)!.family))];
const quotaRows: QuotaRow[] = [
  { name: 'cores', localizedValue: 'Total Regional vCPUs' },
  { name: 'lowPriorityCores', localizedValue: 'Total Regional Low-priority vCPUs' },
  ...families.map((f) => ({ name: f, localizedValue: `${f.replace(/^standard/i, 'Standard ').replace(/Family$/, ' Family')} vCPUs` })),
];

/** The vCPUs a pool draws from each quota. */
function draws(props: Pick<AgentPoolProperties, 'vmSize' | 'count' | 'scaleSetPriority'>): Record<string, number> {
  const size = findVmSize(props.vmSize);
  if (!size) return {};
  const vcpus = size.vCpus * props.count;
  return props.scaleSetPriority === 'Spot' ? { lowPriorityCores: vcpus } : { [size.family]: vcpus, cores: vcpus };
}

function usageByQuota(pools: AgentPoolProperties[]): Map<string, number> {
  const usage = new Map<string, number>();
  for (const p of pools) for (const [q, v] of Object.entries(draws(p))) usage.set(q, (usage.get(q) ?? 0) + v);
  return usage;
}

const limitOf = (settings: CapacitySettings, name: string) => settings.quotas[name] ?? defaultQuotaLimit;

/** The usages API's answer. */
export function usagesResponse(pools: AgentPoolProperties[], settings: CapacitySettings) {
  const usage = usageByQuota(pools);
  return {
    value: quotaRows.map((r) => ({ unit: 'Count', currentValue: usage.get(r.name) ?? 0, limit: limitOf(settings, r.name), name: { value: r.name, localizedValue: r.localizedValue } })),
  };
}

/**
 * The refusal of a PUT that would take a quota over its limit (only when it grows the usage:
 * a PUT that changes tags on a pool already over a lowered limit goes through, as on Azure).
 */
export function quotaRefusal(others: AgentPoolProperties[], next: AgentPoolProperties, before: AgentPoolProperties | undefined, settings: CapacitySettings, location: string): ArmError | undefined {
  const usage = usageByQuota(others);
  const had = before ? draws(before) : {};
  for (const [quota, needed] of Object.entries(draws(next))) {
    const current = usage.get(quota) ?? 0;
    const limit = limitOf(settings, quota);
    const additional = needed - (had[quota] ?? 0);
    if (additional > 0 && current + needed > limit) {
      const label = quota === 'cores' ? 'Total Regional Cores' : quota === 'lowPriorityCores' ? 'Low Priority Cores' : `${quota} Cores`;
      return new ArmError(
        400,
        'QuotaExceeded',
        `Operation could not be completed as it results in exceeding approved ${label} quota. Additional details - Deployment Model: Resource Manager, ` +
          `Location: ${location}, Current Limit: ${limit}, Current Usage: ${current + (had[quota] ?? 0)}, Additional Required: ${additional}, ` +
          `(Minimum) New Limit Required: ${current + needed}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/UsageAndQuota.ReactView ` +
          `by specifying parameters listed in the 'Details' section for deployment to succeed.`,
      );
    }
  }
  return undefined;
}

/** The error the pool's create or scale-up finishes with when its size has no capacity where it asks. */
export function allocationFailure(props: AgentPoolProperties, settings: CapacitySettings, random: () => number): OperationError | undefined {
  const zones = props.availabilityZones ?? [];
  const rule = settings.unavailable.find(
    (u) =>
      u.vmSize.toLowerCase() === props.vmSize.toLowerCase() &&
      (u.spot === undefined || u.spot === (props.scaleSetPriority === 'Spot')) &&
      (u.zone === undefined || (zones.length > 0 && zones.every((z) => z === u.zone))),
  );
  const short = rule !== undefined && (rule.rate === undefined || random() < rule.rate);
  if (!short) return undefined;
  return capacityError(zones.length > 0 ? 'ZonalAllocationFailed' : 'AllocationFailed');
}
