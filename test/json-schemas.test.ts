// The published JSON Schemas are generated from the zod schemas; this fails when schemas/ is stale
// (run `npm run schemas`), and checks that every example points its editor at its schema.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jsonSchemaFiles, schemasDir } from '../scripts/json-schemas.js';

describe('JSON Schemas', () => {
  it('schemas/ holds exactly what the zod schemas generate', () => {
    const generated = jsonSchemaFiles();
    expect(readdirSync(schemasDir).sort()).toEqual(Object.keys(generated).sort());
    for (const [file, text] of Object.entries(generated)) expect(readFileSync(`${schemasDir}${file}`, 'utf8'), file).toBe(text);
  });

  it('refuses unknown keys in the published schema too', () => {
    const schema = JSON.parse(jsonSchemaFiles()['fine-tune-request.json']!) as { additionalProperties: boolean; properties: Record<string, { additionalProperties?: boolean }> };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.tuning!.additionalProperties).toBe(false);
  });

  it('every example names its schema for the YAML language server', () => {
    const examples = new URL('../examples/', import.meta.url);
    for (const file of readdirSync(examples)) {
      const text = readFileSync(new URL(file, examples), 'utf8');
      const schema = /^# yaml-language-server: \$schema=\.\.\/schemas\/([\w-]+\.json)$/m.exec(text)?.[1];
      expect(schema, file).toBeDefined();
      expect(Object.keys(jsonSchemaFiles()), file).toContain(schema);
    }
  });
});
