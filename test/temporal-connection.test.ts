// Temporal connection settings come from Temporal's environment configuration: a profile of a
// TOML file, overridden by TEMPORAL_* variables. The CLI and the worker binary reach the local
// dev server through a profile alone (no TEMPORAL_ADDRESS), and TLS and API-key settings reach
// the connection options as the SDK's own loader reads them.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadTemporalSettings } from '../client/temporal-connection.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { loadWorkerConfig } from '../workers/config.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';
import { config, eventually, testFineTuneRequest, unique } from './support.js';
import { useTemporal } from './temporal.js';

const temporal = useTemporal();
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'temporal-profile-'));
const stackAddress = config.temporal.connection.address;
const caPath = join(loadStackConfig().certsDir, 'ca.crt');

/** A temporal.toml with a "local" profile pointing at the stack, and a "cloud" profile like Temporal Cloud's. */
const configFile = join(dir, 'temporal.toml');
writeFileSync(
  configFile,
  `[profile.local]
address = "${stackAddress}"
namespace = "default"

[profile.elsewhere]
address = "${stackAddress}"
namespace = "no-such-namespace-${unique()}"

[profile.cloud-api-key]
address = "westeurope.azure.api.temporal.io:7233"
namespace = "fine-tuning.a1b2c"
api_key = "key-from-the-profile"

[profile.cloud-mtls]
address = "fine-tuning.a1b2c.tmprl.cloud:7233"
namespace = "fine-tuning.a1b2c"
[profile.cloud-mtls.tls]
client_cert_path = "${caPath}"
client_key_path = "${caPath}"
server_ca_cert_path = "${caPath}"
server_name = "fine-tuning.a1b2c.tmprl.cloud"
`,
);

/** The stack's environment without its Temporal address and namespace: only the profile says where Temporal is. */
function profileEnv(profile: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: profile, ...extra };
  delete env.TEMPORAL_ADDRESS;
  delete env.TEMPORAL_NAMESPACE;
  return env;
}

async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', ...args], { env });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

