// gpuCheck: proves a cluster can run GPU work end to end. It adds a GPU node pool through ARM,
// waits for its nodes, runs nvidia-smi on one, then releases everything, also after a failure
// or a cancellation. Users run it before their first fine-tuning run; the local stack's smoke
// run is this workflow.
import {
  CancellationScope,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { managedPoolTags } from '../domain/pool-tags.js';
import { findVmSize } from '../domain/vm-sizes.js';
import { type GpuCheckRequest, validateGpuCheckRequest } from '../domain/workflow-inputs.js';
import { apiCalls, armOperations, clusterWaits } from './activity-options.js';
import { invalidInput } from './input-checks.js';
import { nodePoolName, objectName } from './naming.js';
import { GpuVmSize } from './search-attributes.js';
import { type StepRecord, StepRecorder } from './step-recorder.js';

export type { GpuCheckRequest } from '../domain/workflow-inputs.js';

export type GpuCheckPhase = 'provisioning' | 'waiting-for-nodes' | 'running-check' | 'releasing' | 'succeeded' | 'failed' | 'cancelled';

export interface GpuCheckStatus {
  phase: GpuCheckPhase;
  currentStep?: string;
  pool: string;
  steps: StepRecord[];
  /** What this run created, as "kind/name". */
  created: string[];
  /** What was removed while releasing. */
  released: string[];
  gpusPerNode?: number;
  node?: string;
  error?: string;
}

export const gpuCheckStatusQuery = defineQuery<GpuCheckStatus>('status');

const defaults = { namespace: 'aks-finetune', image: 'nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04' };
const poolTaint = 'sku=gpu:NoSchedule';

const azure = proxyActivities<Pick<Activities, 'ensureNodePool' | 'deleteNodePool'>>(armOperations);
const kube = proxyActivities<Pick<Activities, 'ensureNamespace' | 'startGpuCheckJob' | 'deleteJob'>>(apiCalls);
const waits = proxyActivities<Pick<Activities, 'waitForPoolNodes' | 'waitForJob'>>(clusterWaits);

export async function gpuCheck(request: GpuCheckRequest): Promise<GpuCheckStatus> {
  const { workflowId, runId } = workflowInfo();
  const owner = { workflowId, runId };
  const status: GpuCheckStatus = { phase: 'provisioning', pool: nodePoolName('gchk', owner), steps: [], created: [], released: [] };
  setHandler(gpuCheckStatusQuery, () => status);

  const checked = validateGpuCheckRequest(request);
  if (!checked.ok) throw invalidInput('gpuCheck request', checked.problems);
  const size = findVmSize(request.vmSize)!;
  const namespace = request.namespace ?? defaults.namespace;
  const jobName = objectName('gpu-check', owner);

  const recorder = new StepRecorder(status);
  const enter = (phase: GpuCheckPhase) => recorder.enter(phase);
  const step = recorder.step.bind(recorder);

  upsertSearchAttributes([{ key: GpuVmSize, value: size.name }]);
  try {
    enter('provisioning');
    status.created.push(`agentPool/${status.pool}`);
    const pool = await step(
      'create GPU node pool',
      () =>
        azure.ensureNodePool({
          name: status.pool,
          vmSize: size.name,
          count: 1,
          spot: request.spot ?? false,
          taints: [poolTaint],
          labels: { 'aks-finetune.io/purpose': 'gpu-check' },
          tags: managedPoolTags(owner, { policy: 'delete' }),
        }),
      (p) => `${p.name}: ${p.count} x ${p.vmSize}${p.adopted ? ' (adopted)' : ''}`,
    );

    enter('waiting-for-nodes');
    const ready = await step('wait for GPU nodes', () => waits.waitForPoolNodes(pool.name, 1), (r) => `${r.nodes.join(', ')}: ${r.gpusPerNode} GPU(s) each`);
    status.gpusPerNode = ready.gpusPerNode;

    enter('running-check');
    await kube.ensureNamespace(namespace);
    status.created.push(`job/${namespace}/${jobName}`);
    await step('start nvidia-smi job', () =>
      kube.startGpuCheckJob(namespace, {
        name: jobName,
        owner,
        pool: pool.name,
        gpus: ready.gpusPerNode,
        taints: [poolTaint],
        image: request.image ?? defaults.image,
      }),
    );
    const outcome = await step('wait for nvidia-smi job', () => waits.waitForJob(namespace, jobName), (o) => `succeeded on ${o.node}`);
    status.node = outcome.node;
  } catch (err) {
    status.error = err instanceof Error ? err.message : String(err);
    status.phase = isCancellation(err) ? 'cancelled' : 'failed';
    throw err;
  } finally {
    // Release what this run created even when it failed or was cancelled: GPU nodes cost money.
    await CancellationScope.nonCancellable(async () => {
      const failedPhase = status.phase === 'failed' || status.phase === 'cancelled' ? status.phase : undefined;
      enter('releasing');
      await step('release resources', async () => {
        if (await kube.deleteJob(namespace, jobName)) status.released.push(`job/${namespace}/${jobName}`);
        if (await azure.deleteNodePool(status.pool, { ownedBy: owner })) status.released.push(`agentPool/${status.pool}`);
      });
      enter(failedPhase ?? 'succeeded');
    });
  }
  return status;
}
