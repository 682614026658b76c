// Where a pipeline pod runs: on the run's node pool, tolerating its taints and AKS's spot taint.
import type { V1PodSpec } from '@kubernetes/client-node';
import { parseTaint, spotTaint, toleration } from './taints.js';

export function onPool(pool: string, taints: string[]): Pick<V1PodSpec, 'nodeSelector' | 'tolerations'> {
  return {
    nodeSelector: { 'kubernetes.azure.com/agentpool': pool },
    tolerations: [...taints.map(parseTaint), spotTaint].map(toleration),
  };
}
