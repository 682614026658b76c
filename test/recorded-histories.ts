// The event histories scripts/record-histories.ts records and test/replay.test.ts replays.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';

export const historiesDir = fileURLToPath(new URL('./histories/', import.meta.url));

/** One file of test/histories. The workflow id is kept: workflows derive pool and Job names from it. */
export interface RecordedHistory {
  scenario: string;
  workflowType: string;
  workflowId: string;
  /** Temporal's JSON form of the history (historyToJSON, the same as `temporal workflow show -o json`). */
  history: unknown;
}

/** Every file of test/histories: `<scenario>.json` as recorded, and older ones kept while a patch still guards their code path. */
export function loadRecordedHistories(): (RecordedHistory & HistoryAndWorkflowId & { file: string })[] {
  return readdirSync(historiesDir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const recorded = JSON.parse(readFileSync(`${historiesDir}${file}`, 'utf8')) as RecordedHistory;
      return { ...recorded, file, history: historyFromJSON(recorded.history) };
    });
}
