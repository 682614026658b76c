// The promotion workflow's interface: approval Updates (validated: accepted only while the run
// waits for approval).
import { defineUpdate } from '@temporalio/workflow';

export interface ApprovalDecision {
  /** Who decided (free text: a user name), recorded in the status and the lineage. */
  by?: string;
  reason?: string;
}
export const approveUpdate = defineUpdate<void, [ApprovalDecision]>('approve');
export const rejectUpdate = defineUpdate<void, [ApprovalDecision]>('reject');

export type PromotionState =
  | 'inspecting' | 'loading' | 'evaluating' | 'awaiting-approval' | 'switching' | 'watching'
  | 'promoted' | 'rejected' | 'rolled-back' | 'failed';
