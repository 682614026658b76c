// The stack's components: how each is started, where it listens, and how we know it is ready.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Connection } from '@temporalio/client';
import { applyManifests } from '../prepare-cluster.js';
import { registerSearchAttributes } from '../setup-temporal.js';
import { projectSearchAttributes } from '../../workflows/search-attributes.js';
import type { StackCertificates } from './certs.js';
import { projectRoot, type StackConfig } from './config.js';
import { httpGet, httpOk, tcpOpen } from './probe.js';
import type { ProcessSpec } from './processes.js';

export interface StackContext {
  config: StackConfig;
  certs: StackCertificates;
  adminToken: string;
  tokenFile: string;
}

export interface Component {
  name: string;
  /** Ports it binds, checked for conflicts before it starts. */
  ports: (keyof StackConfig['ports'])[];
  process(ctx: StackContext): ProcessSpec;
  ready(ctx: StackContext): Promise<boolean>;
  /** What the next stage needs from this component once it is ready (started or reused). */
  afterReady?(ctx: StackContext): Promise<void>;
  startupTimeoutMs: number;
}

const bin = (config: StackConfig, tool: string) => join(config.toolsBin, tool);
const dataDir = (config: StackConfig, name: string) => {
  const dir = join(config.stateDir, 'data', name);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const etcd: Component = {
  name: 'etcd',
  ports: ['etcd', 'etcdPeer'],
  startupTimeoutMs: 30_000,
  process: ({ config }) => {
    const client = `http://${config.host}:${config.ports.etcd}`;
    const peer = `http://${config.host}:${config.ports.etcdPeer}`;
    return {
      name: 'etcd',
      command: '/usr/bin/etcd',
      args: [
        '--name=stack',
        `--data-dir=${dataDir(config, 'etcd')}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=stack=${peer}`,
        '--log-level=warn',
      ],
    };
  },
  ready: async ({ config }) =>
    (await httpGet(`http://${config.host}:${config.ports.etcd}/health`)).body.includes('"health":"true"'),
};

const kubeApiserver: Component = {
  name: 'kube-apiserver',
  ports: ['apiserver'],
  startupTimeoutMs: 90_000,
  process: ({ config, certs, tokenFile }) => ({
    name: 'kube-apiserver',
    command: bin(config, 'kube-apiserver'),
    args: [
      `--etcd-servers=http://${config.host}:${config.ports.etcd}`,
      `--bind-address=${config.host}`,
      `--advertise-address=${config.host}`,
      `--secure-port=${config.ports.apiserver}`,
      `--tls-cert-file=${certs.serverCert}`,
      `--tls-private-key-file=${certs.serverKey}`,
      `--client-ca-file=${certs.caCert}`,
      `--token-auth-file=${tokenFile}`,
      // Controller-manager and scheduler read this CA from kube-system; without it they log errors.
      `--requestheader-client-ca-file=${certs.caCert}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${certs.serviceAccountKey}`,
      `--service-account-signing-key-file=${certs.serviceAccountKey}`,
      '--authorization-mode=RBAC',
      // Reach a node's kubelet API (pods/log) at its InternalIP: simulated nodes' names resolve nowhere.
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true',
      // The kubernetes Service would point at 127.0.0.1, which endpoint validation rejects.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      // The worker's API calls, for the benchmark's calls-per-run figure.
      `--audit-policy-file=${config.auditPolicy}`,
      `--audit-log-path=${config.auditLog}`,
      '--audit-log-format=json',
      '--audit-log-maxsize=100',
      '--audit-log-maxbackup=1',
    ],
  }),
  ready: async ({ config, certs, adminToken }) =>
    httpOk(`https://${config.host}:${config.ports.apiserver}/readyz`, { caFile: certs.caCert, token: adminToken }),
  // kwok watches its Logs resource from its start, so the resource exists before kwok starts.
  afterReady: async ({ config }) => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(config.kubeconfig);
    await applyManifests(kubeConfig, readFileSync(join(projectRoot, 'scripts/stack/kwok-logs-crd.yaml'), 'utf8'));
  },
};

/** Flags controller-manager and scheduler share: how they reach the API server and where they serve. */
const controlPlaneClientArgs = (config: StackConfig, port: number) => [
  `--kubeconfig=${config.kubeconfig}`,
  `--authentication-kubeconfig=${config.kubeconfig}`,
  `--authorization-kubeconfig=${config.kubeconfig}`,
  `--bind-address=${config.host}`,
  `--secure-port=${port}`,
  '--leader-elect=false',
  '--profiling=false',
];

const kubeControllerManager: Component = {
  name: 'kube-controller-manager',
  ports: ['controllerManager'],
  startupTimeoutMs: 60_000,
  process: ({ config, certs }) => ({
    name: 'kube-controller-manager',
    command: bin(config, 'kube-controller-manager'),
    args: [
      ...controlPlaneClientArgs(config, config.ports.controllerManager),
      `--service-account-private-key-file=${certs.serviceAccountKey}`,
      `--root-ca-file=${certs.caCert}`,
    ],
  }),
  ready: ({ config }) => tcpOpen(config.host, config.ports.controllerManager),
};

const kubeScheduler: Component = {
  name: 'kube-scheduler',
  ports: ['scheduler'],
  startupTimeoutMs: 60_000,
  process: ({ config }) => ({
    name: 'kube-scheduler',
    command: bin(config, 'kube-scheduler'),
    args: controlPlaneClientArgs(config, config.ports.scheduler),
  }),
  ready: ({ config }) => tcpOpen(config.host, config.ports.scheduler),
};

