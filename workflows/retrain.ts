// retrain: what a retraining Schedule starts. It runs fineTune as a child (deterministic id:
// this run's id + "-fine-tune") unless the dataset is unchanged since the schedule's last
// successful run (image digest; ETag, Last-Modified or content hash for URLs), in which case
// it records why it skipped and ends.
import { ApplicationFailure, executeChild, ParentClosePolicy, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { failureTypes } from '../domain/failure-types.js';
import { type FineTuneRequest, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { apiCalls } from './activity-options.js';
import { fineTune } from './fine-tune.js';

export interface RetrainInput {
  /** The schedule's id: its memory of the last dataset trained on is kept under this name. */
  schedule: string;
  request: FineTuneRequest;
}

export interface RetrainResult {
  schedule: string;
  trained: boolean;
  reason: string;
  fingerprint?: string;
  fineTuneWorkflowId?: string;
  adapter?: string;
}

export const scheduleIdPattern = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

const lookups = proxyActivities<Pick<Activities, 'datasetFingerprint' | 'readState' | 'writeState'>>(apiCalls);

export async function retrain({ schedule, request }: RetrainInput): Promise<RetrainResult> {
  if (!scheduleIdPattern.test(schedule ?? '')) {
    throw ApplicationFailure.nonRetryable(`schedule "${schedule}" must be 1-40 lowercase letters, digits and '-'`, failureTypes.invalidRequest);
  }
  const fineTuneWorkflowId = `${workflowInfo().workflowId}-fine-tune`;
  const validation = validateFineTuneRequest(request, fineTuneWorkflowId);
  if (!validation.ok) {
    throw ApplicationFailure.nonRetryable(`Invalid request in schedule ${schedule}: ${validation.problems.join('; ')}`, failureTypes.invalidRequest, {
      problems: validation.problems,
    });
  }
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
  const adapter = status.adapter?.reference;
  if (fingerprint !== undefined) {
    await lookups.writeState(stateName, { fingerprint, lastRun: fineTuneWorkflowId, trainedAt: new Date().toISOString(), adapter: adapter ?? '' });
  }
  return {
    schedule,
    trained: true,
    reason: fingerprint === undefined ? 'the dataset has no fingerprint (a volume): always trains' : last.fingerprint ? 'the dataset changed' : 'first run of this schedule',
    fingerprint,
    fineTuneWorkflowId,
    adapter,
  };
}
