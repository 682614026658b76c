// The local stack's worker identity gets exactly the RBAC of deploy/: the objects that
// `kubectl kustomize deploy` renders are applied unchanged, and the stack's worker token
// authenticates as the very ServiceAccount they bind (see stackUsers.worker), so a permission
// the worker lacks on AKS fails here too.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorizationV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { applyManifests } from '../prepare-cluster.js';
import { projectRoot, type StackConfig, stackUsers } from './config.js';

export const identityKinds = ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];

/** The base in deploy/, rendered by kubectl's built-in kustomize. */
export const renderDeploy = (config: StackConfig): string =>
  execFileSync(join(config.toolsBin, 'kubectl'), ['kustomize', join(projectRoot, 'deploy')], { encoding: 'utf8' });

/** Applies deploy/'s namespace, ServiceAccounts, roles and bindings (admin kubeConfig); returns what it applied. */
export const applyWorkerRbac = (config: StackConfig, kubeConfig: KubeConfig): Promise<string[]> =>
  applyManifests(kubeConfig, renderDeploy(config), (o) => identityKinds.includes(o.kind ?? ''));

/**
 * The operator's step that lets runs use another namespace (docs/operations.md, "Deploying to AKS"):
 * deploy/run-namespace there. Returns once the API server's authorizer grants the worker a write
 * there: it sees a new RoleBinding only when its informer has caught up, and a run started before
 * would get a 403 (Kubernetes' own e2e tests wait the same way, WaitForNamedAuthorizationUpdate).
 */
export async function allowRunsIn(kubeConfig: KubeConfig, namespace: string): Promise<string[]> {
  const applied = await applyManifests(kubeConfig, readFileSync(join(projectRoot, 'deploy/run-namespace/run-namespace.yaml'), 'utf8'), (o: KubernetesObject) => {
    o.metadata = { ...o.metadata, namespace };
    return true;
  });
  const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  const review = { spec: { user: stackUsers.worker.name, groups: [...stackUsers.worker.groups], resourceAttributes: { namespace, verb: 'create', group: 'batch', resource: 'jobs' } } };
  for (let waitedMs = 0; !(await authorization.createSubjectAccessReview({ body: review })).status?.allowed; waitedMs += 100) {
    if (waitedMs > 30_000) throw new Error(`the worker is still not allowed to create Jobs in ${namespace} 30 s after its RoleBinding was applied`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return applied;
}
