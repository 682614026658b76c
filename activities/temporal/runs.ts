// Temporal as an external system: is the run that owns a pool still going, and how long did
// it take that run to get its GPUs?
import { type Client, WorkflowNotFoundError } from '@temporalio/client';

const provisioningSteps = ['GPU capacity', 'wait for GPU nodes'];

export function createRunActivities({ client }: { client: Client }) {
  return {
    /** Whether the workflow is still running; false when it ended or never existed. */
    async runIsOpen(workflowId: string): Promise<boolean> {
      try {
        const { status } = await client.workflow.getHandle(workflowId).describe();
        return status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },

    /** Which of these workflows are running: one visibility query, however many ids. */
    async openRunsAmong(workflowIds: string[]): Promise<string[]> {
      if (workflowIds.length === 0) return [];
      const ids = workflowIds.map((id) => `'${id.replace(/'/g, "\\'")}'`).join(', ');
      const open: string[] = [];
      for await (const run of client.workflow.list({ query: `ExecutionStatus = 'Running' AND WorkflowId IN (${ids})` })) open.push(run.workflowId);
      return open;
    },

    /**
     * Seconds the run spent getting its GPU nodes (what a run that reuses its pool saves), from
     * the run's result (its final status, stored in its history); undefined when it has none.
     */
    async provisioningSecondsOf(workflowId: string): Promise<number | undefined> {
      type Status = { steps?: { name: string; startedAt: string; endedAt?: string }[]; gpu?: { provisioningSecondsSaved?: number } };
      const handle = client.workflow.getHandle(workflowId);
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
