// Worker configuration from environment variables (documented in docs/operations.md, "Configuration").
// The same variables point the worker at the local stack (.stack/env) or at real Azure.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { LogLevel } from '@temporalio/worker';
import { parse } from 'yaml';
import { type ClusterTarget, clusterTargetsFileSchema, parseClusterResourceId } from '../domain/cluster-targets.js';
import { checkInput } from '../domain/schema.js';
import { routerPort } from '../domain/adapter-router.js';
import { loadTemporalSettings, type TemporalSettings } from '../client/temporal-connection.js';
import { type LogFormat, logFormats, logLevels, type TelemetryConfig } from './telemetry.js';

export interface WorkerConfig {
  /** Temporal's environment configuration profile (TOML file and TEMPORAL_* variables), and the task queue. */
  temporal: TemporalSettings;
  azure: {
    /** ARM endpoint; the public cloud's unless pointed at the local emulator. */
    armEndpoint: string;
    subscriptionId: string;
    resourceGroup: string;
    clusterName: string;
    /** A fixed bearer token for the local AKS emulator only; real Azure uses DefaultAzureCredential. */
    staticToken?: string;
  };
  /** Path of a kubeconfig; in-cluster service account when absent. */
  kubeconfig?: string;
  /** Other AKS clusters runs may land in (AKS_CLUSTERS_FILE), each served on its own task queue. */
  clusters: ClusterTarget[];
  /** allowLoopback: output registries on loopback addresses are accepted (the local stack, where worker and registry share one). */
  registry: { endpoint: string; allowLoopback: boolean };
  /** Image of this worker: the pusher Job runs its push-adapter command. */
  workerImage: string;
  /** URL of an inference Service's API, with {namespace} and {service} placeholders. */
  inferenceUrlTemplate: string;
  /** URL of one inference pod's router, with {namespace}, {pod} and {podIP} placeholders. */
  inferencePodUrlTemplate: string;
  /** Registry of KAITO's trainer and weights images. */
  kaitoRegistry: string;
  polling: { armMs: number; kubeMs: number };
  /** Path of workflow code bundled at build time (`npm run build:workflows`); bundled at start-up when absent. */
  workflowBundle?: string;
  telemetry: TelemetryConfig;
}

