// `aks-finetune doctor`: is a real cluster ready for runs? Each check reads (never writes) what a
// run will need, and says what is missing with the fix. It reads the worker's own settings (the
// variables of docs/operations.md, "Configuration") and the Kubernetes identity of KUBECONFIG; the
// worker's RBAC is checked for the worker's ServiceAccount with SubjectAccessReviews, so run it as
// a cluster operator (a kubeconfig that may create SubjectAccessReviews and list DaemonSets).
import { AppsV1Api, AuthorizationV1Api, CoreV1Api, type V1ResourceAttributes } from '@kubernetes/client-node';
import type { ManagedCluster } from '@azure/arm-containerservice';
import { quotaShortfall } from '../domain/gpu-candidates.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { projectSearchAttributes } from '../workflows/search-attributes.js';
import { createAzureCredential, createContainerServiceClient, createKubeConfig, createRegistryContentClient } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { readAttemptQuota } from './gpu-quota.js';
import { connectClient, loadTemporalSettings } from './temporal-connection.js';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** What to do, when not ok. */
  fix?: string;
}

export interface DoctorOptions {
  /** Namespaces runs will use (default: aks-finetune). */
  namespaces?: string[];
  /** VM sizes runs will ask for (default: Standard_NC24ads_A100_v4). */
  vmSizes?: string[];
  /** The worker's ServiceAccount, as deploy/ creates it. */
  workerServiceAccount?: { namespace: string; name: string };
  env?: NodeJS.ProcessEnv;
}

/** Network policy engines AKS offers (learn.microsoft.com/azure/aks/use-network-policies); none enforces nothing. */
const networkPolicyEngines = ['azure', 'calico', 'cilium'];

/** What the worker does in a run namespace, one call of each kind (deploy/worker-rbac.yaml, aks-finetune-worker-runs). */
const runNamespaceCalls: Omit<V1ResourceAttributes, 'namespace'>[] = [
  { verb: 'create', group: 'batch', resource: 'jobs' },
  { verb: 'create', resource: 'configmaps' },
  { verb: 'create', resource: 'persistentvolumeclaims' },
  { verb: 'get', resource: 'pods', subresource: 'log' },
  { verb: 'create', group: 'networking.k8s.io', resource: 'networkpolicies' },
];
/** What it does cluster-wide (aks-finetune-worker). */
const clusterCalls: V1ResourceAttributes[] = [
  { verb: 'list', resource: 'nodes' },
  { verb: 'list', resource: 'pods' },
  { verb: 'watch', group: 'batch', resource: 'jobs' },
];

const describeCall = (a: V1ResourceAttributes) => `${a.verb} ${a.group ? `${a.group}/` : ''}${a.resource}${a.subresource ? `/${a.subresource}` : ''}`;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!;