/** The annotation that hands a Node to kwok; the AKS emulator puts it on every node it creates. */
export const kwokNodeAnnotation = { key: 'kwok.x-k8s.io/node', value: 'fake' };

const kwok: Component = {
  name: 'kwok',
  ports: ['kwok'],
  startupTimeoutMs: 30_000,
  process: ({ config, certs }) => ({
    name: 'kwok',
    command: bin(config, 'kwok'),
    args: [
      `--kubeconfig=${config.kubeconfig}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${kwokNodeAnnotation.key}=${kwokNodeAnnotation.value}`,
      // kwok's server is the simulated nodes' kubelet API (HTTPS, as a kubelet's): the nodes it
      // initializes get this address and port, so the API server's pods/log reaches it.
      `--server-address=${config.host}:${config.ports.kwok}`,
      `--node-ip=${config.host}`,
      `--node-port=${config.ports.kwok}`,
      `--tls-cert-file=${certs.serverCert}`,
      `--tls-private-key-file=${certs.serverKey}`,
      // Container logs: the gpu-simulator writes a simulated trainer's log and names the file in a Logs object.
      '--enable-crds=Logs',
      // Pod stages: kwok's defaults, except that the gpu-simulator completes GPU work.
      `--config=${join(projectRoot, 'scripts/stack/kwok-stages.yaml')}`,
    ],
  }),
  ready: ({ config, certs }) => httpOk(`https://${config.host}:${config.ports.kwok}/healthz`, { caFile: certs.caCert }),
};

const registry: Component = {
  name: 'registry',
  ports: ['registry'],
  startupTimeoutMs: 30_000,
  process: ({ config, certs }) => {
    const file = join(dataDir(config, 'registry'), 'config.yml');
    // relativeurls: @azure/container-registry expects a relative upload Location header.
    writeFileSync(
      file,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${dataDir(config, 'registry/storage')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: ${config.host}:${config.ports.registry}`,
        '  relativeurls: true',
        '  tls:',
        `    certificate: ${certs.serverCert}`,
        `    key: ${certs.serverKey}`,
        '',
      ].join('\n'),
    );
    return { name: 'registry', command: '/usr/bin/docker-registry', args: ['serve', file] };
  },
  ready: ({ config, certs }) => httpOk(`https://${config.host}:${config.ports.registry}/v2/`, { caFile: certs.caCert }),
};

const aksEmulator: Component = {
  name: 'aks-emulator',
  ports: ['arm'],
  startupTimeoutMs: 30_000,
  process: ({ config, certs }) => ({
    name: 'aks-emulator',
    command: process.execPath,
    args: ['--import', 'tsx', join(projectRoot, 'scripts/stack/aks-emulator/main.ts')],
    cwd: projectRoot,
    env: { ...config.variables, NODE_EXTRA_CA_CERTS: certs.caCert },
  }),
  ready: ({ config, certs }) => httpOk(`https://${config.host}:${config.ports.arm}/_emulator/health`, { caFile: certs.caCert }),
};

/** SIMULATION of the GPU containers' effects (see gpu-simulator/main.ts). */
const gpuSimulator: Component = {
  name: 'gpu-simulator',
  ports: ['gpuSimulator'],
  startupTimeoutMs: 30_000,
  process: ({ config, certs }) => ({
    name: 'gpu-simulator',
    command: process.execPath,
    args: ['--import', 'tsx', join(projectRoot, 'scripts/stack/gpu-simulator/main.ts')],
    cwd: projectRoot,
    env: { ...config.variables, NODE_EXTRA_CA_CERTS: certs.caCert },
  }),
  ready: ({ config }) => httpOk(`http://${config.host}:${config.ports.gpuSimulator}/_simulator/health`),
};

const cliType: Record<string, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

const temporal: Component = {
  name: 'temporal',
  ports: ['temporal', 'temporalUi', 'temporalHttp'],
  startupTimeoutMs: 60_000,
  process: ({ config }) => ({
    name: 'temporal',
    command: bin(config, 'temporal'),
    args: [
      'server',
      'start-dev',
      `--ip=${config.host}`,
      `--port=${config.ports.temporal}`,
      `--ui-port=${config.ports.temporalUi}`,
      `--http-port=${config.ports.temporalHttp}`,
      // A file, not memory, so runs survive a restart of the stack.
      `--db-filename=${join(dataDir(config, 'temporal'), 'temporal.db')}`,
      '--namespace=default',
      ...projectSearchAttributes.map((key) => `--search-attribute=${key.name}=${cliType[key.type]}`),
      '--log-level=warn',
    ],
  }),
  ready: async ({ config }) =>
    (await tcpOpen(config.host, config.ports.temporal)) &&
    httpOk(`http://${config.host}:${config.ports.temporalUi}/`),
  // --search-attribute registers attributes only in a new database: a stack made before an
  // attribute was added gets it here (e.g. Endpoint, then workflows setting it fail their task).
  afterReady: async ({ config }) => {
    const connection = await Connection.connect({ address: `${config.host}:${config.ports.temporal}` });
    await registerSearchAttributes(connection, 'default').finally(() => connection.close());
  },
};

/** Start order, in stages: a stage starts once every component of the previous one is ready. */
export const stages: Component[][] = [
  [etcd, registry, temporal],
  [kubeApiserver],
  [kubeControllerManager, kubeScheduler, kwok, aksEmulator, gpuSimulator],
];
