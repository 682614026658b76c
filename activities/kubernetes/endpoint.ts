// An endpoint's Kubernetes side: its Deployment, Service and desired-state ConfigMap brought to
// what the endpoint workflow wants (created, or adopted and updated: every call is idempotent),
// the wait until every replica's adapter-router has applied a generation, and the replicas'
// request counters the workflow reads to decide that the endpoint is idle.
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { type DesiredState, type RouterStatus, desiredStateConfigMapName, desiredStateKey, routerPaths } from '../../domain/adapter-router.js';
import { type EndpointSpec, requestCount } from '../../domain/endpoint.js';
import { failureTypes } from '../../domain/failure-types.js';
import { createOrAdoptOwned, ensureNamespaceExists } from './api-errors.js';
import { endpointObjects, podTemplateHashAnnotation } from './endpoint-objects.js';
import { roleLabel, roles, runLabels } from './labels.js';
import type { ContainerImages } from './tuning-job.js';

export interface EndpointKubeDeps {
  kubeConfig: KubeConfig;
  images: ContainerImages;
  workerImage: string;
  /** URL of one inference pod's router, with {namespace}, {pod} and {podIP} placeholders. */
  inferencePodUrlTemplate: string;
  pollIntervalMs: number;
}

export interface EndpointTarget {
  spec: EndpointSpec;
  namespace: string;
  /** The endpoint workflow's id alone: its objects outlive each run (continue-as-new). */
  owner: { workflowId: string };
}

export interface ApplyEndpointParams extends EndpointTarget {
  pool: string;
  taints: string[];
  gpus: number;
  replicas: number;
  desired: DesiredState;
}

/** A replica as the endpoint's traffic check sees it. */
export interface ReplicaTraffic {
  pod: string;
  uid: string;
  /** vLLM's vllm:request_success_total plus the router's adapter_router_requests_total, all label sets summed; -1 when the replica did not answer. */
  requests: number;
}

const serving = (p: V1Pod) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp;

