// Least privilege, tested: the stack's worker identity holds deploy/'s RBAC and nothing more, so
// what the worker may not do on AKS it may not do here either.
import { ApiException, AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1PodSpec, type V1ResourceAttributes } from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadStackConfig, projectRoot } from '../scripts/stack/config.js';
import { renderDeploy } from '../scripts/stack/worker-rbac.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { endpointObjects } from '../activities/kubernetes/endpoint-objects.js';
import { gpuCheckJob } from '../activities/kubernetes/gpu-check-job.js';
import { inferenceObjects } from '../activities/kubernetes/inference.js';
import { defaultImages, tuningJob } from '../activities/kubernetes/tuning-job.js';
import { parseEndpointSpec } from '../domain/endpoint.js';
import { findModelPreset } from '../domain/models.js';
import { createWorkerActivities } from '../workers/worker.js';
import { adminKubeConfig, config, createRunNamespace, kubeConfig, unique } from './support.js';

const asWorker = kubeConfig.makeApiClient(CoreV1Api);
const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
const rbac = adminKubeConfig.makeApiClient(RbacAuthorizationV1Api);
const adminCore = adminKubeConfig.makeApiClient(CoreV1Api);

/** Whether the API server lets the worker do this (SelfSubjectAccessReview, with the worker's own token). */
const workerMay = async (attributes: V1ResourceAttributes): Promise<boolean> =>
  (await authorization.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: attributes } } })).status?.allowed ?? false;

const status = (call: Promise<unknown>) => call.then(() => 200, (err: unknown) => (err instanceof ApiException ? err.code : Promise.reject(err)));