export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const env = options.env ?? process.env;
  const namespaces = options.namespaces?.length ? options.namespaces : ['aks-finetune'];
  const vmSizes = options.vmSizes?.length ? options.vmSizes : ['Standard_NC24ads_A100_v4'];
  const worker = options.workerServiceAccount ?? { namespace: 'aks-finetune', name: 'aks-finetune-worker' };
  const config = loadWorkerConfig(env);
  const { resourceGroup, clusterName } = config.azure;
  const aks = `az aks update -g ${resourceGroup} -n ${clusterName}`;
  const kubeConfig = createKubeConfig(config);
  const credential = createAzureCredential(config.azure.staticToken);
  const checks: DoctorCheck[] = [];
  /** Runs one check; an error it throws is that check's failure, with `fix`. */
  const check = async (name: string, fix: string | undefined, run: () => Promise<Omit<DoctorCheck, 'name'>>) => {
    try {
      checks.push({ name, ...(await run()) });
    } catch (err) {
      checks.push({ name, ok: false, detail: message(err), fix });
    }
  };

  await check('Temporal', 'check TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and their TLS or API key (docs/operations.md, "Connecting to Temporal")', async () => {
    const settings = loadTemporalSettings(env);
    const client = await connectClient(settings);
    try {
      const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace: settings.namespace });
      const missing = projectSearchAttributes.map((a) => a.name).filter((name) => !(name in (customAttributes ?? {})));
      return missing.length === 0
        ? { ok: true, detail: `${settings.connection.address}, namespace ${settings.namespace}: all ${projectSearchAttributes.length} search attributes registered` }
        : {
            ok: false,
            detail: `${settings.connection.address}, namespace ${settings.namespace}: search attributes missing: ${missing.join(', ')}`,
            fix: 'npm run setup:temporal with the same TEMPORAL_* settings (on Temporal Cloud: add them in the namespace settings, docs/operations.md, "Against real AKS")',
          };
    } finally {
      await client.connection.close();
    }
  });

  let cluster: ManagedCluster | undefined;
  await check('AKS cluster', `check AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AKS_CLUSTER_NAME, and that the worker's Azure identity may read and write the cluster's agent pools (e.g. "Azure Kubernetes Service Contributor Role")`, async () => {
    cluster = await createContainerServiceClient(config, credential).managedClusters.get(resourceGroup, clusterName);
    return { ok: true, detail: `${clusterName} in ${cluster.location}, Kubernetes ${cluster.currentKubernetesVersion ?? cluster.kubernetesVersion ?? '?'}` };
  });
  if (cluster) {
    const mc = cluster;
    await check('workload identity', undefined, async () => {
      const enabled = mc.securityProfile?.workloadIdentity?.enabled === true && mc.oidcIssuerProfile?.enabled === true;
      return enabled
        ? { ok: true, detail: 'workload identity and the OIDC issuer are enabled' }
        : {
            ok: false,
            detail: `workload identity ${mc.securityProfile?.workloadIdentity?.enabled ? 'enabled' : 'disabled'}, OIDC issuer ${mc.oidcIssuerProfile?.enabled ? 'enabled' : 'disabled'}: the worker, pusher and routers get no Azure identity`,
            fix: `${aks} --enable-oidc-issuer --enable-workload-identity (learn.microsoft.com/azure/aks/workload-identity-deploy-cluster)`,
          };
    });
    await check('network policy', undefined, async () => {
      const engine = mc.networkProfile?.networkPolicy ?? 'none';
      return networkPolicyEngines.includes(engine)
        ? { ok: true, detail: `engine ${engine}: the tuning pods' egress policy is enforced` }
        : {
            ok: false,
            detail: `no network policy engine (networkPolicy ${engine}): the tuning pods' egress policy would not be enforced`,
            fix: `${aks} --network-policy azure (or calico; with Azure CNI powered by Cilium, --network-dataplane cilium) (learn.microsoft.com/azure/aks/use-network-policies)`,
          };
    });
  }

  const apps = kubeConfig.makeApiClient(AppsV1Api);
  await check('NVIDIA device plugin', 'run doctor with a kubeconfig that may list DaemonSets, or run npm run prepare-cluster (it is idempotent)', async () => {
    const { items } = await apps.listDaemonSetForAllNamespaces();
    const plugin = items.find((d) => d.spec?.template.spec?.containers.some((c) => /nvidia\/k8s-device-plugin|nvidia-device-plugin/.test(c.image ?? '')));
    return plugin
      ? { ok: true, detail: `DaemonSet ${plugin.metadata?.namespace}/${plugin.metadata?.name}: GPUs become allocatable on new GPU nodes` }
      : {
          ok: false,
          detail: 'no NVIDIA device plugin DaemonSet: a GPU node would never offer nvidia.com/gpu, and every run would wait for GPUs until its bound',
          fix: "KUBECONFIG=<cluster admin> npm run prepare-cluster (deploy/nvidia-device-plugin.yaml); or AKS's managed GPU mode, gpuProfile.nvidia.managementMode Managed (AKS API 2026-08-01 and later)",
        };
  });

  const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  const user = `system:serviceaccount:${worker.namespace}:${worker.name}`;
  const groups = ['system:serviceaccounts', `system:serviceaccounts:${worker.namespace}`];
  const workerMay = async (resourceAttributes: V1ResourceAttributes) =>
    (await authorization.createSubjectAccessReview({ body: { spec: { user, groups, resourceAttributes } } })).status?.allowed === true;
  await check("the worker's RBAC", 'run doctor with a kubeconfig that may create SubjectAccessReviews (a cluster operator)', async () => {
    const denied = [];
    for (const call of clusterCalls) if (!(await workerMay(call))) denied.push(describeCall(call));
    return denied.length === 0
      ? { ok: true, detail: `${user} may make its cluster-wide calls` }
      : { ok: false, detail: `${user} may not: ${denied.join(', ')}`, fix: 'kubectl apply -k deploy/ (deploy/worker-rbac.yaml binds aks-finetune-worker cluster-wide)' };
  });

  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (const namespace of namespaces) {
    await check(`run namespace ${namespace}`, 'run doctor with a kubeconfig that may read namespaces and create SubjectAccessReviews', async () => {
      const exists = await core.readNamespace({ name: namespace }).then(() => true, (err: { code?: number }) => (err.code === 404 ? false : Promise.reject(err)));
      if (!exists) return { ok: false, detail: `namespace ${namespace} does not exist`, fix: `kubectl create namespace ${namespace}, then apply deploy/run-namespace in it (docs/operations.md, "Deploying to AKS")` };
      const denied = [];
      for (const call of runNamespaceCalls) if (!(await workerMay({ ...call, namespace }))) denied.push(describeCall(call));
      return denied.length === 0
        ? { ok: true, detail: `the worker may run tuning Jobs there` }
        : { ok: false, detail: `the worker may not ${denied.join(', ')} there`, fix: `apply deploy/run-namespace in ${namespace} (its RoleBinding to aks-finetune-worker-runs; docs/operations.md, "Deploying to AKS")` };
    });
  }

  await check('registry', `give the worker's Azure identity AcrPull on the registry and the pusher's AcrPush (az role assignment create --role AcrPush --assignee <identity> --scope <registry id>), or check REGISTRY_ENDPOINT`, async () => {
    // A manifest that does not exist: the registry answers 404 once the login is accepted, 401 or 403 before.
    const probe = await createRegistryContentClient(config.registry.endpoint, 'aks-finetune/doctor', credential)
      .getManifest('doctor')
      .then(() => 200, (err: { statusCode?: number; message?: string }) => (err.statusCode === 404 ? 404 : Promise.reject(err)));
    return { ok: true, detail: `${config.registry.endpoint} accepts the worker's login (HTTP ${probe} for a manifest that is not there)` };
  });

  for (const vmSize of vmSizes) {
    await check(`GPU quota for ${vmSize}`, 'give the worker\'s identity Reader on the subscription (Microsoft.Compute/locations/usages/read)', async () => {
      const size = findVmSize(vmSize);
      if (!size?.gpu) return { ok: false, detail: `${vmSize} is not a GPU size the product knows`, fix: 'name a GPU size, e.g. Standard_NC24ads_A100_v4' };
      const quota = (await readAttemptQuota([{ vmSize: size.name, spot: false, afterMinutes: 0, source: 'request' }], env)).get(undefined);
      if (!quota || quota.unreadable) throw new Error(quota?.unreadable ?? 'quota not read');
      const shortfall = quotaShortfall(size, false, 1, quota.usages);
      return shortfall
        ? { ok: false, detail: `${quota.location}: ${shortfall.message}`, fix: `request a quota increase for ${shortfall.quota} in ${quota.location} (Azure portal, Quotas), or name other sizes in gpu.candidates` }
        : { ok: true, detail: `${quota.location}: room for a node of ${size.vCpus} vCPUs` };
    });
  }
  return checks;
}