export function createEndpointKubeActivities({ kubeConfig, images, workerImage, inferencePodUrlTemplate, pollIntervalMs }: EndpointKubeDeps) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);

  const podUrl = (namespace: string, pod: V1Pod) =>
    inferencePodUrlTemplate.replace('{namespace}', namespace).replace('{pod}', pod.metadata?.name ?? '').replace('{podIP}', pod.status?.podIP ?? '');

  /** The endpoint's pods that run (the Deployment's selector: run label, role, app). */
  async function replicaPods(t: Pick<EndpointTarget, 'namespace' | 'owner'> & { name: string }): Promise<V1Pod[]> {
    const selector = { ...runLabels(t.owner), [roleLabel]: roles.inference, app: t.name };
    const labelSelector = Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',');
    return (await core.listNamespacedPod({ namespace: t.namespace, labelSelector })).items.filter(serving);
  }

  async function getText(url: string): Promise<string> {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 300)}`);
    return text;
  }

  return {
    /**
     * Creates the endpoint's Deployment, Service and ConfigMap, or adopts the ones its workflow id
     * owns, then brings the ConfigMap to the desired state and the Deployment to the replica count
     * and, when this worker builds a different pod template (an upgrade), to that template.
     */
    async applyEndpoint(p: ApplyEndpointParams): Promise<void> {
      const { namespace, owner } = p;
      const name = p.spec.name;
      await ensureNamespaceExists(core, namespace);
      const { deployment, service, configMap } = endpointObjects({ endpoint: p.spec, namespace, owner, pool: p.pool, taints: p.taints, gpus: p.gpus, replicas: p.replicas, desired: p.desired, workerImage }, images);
      const cmName = desiredStateConfigMapName(name);
      const cm = await createOrAdoptOwned(`ConfigMap ${namespace}/${cmName}`, owner, () => core.createNamespacedConfigMap({ namespace, body: configMap }), () => core.readNamespacedConfigMap({ name: cmName, namespace }));
      if (cm.adopted && cm.object.data?.[desiredStateKey] !== configMap.data![desiredStateKey]) {
        await core.replaceNamespacedConfigMap({ name: cmName, namespace, body: { ...configMap, metadata: { ...configMap.metadata, resourceVersion: cm.object.metadata?.resourceVersion } } });
      }
      const d = await createOrAdoptOwned(`Deployment ${namespace}/${name}`, owner, () => apps.createNamespacedDeployment({ namespace, body: deployment }), () => apps.readNamespacedDeployment({ name, namespace }));
      const templateHash = deployment.metadata!.annotations![podTemplateHashAnnotation];
      if (d.adopted && d.object.metadata?.annotations?.[podTemplateHashAnnotation] !== templateHash) {
        // A new pod template (worker or vLLM image, flags): the Deployment rolls it out one replica at a time.
        Context.current().log.info('endpoint pod template changed; replacing the Deployment', { deployment: `${namespace}/${name}`, templateHash });
        await apps.replaceNamespacedDeployment({ name, namespace, body: { ...deployment, metadata: { ...deployment.metadata, resourceVersion: d.object.metadata?.resourceVersion } } });
      } else if (d.adopted && d.object.spec?.replicas !== p.replicas) {
        await apps.replaceNamespacedDeploymentScale({ name, namespace, body: { metadata: { name, namespace }, spec: { replicas: p.replicas } } });
      }
      await createOrAdoptOwned(`Service ${namespace}/${name}`, owner, () => core.createNamespacedService({ namespace, body: service }), () => core.readNamespacedService({ name, namespace }));
    },

    /**
     * Returns once `replicas` pods run and every running pod's router reports appliedGeneration ≥
     * generation, with the pods (name and uid). A router that reports an error loading an adapter
     * of this generation fails the wait at once (non-retryable AdapterLoadFailed) with its message.
     */
    async waitForEndpointConvergence(p: { namespace: string; name: string; owner: { workflowId: string }; generation: number; replicas: number }): Promise<{ pod: string; uid: string }[]> {
      const ctx = Context.current();
      for (;;) {
        const pods = await replicaPods(p);
        const statuses = await Promise.all(
          pods.map((pod) =>
            getText(`${podUrl(p.namespace, pod)}${routerPaths.status}`).then(
              (text) => JSON.parse(text) as RouterStatus,
              () => undefined, // a router still starting: not converged yet
            ),
          ),
        );
        const failed = statuses.flatMap((s, i) => (s && s.seenGeneration >= p.generation ? s.errors.map((e) => `${pods[i]!.metadata?.name}: ${e.versionName}: ${e.message}`) : []));
        if (failed.length > 0) throw ApplicationFailure.nonRetryable(`adapters failed to load on endpoint ${p.name}: ${failed.join('; ')}`, failureTypes.adapterLoadFailed);
        const applied = statuses.filter((s) => s && s.appliedGeneration >= p.generation).length;
        ctx.heartbeat({ step: 'waiting for replicas to apply the desired state', generation: p.generation, running: pods.length, applied, wanted: p.replicas });
        if (pods.length >= p.replicas && applied === pods.length) return pods.map((pod) => ({ pod: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' }));
        await ctx.sleep(pollIntervalMs);
      }
    },

    /**
     * Each running replica's request count, from its one /metrics scrape (the router re-exports
     * vLLM's lines). A replica that does not answer (starting, restarting) reads -1: a change the
     * workflow counts as activity, never a failure that would stop the endpoint.
     */
    async readEndpointTraffic(p: { namespace: string; name: string; owner: { workflowId: string } }): Promise<ReplicaTraffic[]> {
      const pods = await replicaPods(p);
      return Promise.all(
        pods.map(async (pod) => ({
          pod: pod.metadata?.name ?? '',
          uid: pod.metadata?.uid ?? '',
          requests: await getText(`${podUrl(p.namespace, pod)}${routerPaths.metrics}`).then(requestCount, () => -1),
        })),
      );
    },
  };
}
