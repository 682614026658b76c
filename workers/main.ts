// The worker image's one binary:
//   worker         (default) poll the task queue and run workflows and activities
//   push-adapter   package an adapter from a results folder and push it (the pusher Job runs this)
//   copy-adapter   copy an adapter from a results folder to an output volume (the copier Job runs this)
//   download-dataset  fetch dataset URLs, checking every resolved address and redirect (the tuning pod runs this)
//   adapter-router  keep a vLLM replica's adapters equal to its endpoint's desired state and proxy its API (the endpoint pod's sidecar)
// Configuration comes from the environment (docs/operations.md, "Configuration").
import { NativeConnection, Runtime } from '@temporalio/worker';
import { connectClient } from '../client/temporal-connection.js';
import { adapterRouterCommand } from './adapter-router.js';
import { createKubeConfig } from './clients.js';
import { startJobWatcher } from './job-watcher.js';
import { ConfigError, loadWorkerConfig, targetConfig } from './config.js';
import { downloadDatasetCommand } from './download-dataset.js';
import { copyAdapterCommand } from './copy-adapter.js';
import { pushAdapterCommand } from './push-adapter.js';
import { runtimeOptions } from './telemetry.js';
import { createClusterWorkers, createWorker } from './worker.js';

async function runWorker(): Promise<void> {
  const config = loadWorkerConfig();
  // Before any connection: the Runtime's logger and metrics endpoint apply to everything after.
  const { logger } = Runtime.install(runtimeOptions(config.telemetry));
  // One profile for both: the worker's native connection and the job watcher's client.
  const connection = await NativeConnection.connect(config.temporal.connection);
  const client = await connectClient(config.temporal);
  // One object cache and Job watcher per cluster: a run's Jobs are in the cluster its pool is in.
  const watch = (c: typeof config) => startJobWatcher(createKubeConfig(c), client, (line) => logger.warn(line));
  const home = watch(config);
  const targets = config.clusters.map((t) => watch(targetConfig(config, t)));
  try {
    const workers = [await createWorker(config, connection, { objects: home }), ...(await createClusterWorkers(config, connection, { objects: targets }))];
    const { address, tls, apiKey } = config.temporal.connection; // never log the key itself
    logger.info('worker polling', { address, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, clusters: [config.azure.clusterName, ...config.clusters.map((t) => t.name)], tls: Boolean(tls), apiKey: apiKey !== undefined, metricsAddress: config.telemetry.metricsAddress });
    // Each returns after SIGINT/SIGTERM, once its in-flight tasks are done.
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    for (const watcher of [home, ...targets]) watcher.stop();
    await client.connection.close();
    await connection.close();
  }
}

const [command = 'worker', ...args] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  worker: runWorker,
  'push-adapter': () => pushAdapterCommand(args),
  'copy-adapter': () => copyAdapterCommand(args),
  'download-dataset': () => downloadDatasetCommand(args),
  'adapter-router': adapterRouterCommand,
};
const run = commands[command];
if (!run) {
  console.error(`unknown command "${command}": use ${Object.keys(commands).join(', ')}`);
  process.exit(2);
}
run().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? `worker: ${err.message}` : err instanceof Error ? `${command}: ${err.message}` : err);
  process.exit(1);
});
