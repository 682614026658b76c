// The determinism rules for workflow code are enforced by lint, not by review.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();
const lintWorkflow = async (code: string) => {
  const [result] = await eslint.lintText(code, { filePath: 'workflows/example.ts' });
  return result!.messages.map((m) => m.message);
};

describe('workflow lint rules', () => {
  it('forbid Node built-ins in workflow code', async () => {
    const messages = await lintWorkflow(`import { readFileSync } from 'node:fs';\nexport const f = readFileSync;\n`);
    expect(messages.some((m) => m.includes('Workflow code must be deterministic: no Node built-ins.'))).toBe(true);
  });

  it('forbid value imports of activities, and allow type imports', async () => {
    const messages = await lintWorkflow(`import { createActivities } from '../activities/index.js';\nexport const f = createActivities;\n`);
    expect(messages.some((m) => m.includes('Import activities with `import type`'))).toBe(true);
    expect(await lintWorkflow(`import type { Activities } from '../activities/index.js';\nexport type A = Activities;\n`)).toEqual([]);
  });

  it('forbid SDK clients of external systems in workflow code', async () => {
    const messages = await lintWorkflow(`import { KubeConfig } from '@kubernetes/client-node';\nexport const k = KubeConfig;\n`);
    expect(messages.some((m) => m.includes('do it in an activity'))).toBe(true);
  });
});
