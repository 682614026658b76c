// The NVIDIA device plugin: AKS GPU nodes join with the driver only, and nvidia.com/gpu becomes
// allocatable only while the plugin runs on them. waitForPoolNodes names the missing plugin.
import { readFileSync } from 'node:fs';
import { AppsV1Api, type V1DaemonSet } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { devicePluginManifest } from '../scripts/prepare-cluster.js';
import { createWorkerActivities } from '../workers/worker.js';
import { clusterName, config, containerService, core, createNamespace, emulator, eventually, adminKubeConfig, poolNodes, resourceGroup, unique } from './support.js';

const apps = adminKubeConfig.makeApiClient(AppsV1Api);
const activities = createWorkerActivities(config, { armPollIntervalMs: 200, kubePollIntervalMs: 200 });
const activity = new MockActivityEnvironment();
const namespace = `plugin-${unique()}`;
const pool = `dp${unique(6)}`;
// A taint the cluster's plugin does not tolerate: its pods never land on this pool's nodes.
const researchTaint = { key: 'dedicated', value: 'research', effect: 'NoSchedule' };
const manifest = parseAllDocuments(readFileSync(devicePluginManifest, 'utf8')).map((d) => d.toJS() as { kind: string });
const pluginDaemonSet = manifest.find((o) => o.kind === 'DaemonSet') as V1DaemonSet;
const gpuOf = async () => (await poolNodes(pool))[0]?.status?.allocatable?.['nvidia.com/gpu'];

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  await createNamespace(namespace);
});

afterAll(async () => {
  await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('the NVIDIA device plugin', () => {
  it('is installed pinned, on GPU nodes only, tolerating the GPU and spot taints', async () => {
    const installed = await apps.readNamespacedDaemonSet({ name: 'nvidia-device-plugin-daemonset', namespace: 'gpu-resources' });
    const spec = installed.spec!.template.spec!;
    expect(spec.containers[0]!.image).toMatch(/^nvcr\.io\/nvidia\/k8s-device-plugin:v\d+\.\d+\.\d+$/);
    expect(spec.nodeSelector).toEqual({ 'kubernetes.azure.com/accelerator': 'nvidia' });
    expect(spec.tolerations).toEqual(
      expect.arrayContaining([
        { key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
        { key: 'kubernetes.azure.com/scalesetpriority', operator: 'Equal', value: 'spot', effect: 'NoSchedule' },
      ]),
    );
  });

  it('makes GPUs allocatable only while it runs on the node; without it waitForPoolNodes says why', async () => {
    await containerService.agentPools.beginCreateOrUpdateAndWait(
      resourceGroup,
      clusterName,
      pool,
      { count: 1, vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', nodeTaints: ['sku=gpu:NoSchedule', 'dedicated=research:NoSchedule'] },
      { updateIntervalInMs: 200 },
    );
    const [node] = await poolNodes(pool);
    expect(node?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    // No plugin on the node: Ready, but no GPU, and the wait fails with advice instead of waiting on.
    const error = await activity.run(activities.waitForPoolNodes, pool, 1, { noGpuTimeoutMinutes: 0.05 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: 'GpuNotAllocatable', nonRetryable: true });
    expect((error as Error).message).toMatch(/^no nvidia\.com\/gpu after 0\.05 minutes .* is the NVIDIA device plugin running\? .*npm run prepare-cluster/);
    expect(await gpuOf()).toBeUndefined();

    // A plugin that tolerates the pool's taint: its pod runs there, and the GPU becomes allocatable.
    const daemonSet: V1DaemonSet = {
      ...pluginDaemonSet,
      metadata: { name: 'research-device-plugin', namespace },
      spec: {
        ...pluginDaemonSet.spec!,
        template: {
          ...pluginDaemonSet.spec!.template,
          spec: {
            ...pluginDaemonSet.spec!.template.spec!,
            tolerations: [...(pluginDaemonSet.spec!.template.spec!.tolerations ?? []), { ...researchTaint, operator: 'Equal' }],
          },
        },
      },
    };
    await apps.createNamespacedDaemonSet({ namespace, body: daemonSet });
    await eventually(async () => ((await gpuOf()) === '1' ? true : undefined), 'the GPU to become allocatable');
    const ready = await activity.run(activities.waitForPoolNodes, pool, 1, { noGpuTimeoutMinutes: 0.05 });
    expect(ready).toEqual({ nodes: [node!.metadata!.name], gpusPerNode: 1 });

    // The plugin gone from the node: so is the GPU.
    await apps.deleteNamespacedDaemonSet({ name: 'research-device-plugin', namespace, propagationPolicy: 'Foreground' });
    await eventually(async () => ((await gpuOf()) === undefined ? true : undefined), 'the GPU to stop being allocatable');
  });
});
