// One watch per kind for the whole worker process: the Jobs and pods of every run and the nodes
// of the product's pools, kept in memory by client-node's informers (list, then watch). A check
// of a run's Job then reads its Job, pods and node from memory, and makes one API call (the
// trainer's log) instead of four, so Kubernetes calls per check stay the same however many runs
// are in flight, and a pending Job costs none.
//
// The cache answers only what it can vouch for: it is used while its watch is up and has been
// relisted within the last resync period, and an object it does not hold (not seen yet, or not
// one it watches) is read from the API. A check the jobFinished signal prompted reads the API
// too (JobReads `fresh`), as that signal may come from another worker's watch, ahead of this one's.
import { BatchV1Api, CoreV1Api, type KubeConfig, type KubernetesObject, makeInformer, type V1Job, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { gpuNodeLabels } from '../../domain/pool-tags.js';
import { runIdLabel } from './labels.js';
import { agentPoolLabel } from './placement.js';

/** What is read of the cluster's objects: from memory (ClusterObjects) where it can be, else from the API. */
export interface ClusterObjects {
  job(namespace: string, name: string): V1Job | undefined;
  /** The Job's pods, or undefined when the pod cache cannot vouch for them. */
  jobPods(namespace: string, job: string): readonly V1Pod[] | undefined;
  node(name: string): V1Node | undefined;
  /** The pool's nodes, or undefined when the node cache cannot vouch for them. */
  poolNodes(pool: string): readonly V1Node[] | undefined;
  /** Called with every Job the cache lists, adds, updates or (`deleted`) deletes, from its first list on. */
  onJob(handler: (job: V1Job, deleted: boolean) => void): void;
  stop(): void;
}

/** How often each kind is listed afresh: a watch that went quiet without failing cannot keep a stale cache for longer. */
const resyncMs = 5 * 60_000;
/** A failed list or watch is tried again after this long; meanwhile reads go to the API. */
const retryMs = 2_000;

interface Informed<T extends KubernetesObject> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[] | undefined;
  stop(): void;
}

/**
 * One kind, kept by a ListWatch that is replaced by a fresh one every resyncMs (its list is the
 * resync) and after an error. `onChange` sees every object each list and watch event brings.
 */
function informed<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
  labelSelector: string,
  log: (line: string) => void,
  onChange?: (object: T, deleted: boolean) => void,
): Informed<T> {
  let current: ReturnType<typeof makeInformer<T>> | undefined;
  let syncedAt = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(() => void renew(), ms);
  };
  const renew = async () => {
    const next = makeInformer<T>(kubeConfig, path, list, labelSelector);
    if (onChange) {
      next.on('add', (object) => onChange(object, false));
      next.on('update', (object) => onChange(object, false));
      next.on('delete', (object) => onChange(object, true));
    }
    // An error ends a ListWatch for good (client-node restarts it only after a 410): this one is
    // replaced, and until then the kind is read from the API.
    let failed: unknown;
    next.on('error', (err: unknown) => {
      failed = err;
      if (next !== current) return;
      syncedAt = 0;
      log(`object cache: the watch of ${path} failed (${String(err)}); reading from the API until it is back`);
      schedule(retryMs);
    });
    await next.start().catch((err: unknown) => (failed = err));
    if (failed !== undefined) {
      log(`object cache: listing ${path} failed (${String(failed)}); trying again`);
      void next.stop();
      schedule(retryMs);
      return;
    }
    if (stopped) return void next.stop();
    const previous = current;
    current = next;
    syncedAt = Date.now();
    void previous?.stop();
    schedule(resyncMs);
  };
  void renew();
  const usable = () => current !== undefined && syncedAt > 0 && Date.now() - syncedAt < resyncMs + 60_000;
  return {
    get: (namespace, name) => (usable() ? current!.get(name, namespace) : undefined),
    list: (namespace) => (usable() ? current!.list(namespace) : undefined),
    stop() {
      stopped = true;
      clearTimeout(timer);
      void current?.stop();
    },
  };
}

export function startClusterObjects(kubeConfig: KubeConfig, log: (line: string) => void = () => undefined): ClusterObjects {
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const jobHandlers: ((job: V1Job, deleted: boolean) => void)[] = [];
  const nodeSelector = Object.entries(gpuNodeLabels).map(([k, v]) => `${k}=${v}`).join(',');
  const jobs = informed<V1Job>(kubeConfig, '/apis/batch/v1/jobs', () => batch.listJobForAllNamespaces({ labelSelector: runIdLabel }), runIdLabel, log, (job, deleted) => {
    for (const handler of jobHandlers) handler(job, deleted);
  });
  const pods = informed<V1Pod>(kubeConfig, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: runIdLabel }), runIdLabel, log);
  const nodes = informed<V1Node>(kubeConfig, '/api/v1/nodes', () => core.listNode({ labelSelector: nodeSelector }), nodeSelector, log);
  return {
    job: (namespace, name) => jobs.get(namespace, name),
    jobPods: (namespace, job) => pods.list(namespace)?.filter((p) => p.metadata?.labels?.['job-name'] === job),
    node: (name) => nodes.get(undefined, name),
    poolNodes: (pool) => nodes.list()?.filter((n) => n.metadata?.labels?.[agentPoolLabel] === pool),
    onJob: (handler) => void jobHandlers.push(handler),
    stop() {
      for (const kind of [jobs, pods, nodes]) kind.stop();
    },
  };
}
