// `npm run worker`: the worker process. Configuration comes from the environment (README).
import { NativeConnection } from '@temporalio/worker';
import { ConfigError, loadWorkerConfig } from './config.js';
import { createWorker } from './worker.js';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  try {
    const worker = await createWorker(config, connection);
    console.log(`Worker polling task queue "${config.temporal.taskQueue}" on ${config.temporal.address} (namespace ${config.temporal.namespace})`);
    await worker.run(); // returns after SIGINT/SIGTERM, once in-flight tasks are done
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? `worker: ${err.message}` : err);
  process.exit(1);
});