let worker: ChildProcess | undefined;
afterEach(async () => {
  // The worker finishes its tasks on SIGTERM; SIGKILL if it has not after 20 s.
  if (worker && worker.exitCode === null) {
    const exited = new Promise((resolve) => worker!.once('exit', resolve));
    worker.kill('SIGTERM');
    const timer = setTimeout(() => worker!.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
  worker = undefined;
});

describe('Temporal connection through envconfig profiles', () => {
  it("the worker's configuration and the CLI use the profile's address and namespace", async () => {
    expect(loadWorkerConfig(profileEnv('local')).temporal).toMatchObject({ connection: { address: stackAddress }, namespace: 'default', taskQueue: 'fine-tuning' });
    expect(loadWorkerConfig(profileEnv('elsewhere')).temporal.namespace).toMatch(/^no-such-namespace-/);

    // The CLI starts a run on the dev server the profile names; the test's own client finds it there.
    const id = fineTuneWorkflowId(`profile-${unique()}`);
    const spec = join(dir, `${id}.yaml`);
    writeFileSync(spec, stringify(testFineTuneRequest()));
    const started = await cli(['start', spec, '--id', id], profileEnv('local', { TEMPORAL_TASK_QUEUE: `nobody-${unique()}` }));
    expect(started.out).toContain(`Started ${id}`);
    const handle = temporal.env.client.workflow.getHandle(id);
    try {
      expect((await handle.describe()).status.name).toBe('RUNNING');
    } finally {
      await handle.terminate('test over');
    }

    // A profile's namespace is the one the CLI asks: the server does not know this one.
    const elsewhere = await cli(['list'], profileEnv('elsewhere'));
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.out).toMatch(/Namespace not found: 'no-such-namespace-\w+'/);

    // A profile that is not in the file is an error, not a silent fallback to the local default.
    const missing = await cli(['list'], profileEnv('staging'));
    expect(missing.code).toBe(1);
    expect(missing.out).toContain("Profile 'staging' not found");
  });

  it('the worker binary polls through the profile alone', async () => {
    const taskQueue = `profile-${unique()}`;
    const logFile = join(dir, `worker-${taskQueue}.log`);
    writeFileSync(logFile, '');
    worker = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
      env: profileEnv('local', { TEMPORAL_TASK_QUEUE: taskQueue, LOG_FORMAT: 'json' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (chunk: Buffer) => writeFileSync(logFile, chunk, { flag: 'a' }));
    // The run only needs a workflow task to fail with InvalidRequest: proof that the worker polls this queue on this server.
    const workflowId = fineTuneWorkflowId(`profile-worker-${unique()}`);
    const error = await temporal.env.client.workflow
      .execute('fineTune', { taskQueue, workflowId, args: [{ model: 'phi-3-mini-4k-instruct' }], workflowExecutionTimeout: '2 minutes' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toMatchObject({ type: 'InvalidRequest' });
    // The worker wrote the line before it polled, but its pipe and the run's result reach this
    // process as separate events, in either order on a busy machine: wait for the line.
    const polling = await eventually(
      async () =>
        readFileSync(logFile, 'utf8')
          .split('\n')
          .filter((line) => line.startsWith('{') && line.endsWith('}'))
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .find((entry) => entry.message === 'worker polling'),
      "the worker's 'worker polling' log line",
      10_000,
    );
    expect(polling).toMatchObject({ address: stackAddress, namespace: 'default', taskQueue, tls: false, apiKey: false });
  }, 120_000);

  it('passes API keys and TLS settings through, from the profile and from TEMPORAL_* variables', () => {
    const apiKeyProfile = loadTemporalSettings({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'cloud-api-key' });
    expect(apiKeyProfile.namespace).toBe('fine-tuning.a1b2c');
    // An API key turns TLS on: Temporal Cloud accepts keys over TLS only.
    expect(apiKeyProfile.connection).toMatchObject({ address: 'westeurope.azure.api.temporal.io:7233', apiKey: 'key-from-the-profile', tls: true });

    const ca = readFileSync(caPath);
    const mtls = loadTemporalSettings({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'cloud-mtls' }).connection;
    expect(mtls.address).toBe('fine-tuning.a1b2c.tmprl.cloud:7233');
    expect(mtls.apiKey).toBeUndefined();
    expect(mtls.tls).toMatchObject({ serverNameOverride: 'fine-tuning.a1b2c.tmprl.cloud' });
    const tls = mtls.tls as { clientCertPair: { crt: Uint8Array; key: Uint8Array }; serverRootCACertificate: Uint8Array };
    expect(Buffer.from(tls.clientCertPair.crt).equals(ca)).toBe(true);
    expect(Buffer.from(tls.clientCertPair.key).equals(ca)).toBe(true);
    expect(Buffer.from(tls.serverRootCACertificate).equals(ca)).toBe(true);

    // Variables win over the file, key by key (a secret store can hand the key to the pod alone).
    const overridden = loadTemporalSettings({
      TEMPORAL_CONFIG_FILE: configFile,
      TEMPORAL_PROFILE: 'cloud-api-key',
      TEMPORAL_API_KEY: 'key-from-the-environment',
      TEMPORAL_NAMESPACE: 'staging.a1b2c',
      TEMPORAL_TASK_QUEUE: 'fine-tuning-staging',
    });
    expect(overridden).toMatchObject({ namespace: 'staging.a1b2c', taskQueue: 'fine-tuning-staging', connection: { apiKey: 'key-from-the-environment', tls: true } });
    expect(loadTemporalSettings({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_TLS: 'true', TEMPORAL_TLS_SERVER_NAME: 'temporal' }).connection).toMatchObject({
      address: 'temporal.internal:7233',
      tls: { serverNameOverride: 'temporal' },
    });
    // No file, no variables: the local dev server, as before.
    expect(loadTemporalSettings({ TEMPORAL_CONFIG_FILE: join(dir, 'absent.toml') })).toEqual({
      connection: { address: '127.0.0.1:7233' },
      namespace: 'default',
      taskQueue: 'fine-tuning',
    });
  });
});
