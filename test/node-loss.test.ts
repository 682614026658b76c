// Node loss as on AKS: when a spot eviction or a pool deletion takes a node away, the pods
// bound to it fail (Kubernetes' pod garbage collector: phase Failed, condition DisruptionTarget
// with reason DeletionByPodGC, then deletion), and the gpu-simulator never completes them.
import type { AgentPool } from '@azure/arm-containerservice';
import { BatchV1Api, type V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import { createWorkerActivities } from '../workers/worker.js';
import { clusterName, config, containerService, core, emulator, eventually, adminKubeConfig, poolNodes, resourceGroup, simulator, unique, createRunNamespace } from './support.js';

const namespace = `loss-${unique()}`;
const spotPool = `sp${unique(6)}`;
const regularPool = `rg${unique(6)}`;
const jobPool = `jb${unique(6)}`;
const zonePools = { '1': `za${unique(6)}`, '2': `zb${unique(6)}` };
// Keeps a pod readable after its deletion, so the test sees how it ended.
const keep = 'test.aks-finetune.io/keep';
const fast = { updateIntervalInMs: 200 };
let trainingMs = 2000;

const trainerPod = (name: string, pool: string): V1Pod => ({
  metadata: { name, finalizers: [keep], labels: { 'aks-finetune.io/role': 'trainer' } },
  spec: {
    restartPolicy: 'Never',
    nodeSelector: { 'kubernetes.azure.com/agentpool': pool },
    tolerations: [
      { key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
      { key: 'kubernetes.azure.com/scalesetpriority', operator: 'Equal', value: 'spot', effect: 'NoSchedule' },
    ],
    containers: [
      {
        name: 'trainer',
        image: 'trainer:test',
        resources: { limits: { 'nvidia.com/gpu': '1' } },
        volumeMounts: [{ name: 'results', mountPath: '/mnt/results' }],
      },
    ],
    volumes: [{ name: 'results', persistentVolumeClaim: { claimName: `${name}-results` } }],
  },
});

async function startTrainer(name: string, pool: string): Promise<V1Pod> {
  await core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: { metadata: { name: `${name}-results` }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
  });
  await core.createNamespacedPod({ namespace, body: trainerPod(name, pool) });
  return eventually(async () => {
    const pod = await core.readNamespacedPod({ name, namespace });
    return pod.status?.phase === 'Running' ? pod : undefined;
  }, `${name} to run`);
}

/** How the pod ended, once Kubernetes has dealt with it (the test's finalizer keeps it readable). */
const ended = (name: string) =>
  eventually(
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace });
      return pod.metadata?.deletionTimestamp ? pod : undefined;
    },
    `${name} to be failed and deleted`,
    150_000,
  );

beforeAll(async () => {
  await emulator.settings({ provisioningDelayMs: 300, deletionDelayMs: 300 });
  trainingMs = (await simulator.settings()).trainingMs;
  await simulator.settings({ trainingMs: 5000 });
  await createRunNamespace(namespace);
});

