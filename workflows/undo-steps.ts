// Cleanup and compensation steps that each run on their own (the saga pattern): one that fails is
// logged and recorded, and the next still runs, so a step that cannot finish never keeps GPUs
// billing because of another. Callers report the failures with the run's own error.
import { log } from '@temporalio/workflow';
import { rootMessage } from './root-cause.js';

export function undoSteps(kind: string): { attempt: (what: string, step: () => Promise<unknown>) => Promise<void>; failed: string[] } {
  const failed: string[] = [];
  const attempt = async (what: string, step: () => Promise<unknown>) => {
    try {
      await step();
    } catch (err) {
      failed.push(`${what}: ${rootMessage(err)}`);
      log.error(`${kind} step failed`, { step: what, error: rootMessage(err) });
    }
  };
  return { attempt, failed };
}