/** Every variable the worker reads, with what it means: docs/operations.md's configuration table. */
export const workerVariables: Record<string, string> = {
  TEMPORAL_CONFIG_FILE: "Temporal's environment configuration file (TOML profiles; default ~/.config/temporalio/temporal.toml, none is fine)",
  TEMPORAL_PROFILE: 'the profile of that file to use (default "default"; a profile that is not there is an error)',
  TEMPORAL_ADDRESS: "Temporal frontend host:port; overrides the profile's address (default 127.0.0.1:7233)",
  TEMPORAL_NAMESPACE: 'Temporal namespace; overrides the profile\'s (default "default"; on Temporal Cloud <namespace>.<account id>)',
  TEMPORAL_API_KEY: 'API key sent with every call (Temporal Cloud); turns TLS on',
  TEMPORAL_TLS: 'true or false: TLS on or off (on when an API key or client certificate is given)',
  TEMPORAL_TLS_CLIENT_CERT_PATH: 'client certificate for mTLS (PEM file; or TEMPORAL_TLS_CLIENT_CERT_DATA, the PEM itself)',
  TEMPORAL_TLS_CLIENT_KEY_PATH: 'its private key (PEM file; or TEMPORAL_TLS_CLIENT_KEY_DATA)',
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: "CA that signs the server's certificate, when not a public one (or TEMPORAL_TLS_SERVER_CA_CERT_DATA)",
  TEMPORAL_TLS_SERVER_NAME: "name to check the server's certificate against, when it differs from the address's host",
  TEMPORAL_TASK_QUEUE: 'task queue the worker polls and runs are started on (default "fine-tuning"; not part of a profile)',
  AZURE_ARM_ENDPOINT: 'Azure Resource Manager endpoint (default https://management.azure.com)',
  AZURE_SUBSCRIPTION_ID: 'subscription of the AKS cluster (required)',
  AZURE_RESOURCE_GROUP: "the AKS cluster's resource group (required)",
  AKS_CLUSTER_NAME: 'the AKS cluster GPU node pools are added to (required)',
  AZURE_STATIC_TOKEN: 'local AKS emulator only: a fixed bearer token instead of DefaultAzureCredential',
  KUBECONFIG: "kubeconfig of the cluster; the pod's service account when unset (in-cluster)",
  AKS_CLUSTERS_FILE: 'YAML or JSON file of further AKS clusters runs may land in ({clusters: [{name, resourceId, region, kubeconfig, armEndpoint?}]}, docs/pipeline.md, "More than one cluster"); none when unset',
  REGISTRY_ENDPOINT: 'https:// endpoint of the registry adapters are pushed to (required)',
  ALLOW_LOOPBACK_REGISTRY: 'true accepts output registries on loopback addresses (the local stack sets it); otherwise such runs fail at once as invalid',
  WORKER_IMAGE: 'image of this worker (built from Dockerfile), run by the adapter pusher Job',
  INFERENCE_URL_TEMPLATE: 'URL of an inference Service with {namespace} and {service} placeholders (default in-cluster DNS)',
  INFERENCE_POD_URL_TEMPLATE: "URL of one inference pod's adapter-router with {namespace}, {pod} and {podIP} placeholders (default http://{podIP}:8000): the endpoint workflow reads each replica's status and counters there",
  KAITO_REGISTRY: "registry of KAITO's trainer and model weight images (default mcr.microsoft.com/aks/kaito)",
  ARM_POLL_INTERVAL_MS: 'how often ARM long-running operations are polled (default 5000)',
  KUBE_POLL_INTERVAL_MS: 'how often activities that wait on the cluster look again (default 2000)',
  WORKFLOW_BUNDLE: 'path of the workflow bundle written at build time by npm run build:workflows (the image sets it); unset, workflows are bundled at start-up',
  LOG_FORMAT: 'json (default: one JSON object a line, for log collectors) or pretty (readable, for development)',
  LOG_LEVEL: 'TRACE, DEBUG, INFO (default), WARN or ERROR',
  METRICS_ADDRESS: 'host:port of the Prometheus endpoint (GET /metrics), e.g. 0.0.0.0:9464; none when unset (the image sets 0.0.0.0:9464)',
  AZURE_TENANT_ID: 'read by DefaultAzureCredential (service principal or workload identity)',
  AZURE_CLIENT_ID: 'read by DefaultAzureCredential (service principal, workload or managed identity)',
  AZURE_CLIENT_SECRET: 'read by DefaultAzureCredential (service principal)',
  AZURE_FEDERATED_TOKEN_FILE: 'read by DefaultAzureCredential (workload identity; set by AKS)',
};

export class ConfigError extends Error {}

function required(env: NodeJS.ProcessEnv, name: string, hint: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(`${name} is not set: ${hint}`);
  return value;
}

function milliseconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 10) throw new ConfigError(`${name}=${raw} must be a whole number of milliseconds >= 10`);
  return value;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: T[], fallback: T): T {
  const raw = env[name];
  if (!raw) return fallback;
  const value = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
  if (!value) throw new ConfigError(`${name}=${raw} must be one of ${allowed.join(', ')}`);
  return value;
}

function hostPort(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(raw)) throw new ConfigError(`${name}=${raw} must be host:port, e.g. 0.0.0.0:9464`);
  return raw;
}

/**
 * The cluster targets of AKS_CLUSTERS_FILE, validated (every problem at once): a name that
 * repeats or is the home cluster's is refused, and kubeconfig paths are relative to the file.
 */
