// Taints as ARM spells them ("key=value:Effect") turned into Kubernetes taints and tolerations.

export interface Taint {
  key: string;
  value: string;
  effect: string;
}

export function parseTaint(spec: string): Taint {
  const [keyValue = '', effect = ''] = spec.split(':');
  const [key = '', value = ''] = keyValue.split('=');
  return { key, value, effect };
}

export const toleration = (taint: Taint) => ({ ...taint, operator: 'Equal' });

/** AKS puts this taint on every spot node. */
export const spotTaint: Taint = { key: 'kubernetes.azure.com/scalesetpriority', value: 'spot', effect: 'NoSchedule' };
