// `npm run schemas`: writes the JSON Schemas of every workflow input, generated from the zod
// schemas, into schemas/. Editors use them through a spec file's first line:
//   # yaml-language-server: $schema=../schemas/fine-tune-request.json
// test/json-schemas.test.ts fails when the committed files are out of date.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { fineTuneRequestSchema } from '../domain/fine-tune-request.js';
import { kaitoWorkspaceSchema } from '../domain/kaito-workspace.js';
import { promotionRequestSchema } from '../domain/promotion.js';
import { gpuCheckRequestSchema, reaperInputSchema, retrainInputSchema } from '../domain/workflow-inputs.js';

export const schemasDir = fileURLToPath(new URL('../schemas/', import.meta.url));

const inputs: Record<string, [z.ZodType, string]> = {
  'fine-tune-request.json': [fineTuneRequestSchema, 'fineTune workflow input (a fineTune request)'],
  'kaito-workspace.json': [kaitoWorkspaceSchema, 'KAITO tuning Workspace as aks-finetune accepts it'],
  'retrain-input.json': [retrainInputSchema, 'retrain workflow input'],
  'reap-idle-gpu-pools-input.json': [reaperInputSchema, 'reapIdleGpuPools workflow input'],
  'gpu-check-request.json': [gpuCheckRequestSchema, 'gpuCheck workflow input'],
  'promotion-request.json': [promotionRequestSchema, 'promoteAdapter workflow input'],
};

/** File name -> its JSON text. */
export function jsonSchemaFiles(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(inputs).map(([file, [schema, title]]) => [file, `${JSON.stringify({ title, ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) }, null, 2)}\n`]),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, text] of Object.entries(jsonSchemaFiles())) writeFileSync(`${schemasDir}${file}`, text);
  console.log(`Wrote ${Object.keys(inputs).length} JSON Schemas to schemas/`);
}
