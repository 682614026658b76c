// Where Temporal is and how to reach it, for the worker, the CLI, the typed client and the
// scripts alike: Temporal's environment configuration (@temporalio/envconfig) loads one profile
// from a TOML file (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml; profile
// TEMPORAL_PROFILE, else "default") and lets TEMPORAL_* variables override it (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_GRPC_META_*). Reference:
// https://docs.temporal.io/references/client-environment-configuration
// The worker's NativeConnection and the clients' Connection take the same options.
import { Client, Connection } from '@temporalio/client';
import { type ClientConnectConfig, loadClientConnectConfig } from '@temporalio/envconfig';
import { defaultTaskQueue } from '../workflows/ids.js';

export interface TemporalSettings {
  /** Options for Connection.connect (clients) and NativeConnection.connect (the worker): address, TLS, API key, gRPC metadata. */
  connection: ClientConnectConfig['connectionOptions'] & { address: string };
  namespace: string;
  /** Not part of envconfig: TEMPORAL_TASK_QUEUE, default "fine-tuning". */
  taskQueue: string;
}

/** Where a profile without an address points: the local dev server, as before envconfig. */
export const defaultTemporalAddress = '127.0.0.1:7233';
export const defaultTemporalNamespace = 'default';

/** The connection profile: the TOML file's profile, overridden by TEMPORAL_* variables from `env`. */
export function loadTemporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const definedEnv = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const { connectionOptions, namespace } = loadClientConnectConfig({ overrideEnvVars: definedEnv });
  return {
    connection: { ...connectionOptions, address: connectionOptions.address || defaultTemporalAddress },
    namespace: namespace || defaultTemporalNamespace,
    taskQueue: env.TEMPORAL_TASK_QUEUE || defaultTaskQueue,
  };
}

/** A client on the profile's namespace; close it with `client.connection.close()`. */
export async function connectClient(settings: TemporalSettings = loadTemporalSettings()): Promise<Client> {
  return new Client({ connection: await Connection.connect(settings.connection), namespace: settings.namespace });
}
