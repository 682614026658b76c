// The worker's object cache (activities/kubernetes/object-cache.ts) on the local stack's API
// server, under the worker's own RBAC: a Job check reads its Job, pods and pool node from
// memory, and asks the API only about what the cache does not hold.
import { BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiReads, cachedReads, type JobReads, readJobProgress } from '../activities/kubernetes/jobs.js';
import { runIdLabel } from '../activities/kubernetes/labels.js';
import { type ClusterObjects, startClusterObjects } from '../activities/kubernetes/object-cache.js';
import { gpuNodeLabels } from '../domain/pool-tags.js';
import { adminKubeConfig, clusterName, containerService, createRunNamespace, eventually, kubeConfig, resourceGroup, unique } from './support.js';

const namespace = `cache-${unique()}`;
const pool = `oc${unique(6)}`;
const batch = adminKubeConfig.makeApiClient(BatchV1Api);
let objects: ClusterObjects;

/** The API's reads, counting each call by kind. */
function countedApiReads(): { reads: JobReads; calls: Record<string, number> } {
  const api = apiReads(kubeConfig.makeApiClient(BatchV1Api), kubeConfig.makeApiClient(CoreV1Api));
  const calls: Record<string, number> = {};
  const counted = <K extends keyof JobReads>(kind: K): JobReads[K] =>
    ((...args: Parameters<JobReads[K]>) => {
      calls[kind] = (calls[kind] ?? 0) + 1;
      return (api[kind] as (...a: Parameters<JobReads[K]>) => ReturnType<JobReads[K]>)(...args);
    }) as JobReads[K];
  return { reads: { job: counted('job'), pods: counted('pods'), nodeExists: counted('nodeExists'), poolHasNodes: counted('poolHasNodes') }, calls };
}

beforeAll(async () => {
  await createRunNamespace(namespace);
  objects = startClusterObjects(kubeConfig);
});

afterAll(async () => {
  objects?.stop();
  await containerService.agentPools.beginDeleteAndWait(resourceGroup, clusterName, pool, { updateIntervalInMs: 200 }).catch(() => undefined);
});

describe('the object cache', () => {
  it('answers a Job check from memory, as the API would', async () => {
    const seen: { name: string; deleted: boolean }[] = [];
    objects.onJob((job, deleted) => seen.push({ name: job.metadata!.name!, deleted }));
    const name = `cached-${unique()}`;
    const labels = { [runIdLabel]: `cache-test-${unique()}` };
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name, labels },
        spec: { backoffLimit: 0, template: { metadata: { labels }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox:test' }] } } },
      },
    });
    await eventually(async () => objects.jobPods(namespace, name)?.length || undefined, 'the Job and its pod in the cache');

    const { reads, calls } = countedApiReads();
    const fromCache = await readJobProgress(cachedReads(objects, reads), namespace, name);
    expect(calls).toEqual({});
    const fromApi = await readJobProgress(reads, namespace, name);
    expect(fromCache.progress).toEqual(fromApi.progress);
    expect(seen).toContainEqual({ name, deleted: false });

    await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
    await eventually(async () => seen.some((s) => s.name === name && s.deleted) || undefined, 'the deletion handed to onJob');
  });

  it("reads a GPU pool's nodes from memory, and asks the API about a node it does not hold", async () => {
    await containerService.agentPools.beginCreateOrUpdateAndWait(
      resourceGroup,
      clusterName,
      pool,
      { vmSize: 'Standard_NC24ads_A100_v4', mode: 'User', count: 1, nodeTaints: ['sku=gpu:NoSchedule'], nodeLabels: { ...gpuNodeLabels } },
      { updateIntervalInMs: 200 },
    );
    const [node] = await eventually(async () => objects.poolNodes(pool)?.length ? objects.poolNodes(pool) : undefined, "the pool's node in the cache");
    const { reads, calls } = countedApiReads();
    const cached = cachedReads(objects, reads);
    expect(await cached.nodeExists(node!.metadata!.name!)).toBe(true);
    expect(await cached.poolHasNodes(pool)).toBe(true);
    expect(calls).toEqual({});
    // Not held is not gone: the API decides.
    expect(await cached.nodeExists(`no-such-node-${unique()}`)).toBe(false);
    expect(await cached.poolHasNodes(`nopool${unique(4)}`)).toBe(false);
    expect(calls).toEqual({ nodeExists: 1, poolHasNodes: 1 });
  });
});
