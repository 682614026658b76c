// `npm run demo`: the main job on the local stack. Runs a worker in this process and one
// fineTune run through it: a GPU node pool through the AKS emulator, KAITO's tuning Job on a
// simulated GPU node, the adapter image pushed to the local registry, the pool released
// (DEMO_DEPLOY=true: inference deployed and smoke-checked instead). Prints each step as it
// happens. Run through scripts/with-stack-env.sh (npm run demo does).
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { fineTuneResult } from '../client/fine-tune-client.js';
import { connectClient } from '../client/temporal-connection.js';
import type { FineTuneRequest } from '../domain/fine-tune-request.js';
import { createKubeConfig } from '../workers/clients.js';
import { loadWorkerConfig } from '../workers/config.js';
import { startJobWatcher } from '../workers/job-watcher.js';
import { createWorker } from '../workers/worker.js';
import { type FineTuneStatus, fineTune, fineTuneStatusQuery } from '../workflows/fine-tune.js';
import { fineTuneWorkflowId } from '../workflows/ids.js';

const config = loadWorkerConfig();
const uiUrl = process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233';
const registry = new URL(config.registry.endpoint).host;
const stamp = new Date().toISOString().replace(/[:.]/g, '-').toLowerCase();
const request: FineTuneRequest = {
  model: 'phi-3-mini-4k-instruct',
  method: 'qlora',
  dataset: { urls: ['https://datasets.example.com/support/chats.jsonl'] },
  tuning: { epochs: 1, loraR: 16, loraAlpha: 32 },
  output: { image: `${registry}/adapters/phi-3-support:${stamp}` },
  gpu: { vmSize: process.env.DEMO_VM_SIZE ?? 'Standard_NC24ads_A100_v4' },
  // Inference keeps the GPU pool it runs on; without it the run releases the pool at the end.
  deploy: process.env.DEMO_DEPLOY === 'true' ? { replicas: 1 } : undefined,
  pollIntervalSeconds: 1,
};

Runtime.install({ logger: new DefaultLogger('WARN') });
const workerConnection = await NativeConnection.connect(config.temporal.connection);
const client = await connectClient(config.temporal);
const watcher = startJobWatcher(createKubeConfig(config), client);
const worker = await createWorker(config, workerConnection, {
  // The emulator finishes operations in seconds: poll faster than real ARM warrants.
  tuning: { armPollIntervalMs: 500, kubePollIntervalMs: 500 },
  objects: watcher,
});
const workerRun = worker.run();

const workflowId = fineTuneWorkflowId(`demo-${stamp}`);
const began = Date.now();
const handle = await client.workflow.start(fineTune, { taskQueue: config.temporal.taskQueue, workflowId, args: [request] });
console.log(`Started fineTune ${workflowId}: ${request.model} (${request.method}) on ${request.gpu?.vmSize}`);
console.log(`  ${uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`);

const printed = new Set<string>();
const report = (status: FineTuneStatus) => {
  for (const step of status.steps) {
    if (!step.endedAt || printed.has(step.name)) continue;
    printed.add(step.name);
    const seconds = (Date.parse(step.endedAt) - Date.parse(step.startedAt)) / 1000;
    console.log(`  ✓ ${step.name.padEnd(20)} ${seconds.toFixed(1).padStart(5)}s  ${step.detail ?? ''}`);
  }
};
const ticker = setInterval(() => {
  handle.query(fineTuneStatusQuery).then(report, () => undefined);
}, 500);

try {
  const result = await fineTuneResult(handle);
  report(result);
  console.log(`fineTune ${result.phase} in ${((Date.now() - began) / 1000).toFixed(1)}s`);
  console.log(`  adapter   ${result.adapter?.reference}`);
  if (result.inference) console.log(`  serving   ${result.inference.models.join(', ')} (Service ${result.inference.service}, on pool ${result.gpu?.pool})`);
  console.log(`  GPU time  ${result.gpu?.gpuMinutes} GPU-minutes, about ${result.gpu?.estimatedCost?.toFixed(2)} ${result.gpu?.currency} (prices as of ${result.gpu?.pricesAsOf})`);
  console.log(`  released  ${result.released.join(', ')}`);
} finally {
  clearInterval(ticker);
  watcher.stop();
  worker.shutdown();
  await workerRun;
  await client.connection.close();
  await workerConnection.close();
}
