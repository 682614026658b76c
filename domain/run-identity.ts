// Who owns a pool or a Kubernetes object: one run of one workflow. The workflow id alone is not
// enough: a workflow id can be used again once its run has ended (Temporal's default id reuse
// policy), and the new run must neither adopt nor delete what the earlier one left behind.

/** One run: Temporal's workflow id and the run id of this execution (workflowInfo().runId). */
export interface RunOwner {
  workflowId: string;
  runId: string;
}

/** An owner as recorded on a resource: made before run ids were recorded, it has only a workflow id. */
export interface RecordedOwner {
  workflowId?: string;
  runId?: string;
}

/** A run as Temporal's visibility reports it. */
export interface RunRecord extends RunOwner {
  /** Temporal's execution status name: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
  status: string;
}

/**
 * The keys that record the owner: ARM tags on pools, and on Kubernetes objects the workflow id
 * as an annotation (any string) and the run id as a label (a uuid is a valid label value).
 */
export const runOwnerKeys = {
  workflowId: 'aks-finetune.io/workflow-id',
  runId: 'aks-finetune.io/run-id',
} as const;

/** The owner recorded in a pool's tags, or in an object's annotations and labels. */
export function recordedOwner(workflowIdFrom: Record<string, string> | undefined, runIdFrom: Record<string, string> | undefined): RecordedOwner {
  return { workflowId: workflowIdFrom?.[runOwnerKeys.workflowId], runId: runIdFrom?.[runOwnerKeys.runId] };
}

/** True only when the resource records exactly this run (workflow id and run id). */
export function isOwnedBy(recorded: RecordedOwner, owner: RecordedOwner): boolean {
  return recorded.workflowId === owner.workflowId && recorded.runId === owner.runId;
}

/** The recorded owner's run, when visibility knows it (the latest run of the id for an owner recorded without a run id). */
export function runOf(recorded: RecordedOwner, runs: RunRecord[]): RunRecord | undefined {
  const ofWorkflow = runs.filter((r) => r.workflowId === recorded.workflowId);
  if (recorded.runId !== undefined) return ofWorkflow.find((r) => r.runId === recorded.runId);
  return ofWorkflow.find((r) => r.status === 'RUNNING') ?? ofWorkflow[0];
}

/** Whether the recorded owner's run is still open. Without a recorded run id, any open run of the workflow id counts. */
export function ownerIsOpen(recorded: RecordedOwner, runs: RunRecord[]): boolean {
  return runOf(recorded, runs)?.status === 'RUNNING';
}

export type SweepKind = 'Job' | 'ConfigMap' | 'PersistentVolumeClaim' | 'Deployment' | 'Service';

/**
 * The orphan sweep's decision for one Kubernetes object a run labelled: delete it only when
 * its run has ended, and keep the inference (Deployment, Service) that a completed run deployed
 * on purpose, or whose run visibility no longer knows (it may have completed long ago).
 */
export function sweepDecision(kind: SweepKind, recorded: RecordedOwner, runs: RunRecord[]): { remove: boolean; reason: string } {
  if (recorded.workflowId === undefined) return { remove: false, reason: 'no owner recorded' };
  const run = runOf(recorded, runs);
  const who = `run ${recorded.workflowId}${recorded.runId ? ` (${recorded.runId})` : ''}`;
  if (run?.status === 'RUNNING') return { remove: false, reason: `its ${who} is open` };
  const inference = kind === 'Deployment' || kind === 'Service';
  if (inference && run === undefined) return { remove: false, reason: `inference of ${who}, unknown to Temporal: kept` };
  if (inference && run!.status === 'COMPLETED') return { remove: false, reason: `inference deployed by ${who}, which completed` };
  return { remove: true, reason: `its ${who} has ended${run ? ` (${run.status})` : ''}` };
}
