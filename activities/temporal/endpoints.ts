// The endpoint workflow as an external system of a promotion: make sure it runs, and send it
// Updates. Both are idempotent: the endpoint's workflow id is its name (a second start adopts
// the running one), and each Update carries an id built from the promotion's workflow id and
// step, so a retried activity gets the first attempt's outcome instead of applying it twice.
import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, WorkflowIdConflictPolicy } from '@temporalio/common';
import { failureTypes } from '../../domain/failure-types.js';
import { type EndpointDescription, describeEndpointQuery, type EndpointInput } from '../../workflows/endpoint-api.js';
import { endpointWorkflowId } from '../../workflows/ids.js';

/** The endpoint workflow's Updates a promotion sends, by name. */
export type EndpointUpdateName = 'loadCandidate' | 'promote' | 'rollback' | 'unload';

export function createEndpointClientActivities({ client }: { client: Client }) {
  const describe = async (name: string): Promise<EndpointDescription | undefined> => {
    const handle = client.workflow.getHandle(endpointWorkflowId(name));
    try {
      if ((await handle.describe()).status.name !== 'RUNNING') return undefined;
      return await handle.query(describeEndpointQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  };

  return {
    /** The endpoint's description when its workflow runs, else undefined: what a promotion checks an adapter against before it creates anything. */
    findEndpoint: describe,

    /**
     * The endpoint's description, after starting its workflow (on this activity's task queue)
     * when none runs. A running endpoint must serve the base model and VM size asked for: an
     * adapter for another base model cannot load on it, and a promotion never rebuilds one.
     */
    async ensureEndpoint(input: EndpointInput | { spec: { name: string; baseModel?: string; vmSize?: string }; namespace: string }): Promise<EndpointDescription> {
      const { spec, namespace } = input;
      let running = await describe(spec.name);
      if (!running) {
        if (!spec.baseModel || !spec.vmSize) {
          throw ApplicationFailure.nonRetryable(`endpoint ${spec.name} does not exist: give endpoint.baseModel and endpoint.vmSize to create it`, failureTypes.invalidRequest);
        }
        await client.workflow.start('endpoint', {
          workflowId: endpointWorkflowId(spec.name),
          taskQueue: Context.current().info.taskQueue,
          args: [{ spec, namespace } as EndpointInput],
          // Another promotion may start it at the same moment: both then use the one endpoint.
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        });
        running = await client.workflow.getHandle(endpointWorkflowId(spec.name)).query(describeEndpointQuery);
      }
      const mismatches = [
        spec.baseModel && spec.baseModel !== running.baseModel ? `serves base model ${running.baseModel}, not ${spec.baseModel}` : undefined,
        spec.vmSize && spec.vmSize !== running.vmSize ? `runs on ${running.vmSize}, not ${spec.vmSize}` : undefined,
        running.namespace !== namespace ? `lives in namespace ${running.namespace}, not ${namespace}` : undefined,
      ].filter(Boolean);
      if (mismatches.length) {
        throw ApplicationFailure.nonRetryable(`endpoint ${spec.name} ${mismatches.join(' and ')}: promote into an endpoint for this adapter's base model`, failureTypes.invalidRequest);
      }
      return running;
    },

    /**
     * Sends an Update to the endpoint's workflow and waits for its result (a load waits until
     * every replica serves the adapter). A validator's refusal or a failed handler will not heal
     * by retrying: it fails non-retryable with the endpoint's message.
     */
    async sendEndpointUpdate(endpoint: string, update: EndpointUpdateName, args: [unknown], updateId: string): Promise<unknown> {
      const handle = client.workflow.getHandle(endpointWorkflowId(endpoint));
      try {
        return await handle.executeUpdate(update, { args, updateId });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          const cause = err.cause instanceof Error ? err.cause.message : err.message;
          throw ApplicationFailure.nonRetryable(`endpoint ${endpoint} refused ${update}: ${cause}`, failureTypes.endpointRefused);
        }
        if (err instanceof WorkflowNotFoundError) {
          throw ApplicationFailure.nonRetryable(`endpoint ${endpoint} is not running`, failureTypes.endpointRefused);
        }
        throw err;
      }
    },
  };
}
