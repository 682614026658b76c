// Validates an agent pool PUT body the way AKS does before accepting the operation, and
// normalises it into the properties the emulator stores.
import { findVmSize } from '../../../domain/vm-sizes.js';
import { ArmError } from './arm-error.js';

export interface AgentPoolProperties {
  count: number;
  vmSize: string;
  osType: string;
  mode: 'System' | 'User';
  orchestratorVersion: string;
  nodeLabels: Record<string, string>;
  nodeTaints: string[];
  enableAutoScaling: boolean;
  minCount?: number;
  maxCount?: number;
  scaleDownMode: 'Delete' | 'Deallocate';
  scaleSetPriority: 'Regular' | 'Spot';
  scaleSetEvictionPolicy?: 'Delete' | 'Deallocate';
  spotMaxPrice?: number;
  maxPods: number;
  upgradeSettings: { maxSurge: string };
  tags: Record<string, string>;
  /** The zones its nodes go to (AgentPool availabilityZones: "1", "2", "3"); absent: regional. */
  availabilityZones?: string[];
}

/**
 * What AKS adds to a Spot pool's own nodeLabels and nodeTaints, and returns in its properties
 * (https://learn.microsoft.com/azure/aks/spot-node-pool: "Spot nodes are configured with this label
 * and taint"). Clients may send them back; they are kept once.
 */
export const spotNodeLabel = { 'kubernetes.azure.com/scalesetpriority': 'spot' };
export const spotNodeTaint = 'kubernetes.azure.com/scalesetpriority=spot:NoSchedule';

const invalid = (message: string) => new ArmError(400, 'InvalidParameter', message);
const taintPattern = /^[A-Za-z0-9][-A-Za-z0-9_./]*=[-A-Za-z0-9_.]*:(NoSchedule|PreferNoSchedule|NoExecute)$/;

