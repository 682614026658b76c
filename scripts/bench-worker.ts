// The worker a benchmark runs its workflows on: the product's worker and shared Job watcher, in
// this process, on a task queue of the bench's own, with a Temporal client; stop() ends them.
import { format } from 'node:util';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { connectClient } from '../client/temporal-connection.js';
import { createKubeConfig } from '../workers/clients.js';
import type { WorkerConfig } from '../workers/config.js';
import { startJobWatcher } from '../workers/job-watcher.js';
import { createWorker } from '../workers/worker.js';

/** Starts it; `quiet` lists workflow warnings the bench expects (its own faults) and drops. */
export async function startBenchWorker(config: WorkerConfig, taskQueue: string, quiet: string[] = []): Promise<{ client: Client; stop: () => Promise<void> }> {
  Runtime.install({
    logger: new DefaultLogger('WARN', ({ level, message, meta, timestampNanos }) => {
      if (quiet.includes(message)) return;
      process.stderr.write(`${new Date(Number(timestampNanos / 1_000_000n)).toISOString()} [${level}] ${message}${meta === undefined ? '' : ` ${format(meta)}`}\n`);
    }),
  });
  const workerConnection = await NativeConnection.connect(config.temporal.connection);
  const client = await connectClient(config.temporal);
  const watcher = startJobWatcher(createKubeConfig(config), client);
  const worker = await createWorker({ ...config, temporal: { ...config.temporal, taskQueue } }, workerConnection, {
    tuning: { armPollIntervalMs: 250, kubePollIntervalMs: 250 },
    objects: watcher,
  });
  const workerRun = worker.run();
  return {
    client,
    stop: async () => {
      watcher.stop();
      worker.shutdown();
      await workerRun;
      await client.connection.close();
      await workerConnection.close();
    },
  };
}