describe("the worker's identity on the local stack", () => {
  it.each<[string, V1ResourceAttributes]>([
    ['do anything at all (it is no cluster-admin)', { verb: '*', group: '*', resource: '*' }],
    // It reads a run's push Secret by name (get), and can list none: not even in a run namespace.
    ['list Secrets in its own namespace', { verb: 'list', resource: 'secrets', namespace: 'aks-finetune' }],
    ['watch Secrets in its own namespace', { verb: 'watch', resource: 'secrets', namespace: 'aks-finetune' }],
    ['change Secrets in its own namespace', { verb: 'update', resource: 'secrets', namespace: 'aks-finetune' }],
    ['list Secrets in any namespace', { verb: 'list', resource: 'secrets' }],
    ['read Secrets in kube-system', { verb: 'get', resource: 'secrets', namespace: 'kube-system' }],
    ['create ConfigMaps in kube-system', { verb: 'create', resource: 'configmaps', namespace: 'kube-system' }],
    ['create Jobs in kube-system', { verb: 'create', group: 'batch', resource: 'jobs', namespace: 'kube-system' }],
    ['delete Deployments in kube-system', { verb: 'delete', group: 'apps', resource: 'deployments', namespace: 'kube-system' }],
    ['create Jobs in a namespace nobody let it into', { verb: 'create', group: 'batch', resource: 'jobs', namespace: 'default' }],
    ['create pods directly', { verb: 'create', resource: 'pods', namespace: 'aks-finetune' }],
    ['exec into pods', { verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'aks-finetune' }],
    ['delete nodes', { verb: 'delete', resource: 'nodes' }],
    ['patch nodes', { verb: 'patch', resource: 'nodes' }],
    ['create namespaces', { verb: 'create', resource: 'namespaces' }],
    ['delete namespaces', { verb: 'delete', resource: 'namespaces' }],
    ['create ClusterRoles', { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' }],
    ['bind ClusterRoles', { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' }],
    ['create RoleBindings in its own namespace', { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespace: 'aks-finetune' }],
    ['impersonate users', { verb: 'impersonate', resource: 'users' }],
    ['change the device plugin', { verb: 'update', group: 'apps', resource: 'daemonsets', namespace: 'gpu-resources' }],
  ])('may not %s', async (_what, attributes) => {
    expect(await workerMay(attributes)).toBe(false);
  });

  it('is refused by the API server itself: reading a Secret, writing in kube-system', async () => {
    expect(await status(asWorker.readNamespacedSecret({ name: 'anything', namespace: 'kube-system' }))).toBe(403);
    expect(await status(asWorker.listSecretForAllNamespaces())).toBe(403);
    expect(await status(asWorker.createNamespacedConfigMap({ namespace: 'kube-system', body: { metadata: { name: `rbac-${unique()}` } } }))).toBe(403);
    expect(await status(asWorker.deleteNode({ name: 'any-node' }))).toBe(403);
  });

  it('may do what runs need: in aks-finetune, and cluster-wide reads for the sweep and the watcher', async () => {
    for (const attributes of [
      { verb: 'create', group: 'batch', resource: 'jobs', namespace: 'aks-finetune' },
      { verb: 'get', resource: 'pods', subresource: 'log', namespace: 'aks-finetune' },
      { verb: 'update', resource: 'configmaps', namespace: 'aks-finetune' },
      { verb: 'create', group: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'aks-finetune' },
      { verb: 'watch', group: 'batch', resource: 'jobs' },
      { verb: 'watch', resource: 'pods' },
      { verb: 'watch', resource: 'nodes' },
      { verb: 'list', resource: 'persistentvolumeclaims' },
      { verb: 'list', resource: 'nodes' },
    ]) {
      expect(await workerMay(attributes), JSON.stringify(attributes)).toBe(true);
    }
  });

  it('may not create a namespace: a run naming one that does not exist fails at once, naming the fix', async () => {
    const namespace = `absent-${unique()}`;
    const { ensureNamespace } = createWorkerActivities(config);
    const error = await new MockActivityEnvironment().run(ensureNamespace, namespace).catch((e: unknown) => e);
    expect(error).toMatchObject({ type: 'InvalidRequest', nonRetryable: true });
    expect((error as Error).message).toContain(`kubectl create namespace ${namespace} && kubectl apply -n ${namespace} -f deploy/run-namespace/run-namespace.yaml`);
  });

  it('is let into a new namespace by the operator step deploy/run-namespace, and only into it', async () => {
    const namespace = `rbac-${unique()}`;
    const createJobs = { verb: 'create', group: 'batch', resource: 'jobs', namespace };
    expect(await workerMay(createJobs)).toBe(false);
    await createRunNamespace(namespace);
    try {
      expect(await workerMay(createJobs)).toBe(true);
      // A run's push Secret is read by name there, nothing more (output.pushSecret).
      expect(await workerMay({ verb: 'get', resource: 'secrets', namespace })).toBe(true);
      expect(await workerMay({ verb: 'list', resource: 'secrets', namespace })).toBe(false);
    } finally {
      await adminKubeConfig.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace });
    }
  });
});

describe('the pods a run creates', () => {
  // Server-side dry run: the API server's ServiceAccount admission adds the API token volume (kube-api-access-*) to
  // every pod that does not opt out, so this is what a pod really gets.
  const admitted = async (spec: V1PodSpec) =>
    (await adminCore.createNamespacedPod({ namespace: 'aks-finetune', body: { metadata: { name: `dry-${unique()}` }, spec }, dryRun: 'All' })).spec!;
  const mountsApiToken = (spec: V1PodSpec) => (spec.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-'));
  const owner = { workflowId: 'wf', runId: 'r1' };
  const model = findModelPreset('phi-3-mini-4k-instruct')!;
  const adapter = `${new URL(config.registry.endpoint).host}/adapters/a@sha256:${'a'.repeat(64)}`;

  it('carry no Kubernetes API token, but for the endpoint router, which reads its desired state', async () => {
    const trainer = tuningJob({ name: 'r1-train', owner, model, gpus: 1, pool: 'ft1', taints: [], dataset: { urls: ['https://example.com/d.jsonl'] }, configMap: 'c', resultsClaim: 'r', backoffLimit: 1, activeDeadlineSeconds: 60 }, defaultImages);
    const gpuCheck = gpuCheckJob({ name: 'r1-check', owner, pool: 'ft1', gpus: 1, taints: [], image: 'nvidia/cuda:12.4.1-base-ubuntu22.04' });
    const inference = inferenceObjects({ name: 'r1-serve', owner, model, adapter: { name: 'a', image: adapter }, pool: 'ft1', taints: [], gpus: 1, replicas: 1 }, defaultImages).deployment;
    for (const [what, spec] of [['trainer', trainer.spec!.template.spec!], ['GPU check', gpuCheck.spec!.template.spec!], ['inference', inference.spec!.template.spec!]] as const) {
      expect(mountsApiToken(await admitted(spec)), what).toBe(false);
    }
    const endpoint = endpointObjects(
      { endpoint: parseEndpointSpec({ name: 'bot', baseModel: model.name, vmSize: 'Standard_NC24ads_A100_v4' }), namespace: 'aks-finetune', owner: { workflowId: 'ep' }, pool: 'ep1', taints: [], gpus: 1, replicas: 1, desired: { generation: 1, adapters: [], aliases: {} }, workerImage: 'w' },
      defaultImages,
    ).deployment;
    expect(mountsApiToken(await admitted(endpoint.spec!.template.spec!))).toBe(true);
  });
});

describe('deploy/ (kustomize base)', () => {
  const rendered = parseAllDocuments(renderDeploy(loadStackConfig())).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> }; [k: string]: unknown });
  const find = (kind: string, name: string) => rendered.find((o) => o.kind === kind && o.metadata.name === name);

  it('renders with kubectl kustomize: namespace, identities, roles, worker, set-up Job, device plugin', () => {
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ClusterRole/aks-finetune-worker',
      'ClusterRole/aks-finetune-worker-runs',
      'ClusterRoleBinding/aks-finetune-worker',
      'ConfigMap/aks-finetune-worker',
      'DaemonSet/nvidia-device-plugin-daemonset',
      'Deployment/aks-finetune-worker',
      'Job/aks-finetune-setup-temporal',
      'Namespace/aks-finetune',
      'Namespace/gpu-resources',
      'Role/aks-finetune-adapter-router',
      'RoleBinding/aks-finetune-adapter-router',
      'RoleBinding/aks-finetune-worker-runs',
      'ServiceAccount/aks-finetune-adapter-router',
      'ServiceAccount/aks-finetune-pusher',
      'ServiceAccount/aks-finetune-worker',
    ]);
    for (const account of ['aks-finetune-worker', 'aks-finetune-pusher', 'aks-finetune-adapter-router']) {
      expect(find('ServiceAccount', account)?.metadata.annotations).toHaveProperty(['azure.workload.identity/client-id']);
    }
    expect(find('Deployment', 'aks-finetune-worker')).toMatchObject({
      spec: { template: { metadata: { labels: { 'azure.workload.identity/use': 'true' } }, spec: { serviceAccountName: 'aks-finetune-worker' } } },
    });
  });

  it('is accepted by a real API server (server-side dry run), and probes the port the image serves metrics on', () => {
    const stack = loadStackConfig();
    const out = execFileSync(join(stack.toolsBin, 'kubectl'), ['--kubeconfig', stack.kubeconfig, 'apply', '--dry-run=server', '-k', join(projectRoot, 'deploy')], { encoding: 'utf8' });
    expect(out.trim().split('\n')).toHaveLength(rendered.length);
    const metricsPort = /^ENV METRICS_ADDRESS=[^:]+:(\d+)$/m.exec(readFileSync(join(projectRoot, 'Dockerfile'), 'utf8'))?.[1];
    expect(find('Deployment', 'aks-finetune-worker')).toMatchObject({
      spec: {
        template: {
          spec: {
            containers: [
              {
                ports: [{ name: 'metrics', containerPort: Number(metricsPort) }],
                readinessProbe: { httpGet: { path: '/metrics', port: 'metrics' } },
                livenessProbe: { httpGet: { path: '/metrics', port: 'metrics' } },
                securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
              },
            ],
            securityContext: { runAsNonRoot: true },
          },
        },
      },
    });
  });

  it('is what the stack applied to its worker: the same roles and bindings, no drift', async () => {
    for (const name of ['aks-finetune-worker', 'aks-finetune-worker-runs']) {
      expect((await rbac.readClusterRole({ name })).rules, name).toEqual(find('ClusterRole', name)?.rules);
    }
    const clusterBinding = await rbac.readClusterRoleBinding({ name: 'aks-finetune-worker' });
    expect({ roleRef: clusterBinding.roleRef, subjects: clusterBinding.subjects }).toEqual({
      roleRef: find('ClusterRoleBinding', 'aks-finetune-worker')?.roleRef,
      subjects: find('ClusterRoleBinding', 'aks-finetune-worker')?.subjects,
    });
    const binding = await rbac.readNamespacedRoleBinding({ name: 'aks-finetune-worker-runs', namespace: 'aks-finetune' });
    expect({ roleRef: binding.roleRef, subjects: binding.subjects }).toEqual({
      roleRef: find('RoleBinding', 'aks-finetune-worker-runs')?.roleRef,
      subjects: find('RoleBinding', 'aks-finetune-worker-runs')?.subjects,
    });
    const self = await kubeConfig.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(self.status?.userInfo?.username).toBe('system:serviceaccount:aks-finetune:aks-finetune-worker');
    expect(self.status?.userInfo?.groups).not.toContain('system:masters');
  });
});
