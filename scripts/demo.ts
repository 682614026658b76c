// `npm run demo`: the main job on the local stack. Runs a worker in this process and a gpuCheck
// workflow through it (GPU node pool through the AKS emulator, nvidia-smi Job on a kwok node,
// release), printing each step as it happens. Run through scripts/with-stack-env.sh.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadWorkerConfig } from '../workers/config.js';
import { createWorker } from '../workers/worker.js';
import { type GpuCheckRequest, type GpuCheckStatus, gpuCheck, gpuCheckStatusQuery } from '../workflows/gpu-check.js';

const request: GpuCheckRequest = { vmSize: process.env.DEMO_VM_SIZE ?? 'Standard_NC24ads_A100_v4' };
const config = loadWorkerConfig();
const uiUrl = process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233';

Runtime.install({ logger: new DefaultLogger('WARN') });
const workerConnection = await NativeConnection.connect({ address: config.temporal.address });
const worker = await createWorker(config, workerConnection, {
  // The emulator finishes operations in seconds: poll faster than real ARM warrants.
  tuning: { armPollIntervalMs: 500, kubePollIntervalMs: 500 },
});
const workerRun = worker.run();

const connection = await Connection.connect({ address: config.temporal.address });
const client = new Client({ connection, namespace: config.temporal.namespace });
const workflowId = `gpu-check-demo-${new Date().toISOString().replace(/[:.]/g, '-').toLowerCase()}`;
const began = Date.now();
const handle = await client.workflow.start(gpuCheck, { taskQueue: config.temporal.taskQueue, workflowId, args: [request] });
console.log(`Started gpuCheck ${workflowId} for ${request.vmSize}`);
console.log(`  ${uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`);

const printed = new Set<string>();
const report = (status: GpuCheckStatus) => {
  for (const step of status.steps) {
    if (!step.endedAt || printed.has(step.name)) continue;
    printed.add(step.name);
    const seconds = (Date.parse(step.endedAt) - Date.parse(step.startedAt)) / 1000;
    console.log(`  ✓ ${step.name.padEnd(26)} ${seconds.toFixed(1).padStart(5)}s  ${step.detail ?? ''}`);
  }
};
const ticker = setInterval(() => {
  handle.query(gpuCheckStatusQuery).then(report, () => undefined);
}, 500);

try {
  const result = await handle.result();
  report(result);
  console.log(`gpuCheck ${result.phase} in ${((Date.now() - began) / 1000).toFixed(1)}s: ${result.gpusPerNode} GPU(s) on ${result.node}`);
  console.log(`Released: ${result.released.join(', ')}`);
} finally {
  clearInterval(ticker);
  worker.shutdown();
  await workerRun;
  await connection.close();
  await workerConnection.close();
}
