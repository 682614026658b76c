// The worker image's one binary:
//   worker         (default) poll the task queue and run workflows and activities
//   push-adapter   package an adapter from a results folder and push it (the pusher Job runs this)
// Configuration comes from the environment (README, "Configuration").
import { NativeConnection } from '@temporalio/worker';
import { ConfigError, loadWorkerConfig } from './config.js';
import { pushAdapterCommand } from './push-adapter.js';
import { createWorker } from './worker.js';

async function runWorker(): Promise<void> {
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

const [command = 'worker', ...args] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  worker: runWorker,
  'push-adapter': () => pushAdapterCommand(args),
};
const run = commands[command];
if (!run) {
  console.error(`unknown command "${command}": use ${Object.keys(commands).join(' or ')}`);
  process.exit(2);
}
run().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? `worker: ${err.message}` : err instanceof Error ? `${command}: ${err.message}` : err);
  process.exit(1);
});
