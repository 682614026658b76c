// The typed client for promotions: start promoteAdapter for an existing adapter image, read a
// promotion's status, approve or reject one that waits. A fineTune run's promotion is reached
// through the run's own id.
import { type Client, WorkflowUpdateFailedError } from '@temporalio/client';
import { type PromotionRequest, validatePromotionRequest } from '../domain/promotion.js';
import { defaultTaskQueue, fineTunePromotionWorkflowId, promotionWorkflowId } from '../workflows/ids.js';
import { type ApprovalDecision, approveUpdate, type PromotionStatus, promotionStatusQuery, rejectUpdate } from '../workflows/promotion-api.js';

export class PromotionRequestError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid promoteAdapter request:\n  - ${problems.join('\n  - ')}`);
  }
}

/** A promotion's workflow id from what a person has at hand: a promotion's id, or the fineTune run that started it. */
export const promotionIdOf = (id: string): string => (id.startsWith('fine-tune-') && !id.endsWith('-promote') ? fineTunePromotionWorkflowId(id) : id);

/** Validates, then starts promoteAdapter (id `promote-<name>`; default name: the alias and the start time). Starting twice with one id starts one run. */
export async function startPromotion(client: Client, request: PromotionRequest, options: { name?: string; taskQueue?: string } = {}): Promise<string> {
  const checked = validatePromotionRequest(request);
  if (!checked.ok) throw new PromotionRequestError(checked.problems);
  const name = options.name ?? `${checked.value.alias}-${new Date().toISOString().replace(/[:.]/g, '-').toLowerCase()}`;
  const handle = await client.workflow.start('promoteAdapter', {
    workflowId: promotionWorkflowId(name),
    taskQueue: options.taskQueue ?? defaultTaskQueue,
    args: [request],
  });
  return handle.workflowId;
}

export async function getPromotionStatus(client: Client, id: string): Promise<{ workflowId: string; execution: string; status: PromotionStatus }> {
  const handle = client.workflow.getHandle(promotionIdOf(id));
  const [description, status] = await Promise.all([handle.describe(), handle.query(promotionStatusQuery)]);
  return { workflowId: handle.workflowId, execution: description.status.name, status };
}

/** Approves or rejects a promotion that waits for approval; the validator's refusal (it does not wait) comes back as its message. */
export async function decidePromotion(client: Client, id: string, approve: boolean, decision: ApprovalDecision = {}): Promise<string> {
  const handle = client.workflow.getHandle(promotionIdOf(id));
  try {
    await handle.executeUpdate(approve ? approveUpdate : rejectUpdate, { args: [decision] });
    return handle.workflowId;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new Error(err.cause instanceof Error ? err.cause.message : err.message);
    throw err;
  }
}
