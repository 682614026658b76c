// Temporal as an external system: which runs that own pools or objects are still going (one
// visibility query), and how long did a run take to get its GPUs?
import type { Client } from '@temporalio/client';
import type { RecordedOwner, RunRecord } from '../../domain/run-identity.js';

const provisioningSteps = ['GPU capacity', 'wait for GPU nodes'];

export function createRunActivities({ client }: { client: Client }) {
  async function listRuns(workflowIds: string[], condition?: string): Promise<RunRecord[]> {
    if (workflowIds.length === 0) return [];
    const ids = workflowIds.map((id) => `'${id.replace(/'/g, "\\'")}'`).join(', ');
    const runs: RunRecord[] = [];
    const query = [condition, `WorkflowId IN (${ids})`].filter(Boolean).join(' AND ');
    for await (const run of client.workflow.list({ query })) runs.push({ workflowId: run.workflowId, runId: run.runId, status: run.status.name });
    return runs;
  }

  return {
    /** The open runs of these workflows (workflow id and run id): one visibility query, however many ids. */
    openRunsAmong: (workflowIds: string[]): Promise<RunRecord[]> => listRuns(workflowIds, "ExecutionStatus = 'Running'"),

    /** Every run visibility knows of these workflows, open or ended, with its status: one query. */
    runsAmong: (workflowIds: string[]): Promise<RunRecord[]> => listRuns(workflowIds),

    /**
     * Seconds the run spent getting its GPU nodes (what a run that reuses its pool saves), from
     * the run's result (its final status, stored in its history); undefined when it has none.
     */
    async provisioningSecondsOf(owner: RecordedOwner): Promise<number | undefined> {
      type Status = { steps?: { name: string; startedAt: string; endedAt?: string }[]; gpu?: { provisioningSecondsSaved?: number } };
      if (owner.workflowId === undefined) return undefined;
      const handle = client.workflow.getHandle(owner.workflowId, owner.runId);
      const described = await handle.describe().catch(() => undefined);
      if (described?.status.name !== 'COMPLETED') return undefined;
      const status = (await handle.result()) as Status;
      if (status?.gpu?.provisioningSecondsSaved !== undefined) return status.gpu.provisioningSecondsSaved;
      const steps = status?.steps?.filter((s) => provisioningSteps.includes(s.name) && s.endedAt) ?? [];
      if (steps.length === 0) return undefined;
      return Math.round(steps.reduce((sum, s) => sum + Date.parse(s.endedAt!) - Date.parse(s.startedAt), 0) / 100) / 10;
    },
  };
}
