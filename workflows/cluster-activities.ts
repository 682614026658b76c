// Activities that act on one cluster (its ARM pools, its Kubernetes objects) run on the task queue
// of the cluster they act on: the run's own for the worker's home cluster, a target's own queue
// for a target (domain/cluster-targets.ts), where only a Worker holding that target's clients
// polls. A run that names no target schedules every activity exactly as before targets existed.
import { type ActivityInterfaceFor, type ActivityOptions, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { clusterTaskQueue } from '../domain/cluster-targets.js';

/** Proxies with these options, for the cluster named (undefined: the home cluster). */
export function perCluster<A extends object>(options: ActivityOptions): (cluster: string | undefined) => ActivityInterfaceFor<A> {
  const home = proxyActivities<A>(options);
  // Not cached per name: a cached proxy would keep the task queue of the run that made it.
  return (cluster) => (cluster === undefined ? home : proxyActivities<A>({ ...options, taskQueue: clusterTaskQueue(workflowInfo().taskQueue, cluster) }));
}