afterAll(async () => {
  await simulator.settings({ trainingMs });
  for (const name of ['evicted', 'deleted', 'zone-first']) {
    await core
      .patchNamespacedPod({ name, namespace, body: [{ op: 'remove', path: '/metadata/finalizers' }] }, undefined)
      .catch(() => undefined);
  }
  for (const pool of [spotPool, regularPool, jobPool, ...Object.values(zonePools)]) {
    await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, fast).catch(() => undefined);
  }
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('node loss', () => {
  it('a spot eviction or a deleted pool fails the pods on the lost nodes; none is completed', { timeout: 240_000 }, async () => {
    const gpu: AgentPool = { vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', count: 1, nodeTaints: ['sku=gpu:NoSchedule'] };
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, spotPool, { ...gpu, scaleSetPriority: 'Spot', scaleSetEvictionPolicy: 'Delete' }, fast);
    await containerService.agentPools.beginCreateOrUpdateAndWait(resourceGroup, clusterName, regularPool, gpu, fast);
    const [evicted, deleted] = await Promise.all([startTrainer('evicted', spotPool), startTrainer('deleted', regularPool)]);

    // Azure evicts the spot node: it leaves the cluster and the pool's count drops, as AKS reports it.
    const eviction = await emulator.evictSpotNodes(spotPool, 1);
    expect(eviction).toEqual({ evicted: [evicted.spec!.nodeName], count: 0 });
    expect(await containerService.agentPools.get(resourceGroup, clusterName, spotPool)).toMatchObject({ count: 0, provisioningState: 'Succeeded' });
    expect(await poolNodes(spotPool)).toEqual([]);
    // Someone deletes the other pool under its running trainer.
    await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, regularPool, fast);
    expect(await poolNodes(regularPool)).toEqual([]);

    for (const pod of await Promise.all([ended('evicted'), ended('deleted')])) {
      expect(pod.status?.phase).toBe('Failed');
      expect(pod.status?.conditions).toContainEqual(
        expect.objectContaining({ type: 'DisruptionTarget', status: 'True', reason: 'DeletionByPodGC', message: 'PodGC: node no longer exists' }),
      );
      expect(pod.status?.containerStatuses?.some((c) => c.state?.terminated?.reason === 'Completed') ?? false).toBe(false);
    }
    expect(deleted.spec?.nodeName).toBeTruthy();
  });

  it("a results disk stays in its first node's zone: the same claim's next pod runs there, never in another zone", { timeout: 240_000 }, async () => {
    for (const [zone, pool] of Object.entries(zonePools)) {
      await containerService.agentPools.beginCreateOrUpdateAndWait(
        resourceGroup,
        clusterName,
        pool,
        { vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', count: 1, nodeTaints: ['sku=gpu:NoSchedule'], availabilityZones: [zone] },
        fast,
      );
    }
    const first = await startTrainer('zone-first', zonePools['1']);
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'zone-first-results', namespace });
    const volume = await core.readPersistentVolume({ name: claim.spec!.volumeName! });
    expect(volume.spec?.nodeAffinity?.required?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: [expect.stringMatching(/-1$/)] }] },
    ]);
    expect(claim.metadata?.annotations?.['volume.kubernetes.io/selected-node']).toBe(first.spec!.nodeName);

    const replacement = (name: string, pool: string): V1Pod => {
      const pod = trainerPod(name, pool);
      pod.metadata!.finalizers = [];
      pod.spec!.volumes = [{ name: 'results', persistentVolumeClaim: { claimName: 'zone-first-results' } }];
      return pod;
    };
    await core.createNamespacedPod({ namespace, body: replacement('zone-other', zonePools['2']) });
    const refusal = await eventually(async () => {
      const pod = await core.readNamespacedPod({ name: 'zone-other', namespace });
      return pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.message);
    }, 'the scheduler to refuse the other zone');
    expect(refusal.message).toMatch(/1 node\(s\) didn't match PersistentVolume's node affinity/);
    expect((await core.readNamespacedPod({ name: 'zone-other', namespace })).spec?.nodeName).toBeUndefined();

    await core.createNamespacedPod({ namespace, body: replacement('zone-same', zonePools['1']) });
    const same = await eventually(async () => {
      const pod = await core.readNamespacedPod({ name: 'zone-same', namespace });
      return pod.status?.phase === 'Running' ? pod : undefined;
    }, 'the pod in the same zone to run');
    expect(same.spec?.nodeName).toBe(first.spec!.nodeName);
  });

  it("checkJob reports the loss even after the pod GC deleted the Job's pod and its replacement waits on an empty pool", { timeout: 240_000 }, async () => {
    const batch = adminKubeConfig.makeApiClient(BatchV1Api);
    const { checkJob: check } = createWorkerActivities(config);
    const checkJob = (name: string): Promise<JobProgress> => new MockActivityEnvironment().run(check, namespace, name);
    await containerService.agentPools.beginCreateOrUpdateAndWait(
      resourceGroup,
      clusterName,
      jobPool,
      { vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', count: 1, nodeTaints: ['sku=gpu:NoSchedule'], scaleSetPriority: 'Spot', scaleSetEvictionPolicy: 'Delete' },
      fast,
    );
    const { spec } = trainerPod('job-trainer', jobPool);
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: { metadata: { name: 'job-trainer-results' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    await batch.createNamespacedJob({
      namespace,
      body: { metadata: { name: 'lost-train' }, spec: { backoffLimit: 1, template: { metadata: { labels: { 'aks-finetune.io/role': 'trainer' } }, spec } } },
    });
    await eventually(async () => ((await checkJob('lost-train')).state === 'running' ? true : undefined), 'the Job to run');
    await emulator.evictSpotNodes(jobPool, 1);
    // The pod GC fails and deletes the pod; the Job controller's replacement cannot be scheduled.
    await eventually(async () => {
      const { items } = await core.listNamespacedPod({ namespace, labelSelector: 'job-name=lost-train' });
      return items.length > 0 && items.every((p) => !p.spec?.nodeName) ? true : undefined;
    }, 'only an unscheduled replacement pod to be left', 150_000);
    const progress = await eventually(async () => {
      const p = await checkJob('lost-train');
      return p.nodeLost ? p : undefined;
    }, 'checkJob to see the loss');
    expect(progress.nodeLost).toMatch(new RegExp(`^pool ${jobPool} has no node left \\(pod lost-train-\\w+ cannot be scheduled\\)$`));
    await batch.deleteNamespacedJob({ name: 'lost-train', namespace, propagationPolicy: 'Background' });
  });
});
