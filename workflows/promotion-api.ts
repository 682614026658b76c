// The promotion workflow's interface: approval Updates (validated: accepted only while the run
// waits for approval) and its status query. Shared by the workflow, the client and the CLI.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { GateDecision, SuiteResult } from '../domain/evaluation.js';
import type { WatchVerdict } from '../domain/promotion.js';
import type { StepRecord } from './step-recorder.js';

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

/** A pass rate and its counts: what the status and the search attributes keep of a suite's result. */
export type SuiteScore = Omit<SuiteResult, 'cases'> & { failed: { prompt: string; reason?: string }[] };

export interface PromotionStatus {
  /** The promotion's state (also the PromotionState search attribute). */
  phase: PromotionState;
  currentStep?: string;
  steps: StepRecord[];
  endpoint: string;
  alias: string;
  image: string;
  /** The candidate's version name on the endpoint (`<alias>-v<n>`), once loaded. */
  versionName?: string;
  /** The version the alias served before, if any: production in the evaluation, the rollback target after. */
  previousVersion?: string;
  scores?: { candidate: SuiteScore; production?: SuiteScore; evalLoss?: number };
  gate?: GateDecision;
  /** Approvals, rejections, timeouts and rollbacks, in order. */
  decisions: { at: string; decision: 'approved' | 'rejected' | 'approval-timed-out' | 'gate-rejected' | 'rolled-back'; by?: string; reason?: string }[];
  /** The watch window's last verdict. */
  watch?: WatchVerdict;
  /** The evaluation recorded in the adapter's lineage: an OCI artifact whose subject is the adapter image. */
  lineage?: { artifactDigest?: string; referrersTag?: string; error?: string };
  /** The root cause of a failure. */
  error?: string;
}

export const promotionStatusQuery = defineQuery<PromotionStatus>('status');
