// `npm run stack` / `stack:stop` / `stack:status`: the local stack on loopback.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { prepareCluster } from '../prepare-cluster.js';
import { ensureCertificates } from './certs.js';
import { type Component, type StackContext, stages } from './components.js';
import { type ClusterTarget, clusterResourceId } from '../../domain/cluster-targets.js';
import { loadStackConfig, portVariable, type StackConfig, stackUsers } from './config.js';
import { applyWorkerRbac } from './worker-rbac.js';
import { assertPortFree, runningPid, StackError, startProcess, stopProcess, waitUntilReady } from './processes.js';

/**
 * kube-apiserver's token file: the stack's own components as cluster-admin (system:masters), and
 * the worker (and the tests and scripts acting as it) as deploy/'s worker ServiceAccount, with
 * deploy/'s RBAC only (worker-rbac.ts); kept apart so the audit log shows the worker's calls alone.
 * Tokens are kept across restarts; each user's line is rewritten when its groups change.
 */
function ensureTokens(config: StackConfig): { adminToken: string; workerToken: string; tokenFile: string; changed: boolean } {
  const tokenFile = join(config.certsDir, 'tokens.csv');
  const previous = existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim().split('\n') : [];
  const tokenOf = (user: string) => previous.find((l) => l.split(',')[1] === user)?.split(',')[0] ?? randomBytes(24).toString('hex');
  const users = [stackUsers.admin, stackUsers.worker];
  const lines = users.map((u) => `${tokenOf(u.name)},${u.name},${u.name},"${u.groups.join(',')}"`);
  const changed = lines.join('\n') !== previous.join('\n');
  if (changed) writeFileSync(tokenFile, lines.join('\n') + '\n', { mode: 0o600 });
  const token = (line: string) => line.split(',')[0]!;
  return { adminToken: token(lines[0]!), workerToken: token(lines[1]!), tokenFile, changed };
}

function writeKubeconfig(ctx: StackContext, file: string, user: string, token: string): void {
  const { config, certs } = ctx;
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'local-aks',
        cluster: { server: `https://${config.host}:${config.ports.apiserver}`, 'certificate-authority': certs.caCert },
      },
    ],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'local-aks', context: { cluster: 'local-aks', user } }],
    'current-context': 'local-aks',
  };
  writeFileSync(file, stringify(kubeconfig), { mode: 0o600 });
}

/** Components a second cluster (start --cluster-only) shares with the first stack instead of starting its own. */
const sharedComponents = ['temporal', 'registry'];

export interface StackOptions {
  /** A second cluster beside a running stack: its own control plane, kwok, AKS emulator and GPU simulator. */
  clusterOnly?: boolean;
}

/** The stack's cluster as a worker's cluster target (an AKS_CLUSTERS_FILE entry; docs/pipeline.md, "More than one cluster"). */
export function stackClusterTarget(config: StackConfig): ClusterTarget {
  return {
    name: config.azure.clusterName,
    resourceId: clusterResourceId(config.azure),
    region: config.azure.location,
    kubeconfig: config.workerKubeconfig,
    armEndpoint: `https://${config.host}:${config.ports.arm}`,
  };
}

/** What the worker, scripts and tests read to reach the stack (see docs/operations.md, "Configuration"). */
export function stackEnvironment(ctx: StackContext, options: StackOptions = {}): Record<string, string> {
  const { config, certs } = ctx;
  const shared = {
    TEMPORAL_ADDRESS: `${config.host}:${config.ports.temporal}`,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_UI_URL: `http://${config.host}:${config.ports.temporalUi}`,
    REGISTRY_ENDPOINT: `https://${config.host}:${config.ports.registry}`,
    // The worker runs beside the registry here, so a loopback output registry is reachable.
    ALLOW_LOOPBACK_REGISTRY: 'true',
  };
  return {
    ...(options.clusterOnly ? {} : shared),
    KUBECONFIG: config.workerKubeconfig,
    AZURE_ARM_ENDPOINT: `https://${config.host}:${config.ports.arm}`,
    // Inference Services answer through the gpu-simulator here; in a cluster, at their DNS name.
    INFERENCE_URL_TEMPLATE: `http://${config.host}:${config.ports.gpuSimulator}/services/{namespace}/{service}`,
    INFERENCE_POD_URL_TEMPLATE: `http://${config.host}:${config.ports.gpuSimulator}/pods/{namespace}/{pod}`,
    GPU_SIMULATOR_URL: `http://${config.host}:${config.ports.gpuSimulator}`,
    AZURE_SUBSCRIPTION_ID: config.azure.subscriptionId,
    AZURE_RESOURCE_GROUP: config.azure.resourceGroup,
    AKS_CLUSTER_NAME: config.azure.clusterName,
    // The emulator accepts any bearer token; a fixed one stands in for DefaultAzureCredential.
    AZURE_STATIC_TOKEN: 'local-stack',
    NODE_EXTRA_CA_CERTS: certs.caCert,
  };
}

