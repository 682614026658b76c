// Where the local stack lives and which loopback ports it uses. Every port can be moved with
// an environment variable so the stack can sit beside other services on a developer machine.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface StackConfig {
  /** The STACK_* and TOOLS_DIR variables it was loaded from: the stack's own processes get them, so they see the same stack. */
  variables: Record<string, string>;
  host: string;
  stateDir: string;
  toolsBin: string;
  logsDir: string;
  pidsDir: string;
  certsDir: string;
  envFile: string;
  /** Kubeconfig of the stack's own components (controllers, kwok, emulator, simulator). */
  kubeconfig: string;
  /** Kubeconfig of the worker, tests and scripts: a separate identity, audited. */
  workerKubeconfig: string;
  auditPolicy: string;
  auditLog: string;
  ports: {
    temporal: number;
    temporalUi: number;
    temporalHttp: number;
    etcd: number;
    etcdPeer: number;
    apiserver: number;
    controllerManager: number;
    scheduler: number;
    kwok: number;
    registry: number;
    arm: number;
    gpuSimulator: number;
  };
  azure: { subscriptionId: string; resourceGroup: string; clusterName: string; location: string };
}

const defaultPorts: StackConfig['ports'] = {
  temporal: 7233,
  temporalUi: 8233,
  temporalHttp: 7243,
  etcd: 12379,
  etcdPeer: 12380,
  apiserver: 16443,
  controllerManager: 16257,
  scheduler: 16259,
  kwok: 16080,
  registry: 15000,
  arm: 18443,
  gpuSimulator: 18080,
};

/** Environment variable that overrides each port, e.g. STACK_APISERVER_PORT. */
export function portVariable(component: keyof StackConfig['ports']): string {
  return `STACK_${component.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}_PORT`;
}

/** STACK_PORT_OFFSET shifts every port, so a second stack (the chaos run's, a second cluster) sits beside the first. */
function portOffset(env: NodeJS.ProcessEnv): number {
  const raw = env.STACK_PORT_OFFSET;
  if (raw === undefined || raw === '') return 0;
  const offset = Number(raw);
  if (!Number.isInteger(offset) || offset < 0 || offset > 10_000) throw new Error(`STACK_PORT_OFFSET=${raw} must be a whole number from 0 to 10000`);
  return offset;
}

function readPort(env: NodeJS.ProcessEnv, component: keyof StackConfig['ports']): number {
  const name = portVariable(component);
  const raw = env[name];
  const port = (raw === undefined || raw === '' ? defaultPorts[component] : Number(raw)) + portOffset(env);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${name}=${raw} is not a TCP port (1-65535)`);
  }
  return port;
}

/**
 * The identities in kube-apiserver's token file. The worker's is the ServiceAccount that deploy/
 * binds (a token-file user may carry any name), in that ServiceAccount's groups.
 */
export const stackUsers = {
  admin: { name: 'stack-admin', groups: ['system:masters'] },
  worker: { name: 'system:serviceaccount:aks-finetune:aks-finetune-worker', groups: ['system:serviceaccounts', 'system:serviceaccounts:aks-finetune'] },
} as const;

export function loadStackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const stateDir = resolve(projectRoot, env.STACK_DIR ?? '.stack');
  const ports = Object.fromEntries(
    (Object.keys(defaultPorts) as (keyof StackConfig['ports'])[]).map((c) => [c, readPort(env, c)]),
  ) as StackConfig['ports'];
  const variables = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => (e[0].startsWith('STACK_') || e[0] === 'TOOLS_DIR') && e[1] !== undefined));
  return {
    variables,
    host: '127.0.0.1',
    stateDir,
    toolsBin: resolve(projectRoot, env.TOOLS_DIR ?? '.tools', 'bin'),
    logsDir: resolve(stateDir, 'logs'),
    pidsDir: resolve(stateDir, 'pids'),
    // A second cluster shares the first stack's CA (STACK_CERTS_DIR): one NODE_EXTRA_CA_CERTS trusts both.
    certsDir: env.STACK_CERTS_DIR ? resolve(projectRoot, env.STACK_CERTS_DIR) : resolve(stateDir, 'certs'),
    envFile: resolve(stateDir, 'env'),
    kubeconfig: resolve(stateDir, 'kubeconfig'),
    workerKubeconfig: resolve(stateDir, 'worker.kubeconfig'),
    auditPolicy: resolve(stateDir, 'audit-policy.yaml'),
    auditLog: resolve(stateDir, 'logs', 'kube-audit.log'),
    ports,
    azure: {
      subscriptionId: '00000000-0000-0000-0000-000000000000',
      resourceGroup: 'local-rg',
      clusterName: env.STACK_CLUSTER_NAME || 'local-aks',
      location: env.STACK_LOCATION || 'eastus',
    },
  };
}
