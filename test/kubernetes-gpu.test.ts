// The control plane, kwok and the AKS emulator together: a GPU Job waits for capacity that an
// agent pool created through the real Azure SDK provides, and deleting the pool removes it.
import { BatchV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterName, containerService, core, createNamespace, emulator, eventually, adminKubeConfig, poolNodes, resourceGroup, unique } from './support.js';

const batch = adminKubeConfig.makeApiClient(BatchV1Api);
const namespace = `gpu-${unique()}`;
const pool = `gpu${unique(6)}`;

beforeAll(async () => {
  await createNamespace(namespace);
  await emulator.settings({ provisioningDelayMs: 1500, deletionDelayMs: 1000 });
});

afterAll(async () => {
  await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('a GPU Job on a node pool created through ARM', () => {
  it('stays Pending without its GPU nodes, runs once the pool exists, and the nodes go with the pool', async () => {
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name: 'train' },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              // This pool's nodes only: GPU nodes of other runs must not satisfy it.
              nodeSelector: { 'kubernetes.azure.com/agentpool': pool },
              tolerations: [{ key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }],
              containers: [{ name: 'train', image: 'trainer:test', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
            },
          },
        },
      },
    });

    // The scheduler finds no node with nvidia.com/gpu: the pod is Unschedulable.
    const pending = await eventually(async () => {
      const { items } = await core.listNamespacedPod({ namespace, labelSelector: 'job-name=train' });
      const condition = items[0]?.status?.conditions?.find((c) => c.type === 'PodScheduled');
      return condition?.status === 'False' ? items[0] : undefined;
    }, 'the pod to be reported unschedulable');
    expect(pending.status?.phase).toBe('Pending');
    expect(pending.status?.conditions?.find((c) => c.type === 'PodScheduled')?.reason).toBe('Unschedulable');

    await emulator.clearRequests();
    const created = await containerService.agentPools.beginCreateOrUpdateAndWait(
      resourceGroup,
      clusterName,
      pool,
      { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', nodeTaints: ['sku=gpu:NoSchedule'], nodeLabels: { team: 'ml' } },
      { updateIntervalInMs: 200 },
    );
    expect(created.provisioningState).toBe('Succeeded');
    expect(created.count).toBe(1);

    // The SDK really ran the LRO protocol: PUT, then polls of the async operation, then a final GET.
    const calls = (await emulator.requests()).map((r) => `${r.method} ${r.path.includes('/operations/') ? 'operation' : 'pool'} ${r.status}`);
    expect(calls[0]).toBe('PUT pool 201');
    expect(calls).toContain('GET operation 200');
    expect(calls.at(-1)).toBe('GET pool 200');

    const [node] = await poolNodes(pool);
    expect(node?.metadata?.labels).toMatchObject({
      'kubernetes.azure.com/agentpool': pool,
      agentpool: pool,
      'node.kubernetes.io/instance-type': 'Standard_NC24ads_A100_v4',
      team: 'ml',
    });
    expect(node?.metadata?.labels?.['kubernetes.azure.com/accelerator']).toBe('nvidia');
    expect(node?.spec?.taints).toContainEqual({ key: 'sku', value: 'gpu', effect: 'NoSchedule' });
    expect(node?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    // The GPU is allocatable once the cluster's NVIDIA device plugin (npm run prepare-cluster) runs on the node.
    await eventually(async () => {
      const [current] = await poolNodes(pool);
      return current?.status?.allocatable?.['nvidia.com/gpu'] === '1' ? current : undefined;
    }, 'the device plugin to register the GPU');
    const { items: plugins } = await core.listNamespacedPod({ namespace: 'gpu-resources', fieldSelector: `spec.nodeName=${node?.metadata?.name}` });
    expect(plugins.map((p) => p.status?.phase)).toEqual(['Running']);

    // The scheduler binds the pod to the new node, kwok runs it, and the Job controller completes the Job.
    const done = await eventually(async () => {
      const job = await batch.readNamespacedJob({ name: 'train', namespace });
      return job.status?.succeeded ? job : undefined;
    }, 'the Job to succeed');
    expect(done.status?.succeeded).toBe(1);
    const { items: pods } = await core.listNamespacedPod({ namespace, labelSelector: 'job-name=train' });
    expect(pods[0]?.spec?.nodeName).toBe(node?.metadata?.name);

    await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 });
    expect(await poolNodes(pool)).toEqual([]);
  });

  it('scales a pool up and down by changing its count, and marks spot nodes as AKS does', async () => {
    const spotPool = `spot${unique(6)}`;
    const params = { vmSize: 'Standard_NC4as_T4_v3', mode: 'User', scaleSetPriority: 'Spot', scaleSetEvictionPolicy: 'Delete' } as const;
    try {
      await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, spotPool, { ...params, count: 2 }, { updateIntervalInMs: 200 });
      const nodes = await poolNodes(spotPool);
      expect(nodes).toHaveLength(2);
      expect(nodes[0]?.metadata?.labels?.['kubernetes.azure.com/scalesetpriority']).toBe('spot');
      expect(nodes[0]?.spec?.taints).toContainEqual({ key: 'kubernetes.azure.com/scalesetpriority', value: 'spot', effect: 'NoSchedule' });

      const scaled = await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, spotPool, { ...params, count: 0 }, { updateIntervalInMs: 200 });
      expect(scaled.count).toBe(0);
      expect(await poolNodes(spotPool)).toEqual([]);
    } finally {
      await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, spotPool, { updateIntervalInMs: 200 });
    }
  });
});
