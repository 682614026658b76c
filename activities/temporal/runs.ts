// Temporal as an external system: is the run that owns a pool still going?
import { type Client, WorkflowNotFoundError } from '@temporalio/client';

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
  };
}
