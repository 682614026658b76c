// The tuning pod's egress NetworkPolicy: it may reach the internet (weights, dataset URLs) and
// the cluster DNS, never private, link-local, metadata or other internal ranges: a second line
// behind the downloader's own checks. One per namespace, shared by all runs there. It only
// takes effect with a network-policy engine: on AKS, Azure CNI powered by Cilium, or Azure
// Network Policy Manager / Calico (https://learn.microsoft.com/azure/aks/use-network-policies).
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { forbiddenIpv4Cidrs, forbiddenIpv6Cidrs } from '../../domain/dataset-url.js';
import { managedBy, roleLabel, roles } from './labels.js';

export const tuningEgressPolicyName = 'aks-finetune-tuning-egress';

export function tuningEgressPolicy(): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: tuningEgressPolicyName, labels: { ...managedBy } },
    spec: {
      podSelector: { matchLabels: { [roleLabel]: roles.trainer } },
      policyTypes: ['Egress'],
      egress: [
        // Cluster DNS (CoreDNS in kube-system): names must resolve for the downloader to check them.
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: forbiddenIpv4Cidrs } }, { ipBlock: { cidr: '::/0', except: forbiddenIpv6Cidrs } }] },
      ],
    },
  };
}
