// retrain: what a retraining Schedule starts. It runs fineTune as a child (deterministic id:
// this run's id + "-fine-tune") unless the dataset is unchanged since the schedule's last
// successful run (image digest; ETag, Last-Modified or content hash for URLs), in which case
// it records why it skipped and ends.
import { executeChild, ParentClosePolicy, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { type RetrainInput, validateRetrainInput } from '../domain/workflow-inputs.js';
import { apiCalls } from './activity-options.js';
import { retrainChildWorkflowId } from './ids.js';
import { fineTune } from './fine-tune.js';
import { invalidInput, withParsedWorkspace } from './input-checks.js';

export type { RetrainInput } from '../domain/workflow-inputs.js';

export interface RetrainResult {
  schedule: string;
  trained: boolean;
  reason: string;
  fingerprint?: string;
  fineTuneWorkflowId?: string;
  adapter?: string;
}

const lookups = proxyActivities<Pick<Activities, 'datasetFingerprint' | 'readState' | 'writeState'>>(apiCalls);

export async function retrain(input: RetrainInput): Promise<RetrainResult> {
  const checked = validateRetrainInput(input);
  if (!checked.ok) throw invalidInput('retrain input', checked.problems);
  const { schedule } = checked.value;
  const request = await withParsedWorkspace(input.request, `request in schedule ${schedule}`);
  const fineTuneWorkflowId = retrainChildWorkflowId(workflowInfo().workflowId);
  const validation = validateFineTuneRequest(request, fineTuneWorkflowId);
  if (!validation.ok) throw invalidInput(`request in schedule ${schedule}`, validation.problems);
  const stateName = `retrain-${schedule}`;
  const fingerprint = await lookups.datasetFingerprint(validation.plan.dataset);
  const last = await lookups.readState(stateName);
  if (fingerprint !== undefined && last.fingerprint === fingerprint) {
    return { schedule, trained: false, reason: `dataset unchanged since ${last.lastRun} (${last.trainedAt})`, fingerprint };
  }
  const status = await executeChild(fineTune, {
    workflowId: fineTuneWorkflowId,
    args: [request],
    // If this run is cancelled or terminated, the child is cancelled and cleans up after itself.
    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
  });
  // An image by digest; for a volume output, the claim its files were copied to.
  const adapter = status.adapter?.reference ?? status.adapter?.volume;
  if (fingerprint !== undefined) {
    await lookups.writeState(stateName, { fingerprint, lastRun: fineTuneWorkflowId, trainedAt: new Date().toISOString(), adapter: adapter ?? '' });
  }
  return {
    schedule,
    trained: true,
    reason: fingerprint === undefined ? "the dataset has no fingerprint (a volume or a Secret's URL list): always trains" : last.fingerprint ? 'the dataset changed' : 'first run of this schedule',
    fingerprint,
    fineTuneWorkflowId,
    adapter,
  };
}
