// A KAITO Workspace given as text (the Temporal UI's path) is parsed here, not in workflow code:
// parsing is bounded (256 KiB cap, aliases limited) and a bad text fails the run at once.
import { ApplicationFailure } from '@temporalio/activity';
import { failureTypes } from '../../domain/failure-types.js';
import { parseSpecText, SpecTextError } from '../../domain/spec-text.js';

export function createWorkspaceTextActivities() {
  return {
    /** The Workspace object in `text` (YAML or JSON; a multi-document file's Workspace). */
    async parseWorkspaceText(text: string): Promise<unknown> {
      try {
        return parseSpecText(text, 'workspace');
      } catch (err) {
        if (err instanceof SpecTextError) throw ApplicationFailure.nonRetryable(err.message, failureTypes.invalidRequest, { problems: [err.message] });
        throw err;
      }
    },
  };
}