async function prepare(config: StackConfig): Promise<StackContext> {
  mkdirSync(config.stateDir, { recursive: true });
  const certs = await ensureCertificates(config.certsDir);
  const { workerToken, changed, ...tokens } = ensureTokens(config);
  // kube-apiserver reads the token file at start-up only.
  if (changed) await stopProcess(config, 'kube-apiserver');
  const ctx = { config, certs, ...tokens };
  writeKubeconfig(ctx, config.kubeconfig, stackUsers.admin.name, tokens.adminToken);
  writeKubeconfig(ctx, config.workerKubeconfig, stackUsers.worker.name, workerToken);
  writeFileSync(
    config.auditPolicy,
    stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      // One line per request, at its end: a long-running one (a log read, a watch) would also log ResponseStarted.
      omitStages: ['RequestReceived', 'ResponseStarted'],
      rules: [{ level: 'Metadata', users: [stackUsers.worker.name] }, { level: 'None' }],
    }),
  );
  return ctx;
}

async function startComponent(ctx: StackContext, component: Component): Promise<'started' | 'reused'> {
  const { config } = ctx;
  if (runningPid(config, component.name) !== undefined && (await component.ready(ctx).catch(() => false))) {
    return 'reused';
  }
  await stopProcess(config, component.name); // a stale or unhealthy copy of ours
  for (const port of component.ports) {
    await assertPortFree(config.host, config.ports[port], component.name, portVariable(port));
  }
  startProcess(config, component.process(ctx));
  await waitUntilReady(config, component.name, () => component.ready(ctx), component.startupTimeoutMs);
  return 'started';
}

export interface RunningStack {
  env: Record<string, string>;
  /** Components this call started (the rest were already running and were reused). */
  started: string[];
}

export async function startStack(config = loadStackConfig(), log: (line: string) => void = console.log, options: StackOptions = {}): Promise<RunningStack> {
  const ctx = await prepare(config);
  const began = Date.now();
  const started: string[] = [];
  const toStart = stages.map((stage) => stage.filter((c) => !options.clusterOnly || !sharedComponents.includes(c.name))).filter((stage) => stage.length > 0);
  for (const stage of toStart) {
    await Promise.all(
      stage.map(async (component) => {
        const t0 = Date.now();
        const outcome = await startComponent(ctx, component);
        if (outcome === 'started') started.push(component.name);
        await component.afterReady?.(ctx);
        log(`  ${component.name.padEnd(24)} ${outcome} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
      }),
    );
  }
  // The cluster preparation a real AKS cluster gets (docs/operations.md, "Against real AKS"): the device plugin.
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(config.kubeconfig);
  log(`  prepare-cluster          ${(await prepareCluster(kubeConfig)).join(', ')}`);
  log(`  worker RBAC (deploy/)    ${(await applyWorkerRbac(config, kubeConfig)).join(', ')}`);
  const env = stackEnvironment(ctx, options);
  writeFileSync(config.envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  if (options.clusterOnly) {
    writeFileSync(join(config.stateDir, 'cluster-target.yaml'), stringify({ clusters: [stackClusterTarget(config)] }));
    log(`  cluster target           ${join(config.stateDir, 'cluster-target.yaml')} (AKS_CLUSTERS_FILE for the first stack's worker)`);
  }
  log(`Local stack ready in ${((Date.now() - began) / 1000).toFixed(1)}s (logs: ${config.logsDir})`);
  return { env, started };
}

export async function stopStack(config = loadStackConfig(), log: (line: string) => void = console.log): Promise<void> {
  for (const component of stages.flat().reverse()) {
    if (await stopProcess(config, component.name)) log(`  stopped ${component.name}`);
  }
}

function printUsage(env: Record<string, string>, config: StackConfig): void {
  console.log(`
  Temporal gRPC      ${env.TEMPORAL_ADDRESS}  (TEMPORAL_ADDRESS)
  Temporal Web UI    ${env.TEMPORAL_UI_URL}
  Kubernetes         kubeconfig ${env.KUBECONFIG}
                     e.g. ${join(config.toolsBin, 'kubectl')} --kubeconfig ${env.KUBECONFIG} get nodes
                     (the worker's identity; its API calls are audited in ${join(config.logsDir, 'kube-audit.log')})
  OCI registry       ${env.REGISTRY_ENDPOINT}  (TLS, CA ${env.NODE_EXTRA_CA_CERTS})
  AKS emulator (ARM) ${env.AZURE_ARM_ENDPOINT}  cluster ${clusterResourceId(config.azure)}

  All of the above is in ${config.envFile}; load it with
    set -a; . ${config.envFile}; set +a
  or run a command with it: bash scripts/with-stack-env.sh <command>
  Stop with: npm run stack:stop`);
}

async function main(): Promise<void> {
  const config = loadStackConfig();
  const command = process.argv[2] ?? 'start';
  switch (command) {
    case 'start': {
      if (process.argv.includes('--cluster-only')) {
        console.log(`Starting a second cluster, ${config.azure.clusterName} in ${config.azure.location}, on loopback...`);
        await startStack(config, console.log, { clusterOnly: true });
        return;
      }
      console.log('Starting the local stack on loopback...');
      printUsage((await startStack(config)).env, config);
      return;
    }
    case 'stop':
      await stopStack(config);
      return;
    case 'status':
      for (const component of stages.flat()) {
        const pid = runningPid(config, component.name);
        console.log(`  ${component.name.padEnd(24)} ${pid ? `running (pid ${pid})` : 'stopped'}`);
      }
      return;
    default:
      throw new StackError(`unknown command "${command}": use start, stop or status`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof StackError ? `stack: ${err.message}` : err);
    process.exit(1);
  });
}
