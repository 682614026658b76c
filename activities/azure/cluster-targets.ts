// Which AKS clusters this worker serves (domain/cluster-targets.ts): a run checks the clusters its
// candidates name against them before anything is created, since a target no worker serves would
// leave the run's activities waiting on a task queue nobody polls.
import type { ClusterTargets } from '../../domain/cluster-targets.js';

export function createClusterTargetActivities({ clusters }: { clusters: ClusterTargets }) {
  return {
    async listClusterTargets(): Promise<ClusterTargets> {
      return clusters;
    },
  };
}
