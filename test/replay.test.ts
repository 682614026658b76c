// Replays the recorded histories (test/histories, written by `npm run histories:record`) against
// the current workflow code, bundled as the worker image bundles it. A failure means the change
// would break runs already in flight: guard it with patched() (docs/operations.md, "Upgrading the worker while
// runs are in flight"), or re-record only when no run of the old code can still be open.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../workers/config.js';
import { workflowCode, writeWorkflowBundle } from '../workers/worker.js';
import { loadRecordedHistories } from './recorded-histories.js';
import { config } from './support.js';

const histories = loadRecordedHistories();
const codePath = join(mkdtempSync(join(tmpdir(), 'workflow-bundle-')), 'workflow-bundle.js');

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') }); // a nondeterminism is still logged, with its details
  await writeWorkflowBundle(codePath); // what `npm run build:workflows` does for the image
});

describe('replay of recorded histories', () => {
  it('has a history for every scenario the upgrade promise covers', () => {
    expect([...new Set(histories.map((h) => h.scenario))].sort()).toEqual(['endpoint', 'fine-tune-cancel', 'fine-tune-deploy', 'fine-tune-failure', 'fine-tune-success', 'promotion', 'reaper', 'retrain']);
  });

  it('replays every history on the prebuilt workflow bundle without nondeterminism', async () => {
    const options = workflowCode({ ...config, workflowBundle: codePath });
    expect(options).toEqual({ workflowBundle: { codePath } }); // the image's path, not the sources
    const fileOf = new Map(histories.map((h) => [h.workflowId, h.file]));
    const replayed: string[] = [];
    const broken: string[] = [];
    for await (const result of Worker.runReplayHistories(options, histories)) {
      replayed.push(result.workflowId);
      if (result.error) broken.push(`test/histories/${fileOf.get(result.workflowId)} (${result.workflowId}): ${result.error.name}: ${result.error.message}`);
    }
    expect(broken, 'these recorded runs would break under the current workflow code').toEqual([]);
    expect(replayed).toHaveLength(histories.length);
  });

  it('refuses to start on a WORKFLOW_BUNDLE that does not exist, instead of bundling silently', () => {
    expect(() => workflowCode({ ...config, workflowBundle: join(tmpdir(), 'no-such-bundle.js') })).toThrow(ConfigError);
    expect(workflowCode({ ...config, workflowBundle: undefined })).toHaveProperty('workflowsPath');
  });
});
