// lineageSummary: what `endpoint describe` prints under each served alias.
import { describe, expect, it } from 'vitest';
import { lineageSummary } from '../domain/lineage.js';

const annotations = {
  'sh.kaito.model.name': 'phi-3-mini-4k-instruct',
  'aks-finetune.io/workflow-id': 'fine-tune-support',
  'aks-finetune.io/method': 'qlora',
  'aks-finetune.io/dataset': 'https://example.com/support.jsonl',
  'org.opencontainers.image.created': '2026-11-28T10:00:00Z',
};
const evaluation = (endpoint: string, versionName: string, outcome: string, passed: number) => ({
  workflowId: `promote-${versionName}`, endpoint, versionName, outcome, scores: { candidate: { passed, total: 4, passRate: passed / 4 }, evalLoss: 1.25 },
});

describe('lineageSummary', () => {
  it('says what the image was trained from, and the evaluation recorded for the served version on this endpoint', () => {
    const lines = lineageSummary(annotations, [evaluation('support', 'bot-v2', 'promoted', 4), evaluation('support', 'bot-v1', 'rejected', 1), evaluation('other', 'bot-v2', 'rejected', 0)], { endpoint: 'support', versionName: 'bot-v2' });
    expect(lines).toEqual([
      'trained by fine-tune-support: qlora on phi-3-mini-4k-instruct, dataset https://example.com/support.jsonl, 2026-11-28T10:00:00Z',
      'scored: 4/4 (100.0%), eval loss 1.25, promoted by promote-bot-v2',
    ]);
  });

  it('says so when the image records no training run and no evaluation was recorded', () => {
    expect(lineageSummary({}, [], { endpoint: 'support', versionName: 'bot-v1' })).toEqual(['trained by: not recorded in the image', 'scored: no evaluation recorded']);
  });
});