function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${field} must be an object of strings`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalid(`${field}.${k} must be a string`);
  }
  return value as Record<string, string>;
}

function wholeNumber(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`The value of parameter ${field} is invalid: it must be an integer from ${min} to ${max}.`);
  }
  return value;
}

/**
 * @param body the request body (`{ properties: {...} }`)
 * @param existing the stored properties when this PUT updates a pool
 */
export function parseAgentPoolSpec(
  body: unknown,
  existing: AgentPoolProperties | undefined,
  clusterVersion: string,
): AgentPoolProperties {
  const props = (body as { properties?: Record<string, unknown> } | undefined)?.properties;
  if (!props || typeof props !== 'object') throw invalid('The request body must contain "properties".');

  const vmSizeName = props.vmSize ?? existing?.vmSize;
  if (typeof vmSizeName !== 'string' || vmSizeName === '') throw invalid('properties.vmSize is required.');
  const vmSize = findVmSize(vmSizeName);
  if (!vmSize) {
    throw new ArmError(400, 'VMSizeNotSupported', `The VM size of ${vmSizeName} is not supported in this region.`);
  }
  if (existing && existing.vmSize.toLowerCase() !== vmSize.name.toLowerCase()) {
    throw new ArmError(400, 'PropertyChangeNotAllowed', "Changing property 'vmSize' is not allowed.");
  }

  const enableAutoScaling = props.enableAutoScaling === true;
  const count = wholeNumber(props.count ?? existing?.count ?? 1, 'properties.count', 0, 1000);
  let minCount: number | undefined;
  let maxCount: number | undefined;
  if (enableAutoScaling) {
    minCount = wholeNumber(props.minCount, 'properties.minCount', 0, 1000);
    maxCount = wholeNumber(props.maxCount, 'properties.maxCount', 1, 1000);
    if (minCount > maxCount) throw invalid('properties.minCount must be less than or equal to properties.maxCount.');
    if (count < minCount || count > maxCount) {
      throw invalid('properties.count must be between properties.minCount and properties.maxCount when autoscaling is enabled.');
    }
  }

  const mode = props.mode ?? existing?.mode ?? 'User';
  if (mode !== 'User' && mode !== 'System') throw invalid(`properties.mode must be "System" or "User", not "${String(mode)}".`);
  const priority = props.scaleSetPriority ?? existing?.scaleSetPriority ?? 'Regular';
  if (priority !== 'Regular' && priority !== 'Spot') throw invalid('properties.scaleSetPriority must be "Regular" or "Spot".');
  if (existing && existing.scaleSetPriority !== priority) {
    throw new ArmError(400, 'PropertyChangeNotAllowed', "Changing property 'scaleSetPriority' is not allowed.");
  }
  if (priority === 'Spot' && mode === 'System') throw invalid('System node pools cannot use Spot priority.');
  const scaleDownMode = props.scaleDownMode ?? existing?.scaleDownMode ?? 'Delete';
  if (scaleDownMode !== 'Delete' && scaleDownMode !== 'Deallocate') {
    throw invalid('properties.scaleDownMode must be "Delete" or "Deallocate".');
  }

  const nodeTaints = (props.nodeTaints ?? existing?.nodeTaints ?? []) as unknown;
  if (!Array.isArray(nodeTaints) || !nodeTaints.every((t) => typeof t === 'string' && taintPattern.test(t))) {
    throw invalid('properties.nodeTaints must be a list of "key=value:Effect" strings.');
  }

  // Spot rules (spec: AgentPool scaleSetEvictionPolicy "Delete" | "Deallocate", spotMaxPrice
  // "-1 ... or any value greater than 0", https://learn.microsoft.com/azure/aks/spot-node-pool).
  const evictionPolicy = props.scaleSetEvictionPolicy ?? existing?.scaleSetEvictionPolicy;
  const spotMaxPrice = props.spotMaxPrice ?? existing?.spotMaxPrice;
  if (priority !== 'Spot' && (props.scaleSetEvictionPolicy !== undefined || props.spotMaxPrice !== undefined)) {
    throw invalid('properties.scaleSetEvictionPolicy and properties.spotMaxPrice can only be set when scaleSetPriority is Spot.');
  }
  if (evictionPolicy !== undefined && evictionPolicy !== 'Delete' && evictionPolicy !== 'Deallocate') {
    throw invalid(`properties.scaleSetEvictionPolicy must be "Delete" or "Deallocate", not "${String(evictionPolicy)}".`);
  }
  if (spotMaxPrice !== undefined && (typeof spotMaxPrice !== 'number' || !(spotMaxPrice === -1 || spotMaxPrice > 0))) {
    throw invalid(`properties.spotMaxPrice must be -1 (up to the on-demand price) or a price greater than 0, not ${String(spotMaxPrice)}.`);
  }
  // `?? 110` and `?.` below: pools stored by an older emulator (state survives restarts) lack these fields.
  const maxPods = wholeNumber(props.maxPods ?? existing?.maxPods ?? 110, 'properties.maxPods', 10, 250);
  if (existing && (existing.maxPods ?? 110) !== maxPods) throw new ArmError(400, 'PropertyChangeNotAllowed', "Changing property 'maxPods' is not allowed.");
  const spot = priority === 'Spot';
  const labels = stringMap(props.nodeLabels ?? existing?.nodeLabels, 'properties.nodeLabels');
  // availabilityZones: a list of zone numbers, fixed at creation
  // (https://learn.microsoft.com/azure/aks/availability-zones#create-an-aks-cluster-across-availability-zones).
  const zones = props.availabilityZones ?? existing?.availabilityZones;
  if (zones !== undefined && (!Array.isArray(zones) || !zones.every((z) => z === '1' || z === '2' || z === '3'))) {
    throw invalid('properties.availabilityZones must be a list of zones "1", "2" or "3".');
  }
  const zoneKey = (z?: string[]) => [...(z ?? [])].sort().join(',');
  if (existing && props.availabilityZones !== undefined && zoneKey(zones as string[]) !== zoneKey(existing.availabilityZones)) {
    throw new ArmError(400, 'PropertyChangeNotAllowed', "Changing property 'availabilityZones' is not allowed.");
  }

  return {
    count,
    vmSize: vmSize.name,
    osType: typeof props.osType === 'string' ? props.osType : 'Linux',
    mode,
    orchestratorVersion: typeof props.orchestratorVersion === 'string' ? props.orchestratorVersion : clusterVersion,
    nodeLabels: spot ? { ...labels, ...spotNodeLabel } : labels,
    nodeTaints: spot ? [...new Set([...(nodeTaints as string[]), spotNodeTaint])] : (nodeTaints as string[]),
    enableAutoScaling,
    minCount,
    maxCount,
    scaleDownMode,
    scaleSetPriority: priority,
    scaleSetEvictionPolicy: spot ? ((evictionPolicy as 'Delete' | 'Deallocate' | undefined) ?? 'Delete') : undefined,
    spotMaxPrice: spot ? ((spotMaxPrice as number | undefined) ?? -1) : undefined,
    maxPods,
    // The default a new pool gets (AgentPoolUpgradeSettings.maxSurge: "default is 10%").
    upgradeSettings: { maxSurge: (props.upgradeSettings as { maxSurge?: string } | undefined)?.maxSurge ?? existing?.upgradeSettings?.maxSurge ?? '10%' },
    tags: stringMap(props.tags ?? existing?.tags, 'properties.tags'),
    ...((zones as string[] | undefined)?.length ? { availabilityZones: zones as string[] } : {}),
  };
}
