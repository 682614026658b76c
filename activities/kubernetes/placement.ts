// Where a pipeline pod runs: on the run's node pool, tolerating its taints and AKS's spot taint.
import type { V1PodSpec } from '@kubernetes/client-node';
import { parseTaint, spotTaint, toleration } from './taints.js';

/** The label AKS puts on every node with the name of its agent pool. */
export const agentPoolLabel = 'kubernetes.azure.com/agentpool';

export function onPool(pool: string, taints: string[]): Pick<V1PodSpec, 'nodeSelector' | 'tolerations'> {
  return {
    nodeSelector: { [agentPoolLabel]: pool },
    tolerations: [...taints.map(parseTaint), spotTaint].map(toleration),
  };
}
