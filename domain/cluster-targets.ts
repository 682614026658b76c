// The AKS clusters one worker serves: its home cluster (AKS_CLUSTER_NAME) and the named targets
// of AKS_CLUSTERS_FILE. A run's GPU candidates may name a target (gpu.candidates[].cluster); the
// run then works in the cluster its pool was created in. Activities that act on a target run on
// that target's own task queue, which only a worker holding the target's clients polls, so no
// activity needs a cluster argument and a run without targets schedules exactly as before.
// Pure: safe to import from workflow code.
import { z } from 'zod';
import { dnsLabel, strict, text } from './schema.js';

/** A target's name as requests and status show it: a DNS label (it is part of a task queue name). */
export const clusterNameSchema = dnsLabel(40, 'cluster target name');

const resourceIdPattern = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)$/i;

/** One entry of AKS_CLUSTERS_FILE. */
export const clusterTargetSchema = strict({
  /** What gpu.candidates[].cluster names. */
  name: clusterNameSchema,
  /** /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name} */
  resourceId: text('the cluster\'s ARM resource id, /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}', { pattern: resourceIdPattern, max: 400 }),
  /** The cluster's Azure region, e.g. westus3: where its quota is read and its traffic goes. */
  region: text('an Azure region name, e.g. westus3', { pattern: /^[a-z][a-z0-9]{1,39}$/ }),
  /** Kubeconfig of the cluster (e.g. from az aks get-credentials, with kubelogin for workload identity). */
  kubeconfig: text('the path of a kubeconfig file', { max: 1000 }),
  /** ARM endpoint when not the worker's (a sovereign cloud; the local stack's second emulator). */
  armEndpoint: text('an https:// URL', { pattern: /^https:\/\/\S+$/, max: 400 }).optional(),
});

export const clusterTargetsFileSchema = strict({ clusters: z.array(clusterTargetSchema).max(20, { error: 'at most 20 clusters' }) });

export type ClusterTarget = z.infer<typeof clusterTargetSchema>;

/** Subscription, resource group and cluster name of a target's resource id. */
export function parseClusterResourceId(resourceId: string): { subscriptionId: string; resourceGroup: string; clusterName: string } {
  const [, subscriptionId, resourceGroup, clusterName] = resourceIdPattern.exec(resourceId) ?? [];
  if (!subscriptionId || !resourceGroup || !clusterName) throw new Error(`not an AKS cluster resource id: ${resourceId}`);
  return { subscriptionId, resourceGroup, clusterName };
}

/** The ARM resource id of an AKS cluster: what parseClusterResourceId reads back. */
export const clusterResourceId = ({ subscriptionId, resourceGroup, clusterName }: { subscriptionId: string; resourceGroup: string; clusterName: string }) =>
  `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.ContainerService/managedClusters/${clusterName}`;

/** What a run needs to know of the clusters its worker serves (the listClusterTargets activity). */
export interface ClusterTargets {
  home: { name: string; region?: string };
  targets: { name: string; region: string }[];
}

/**
 * The task queue of a cluster's activities: the run's own for the home cluster (undefined), else
 * the run's queue with the target's name, e.g. fine-tuning@westus3-gpu.
 */
export const clusterTaskQueue = (taskQueue: string, cluster: string | undefined) => (cluster === undefined ? taskQueue : `${taskQueue}@${cluster}`);

/**
 * Candidates' cluster names resolved against the worker's clusters: the home cluster's own name
 * becomes undefined (its activities run on the run's queue); a name the worker does not serve is
 * a problem, before anything is created.
 */
export function resolveClusters<T extends { cluster?: string }>(attempts: T[], clusters: ClusterTargets): { attempts: T[]; problems: string[] } {
  const known = clusters.targets.map((t) => t.name);
  const unknown = [...new Set(attempts.map((a) => a.cluster).filter((c): c is string => c !== undefined && c !== clusters.home.name && !known.includes(c)))];
  const served = [clusters.home.name, ...known].map((n) => `"${n}"`).join(', ');
  return {
    attempts: attempts.map(({ cluster, ...rest }) => (cluster === undefined || cluster === clusters.home.name ? rest : { ...rest, cluster }) as T),
    problems: unknown.map((c) => `gpu.candidates names cluster "${c}", which this worker does not serve (it serves ${served}; add it to AKS_CLUSTERS_FILE)`),
  };
}

/** The distinct clusters of some attempts, in order of first appearance (undefined: home). */
export const clustersOf = (attempts: { cluster?: string }[]): (string | undefined)[] => [...new Set(attempts.map((a) => a.cluster))];