export function loadClusterTargets(file: string | undefined, homeCluster: string): ClusterTarget[] {
  if (!file) return [];
  let content: unknown;
  try {
    content = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`AKS_CLUSTERS_FILE=${file} cannot be read as YAML: ${(err as Error).message}`);
  }
  const checked = checkInput(clusterTargetsFileSchema, content, 'clusters file');
  if (!checked.ok) throw new ConfigError(`AKS_CLUSTERS_FILE=${file}: ${checked.problems.join('; ')}`);
  const names = [homeCluster];
  const problems: string[] = [];
  for (const target of checked.value.clusters) {
    if (names.includes(target.name)) problems.push(`cluster "${target.name}" is named twice (the home cluster is AKS_CLUSTER_NAME=${homeCluster})`);
    names.push(target.name);
  }
  if (problems.length > 0) throw new ConfigError(`AKS_CLUSTERS_FILE=${file}: ${problems.join('; ')}`);
  return checked.value.clusters.map((t) => ({ ...t, kubeconfig: resolve(dirname(file), t.kubeconfig) }));
}

/** The configuration of a worker for one cluster target: its ARM resource, region and kubeconfig; the rest as the home worker's. */
export function targetConfig(config: WorkerConfig, target: ClusterTarget): WorkerConfig {
  return {
    ...config,
    azure: { ...config.azure, ...parseClusterResourceId(target.resourceId), armEndpoint: target.armEndpoint ?? config.azure.armEndpoint },
    kubeconfig: target.kubeconfig,
  };
}

export function loadTelemetryConfig(env: NodeJS.ProcessEnv = process.env): TelemetryConfig {
  return {
    logFormat: oneOf<LogFormat>(env, 'LOG_FORMAT', logFormats, 'json'),
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', logLevels, 'INFO'),
    metricsAddress: hostPort(env, 'METRICS_ADDRESS'),
  };
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const registryEndpoint = required(env, 'REGISTRY_ENDPOINT', 'the registry adapters are pushed to, e.g. https://myacr.azurecr.io');
  if (!registryEndpoint.startsWith('https://')) {
    throw new ConfigError(`REGISTRY_ENDPOINT=${registryEndpoint} must be an https:// URL (the registry client refuses plain http)`);
  }
  const clusterName = required(env, 'AKS_CLUSTER_NAME', 'the AKS cluster GPU node pools are added to');
  return {
    temporal: loadTemporalSettings(env),
    azure: {
      armEndpoint: env.AZURE_ARM_ENDPOINT ?? 'https://management.azure.com',
      subscriptionId: required(env, 'AZURE_SUBSCRIPTION_ID', 'the subscription that holds the AKS cluster'),
      resourceGroup: required(env, 'AZURE_RESOURCE_GROUP', "the AKS cluster's resource group"),
      clusterName,
      staticToken: env.AZURE_STATIC_TOKEN || undefined,
    },
    kubeconfig: env.KUBECONFIG || undefined,
    clusters: loadClusterTargets(env.AKS_CLUSTERS_FILE || undefined, clusterName),
    registry: { endpoint: registryEndpoint, allowLoopback: env.ALLOW_LOOPBACK_REGISTRY === 'true' },
    workerImage: env.WORKER_IMAGE ?? 'aks-finetune/worker:0.1.0',
    inferenceUrlTemplate: env.INFERENCE_URL_TEMPLATE ?? 'http://{service}.{namespace}.svc.cluster.local',
    inferencePodUrlTemplate: env.INFERENCE_POD_URL_TEMPLATE ?? `http://{podIP}:${routerPort}`,
    kaitoRegistry: env.KAITO_REGISTRY ?? 'mcr.microsoft.com/aks/kaito',
    polling: { armMs: milliseconds(env, 'ARM_POLL_INTERVAL_MS', 5000), kubeMs: milliseconds(env, 'KUBE_POLL_INTERVAL_MS', 2000) },
    workflowBundle: env.WORKFLOW_BUNDLE || undefined,
    telemetry: loadTelemetryConfig(env),
  };
}
