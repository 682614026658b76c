// The clusters a worker serves: AKS_CLUSTERS_FILE's validation, resource ids, the task queue of a
// target, candidates naming clusters, and the attempt order across clusters.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterTaskQueue, parseClusterResourceId, resolveClusters } from '../domain/cluster-targets.js';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { gpuAttemptOrder } from '../domain/gpu-candidates.js';
import { defaultPriceTable } from '../domain/prices.js';
import { ConfigError, loadClusterTargets, targetConfig, type WorkerConfig } from '../workers/config.js';

const resourceId = '/subscriptions/1111/resourceGroups/gpu-west/providers/Microsoft.ContainerService/managedClusters/aks-west';
const clustersFile = (content: string) => {
  const file = join(mkdtempSync(join(tmpdir(), 'clusters-')), 'clusters.yaml');
  writeFileSync(file, content);
  return file;
};

describe('AKS_CLUSTERS_FILE', () => {
  it('reads targets, with kubeconfig paths relative to the file', () => {
    const file = clustersFile(`clusters:\n  - name: west\n    resourceId: ${resourceId}\n    region: westus3\n    kubeconfig: west.kubeconfig\n`);
    expect(loadClusterTargets(file, 'aks-east')).toEqual([{ name: 'west', resourceId, region: 'westus3', kubeconfig: join(file, '..', 'west.kubeconfig') }]);
    expect(loadClusterTargets(undefined, 'aks-east')).toEqual([]);
  });

  it('names every problem: unknown fields, a bad resource id, a name used twice or the home cluster\'s', () => {
    const bad = clustersFile(`clusters:\n  - name: west\n    resourceId: /subscriptions/1/x\n    region: westus3\n    kubeconfig: k\n    zone: 1\n`);
    expect(() => loadClusterTargets(bad, 'aks-east')).toThrow(/clusters\[0\]\.resourceId must be the cluster's ARM resource id.*clusters\[0\]\.zone is not a known field/);
    const twice = clustersFile(`clusters:\n  - {name: aks-east, resourceId: ${resourceId}, region: westus3, kubeconfig: k}\n`);
    expect(() => loadClusterTargets(twice, 'aks-east')).toThrow(ConfigError);
    expect(() => loadClusterTargets(twice, 'aks-east')).toThrow(/"aks-east" is named twice/);
  });

  it("a target's worker configuration: its subscription, group, cluster, ARM endpoint and kubeconfig", () => {
    const home = { azure: { armEndpoint: 'https://management.azure.com', subscriptionId: '0000', resourceGroup: 'rg', clusterName: 'aks-east' }, kubeconfig: undefined, clusters: [] } as unknown as WorkerConfig;
    expect(parseClusterResourceId(resourceId)).toEqual({ subscriptionId: '1111', resourceGroup: 'gpu-west', clusterName: 'aks-west' });
    expect(targetConfig(home, { name: 'west', resourceId, region: 'westus3', kubeconfig: '/k' })).toMatchObject({
      azure: { armEndpoint: 'https://management.azure.com', subscriptionId: '1111', resourceGroup: 'gpu-west', clusterName: 'aks-west' },
      kubeconfig: '/k',
    });
  });
});

describe('candidates in other clusters', () => {
  const clusters = { home: { name: 'aks-east' }, targets: [{ name: 'west', region: 'westus3' }] };

  it('runs a target on its own task queue, the home cluster on the run\'s', () => {
    expect(clusterTaskQueue('fine-tuning', undefined)).toBe('fine-tuning');
    expect(clusterTaskQueue('fine-tuning', 'west')).toBe('fine-tuning@west');
  });

  it("resolves names: the home cluster's own name is home; an unknown one is a problem that says what is served", () => {
    const resolved = resolveClusters([{ vmSize: 'a' }, { vmSize: 'a', cluster: 'aks-east' }, { vmSize: 'a', cluster: 'west' }, { vmSize: 'a', cluster: 'north' }], clusters);
    expect(resolved.attempts.map((a) => a.cluster)).toEqual([undefined, undefined, 'west', 'north']);
    expect(resolved.problems).toEqual(['gpu.candidates names cluster "north", which this worker does not serve (it serves "aks-east", "west"; add it to AKS_CLUSTERS_FILE)']);
  });

  it('keeps one attempt per size, priority, zone and cluster; spot fallback stays in its cluster', () => {
    const attempts = gpuAttemptOrder({
      primary: { vmSize: 'Standard_NC24ads_A100_v4', spot: true },
      candidates: [{ vmSize: 'Standard_NC24ads_A100_v4', cluster: 'west' }, { vmSize: 'Standard_NC24ads_A100_v4', cluster: 'west' }],
      policy: 'listed',
      spotFallbackAfterMinutes: 10,
      fits: () => true,
      prices: defaultPriceTable,
    });
    expect(attempts.map((a) => [a.cluster, a.spot, a.source])).toEqual([
      [undefined, true, 'request'],
      ['west', true, 'listed'],
      [undefined, false, 'spot-fallback'],
      ['west', false, 'spot-fallback'],
    ]);
  });

  it('validates a candidate\'s cluster name as a DNS label', () => {
    const v = validateFineTuneRequest(
      { model: 'phi-3-mini-4k-instruct', dataset: { urls: ['https://d.example.com/x.jsonl'] }, output: { image: 'myacr.azurecr.io/a:v1' }, gpu: { vmSize: 'Standard_NC24ads_A100_v4', candidates: [{ vmSize: 'Standard_NC24ads_A100_v4', cluster: 'West US' }] } },
      'wf',
    );
    expect(v.ok ? [] : v.problems).toEqual([expect.stringMatching(/^gpu\.candidates\[0\]\.cluster must be a cluster target name: a DNS label/)]);
  });
});
