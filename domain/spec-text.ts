// Spec text (YAML or JSON) into a value, at the edge: the CLI, the typed client and fineTune's
// parse activity use it; workflow code never parses text. Text over the cap is refused before
// parsing, aliases are bounded (no "billion laughs"), and syntax errors carry line and column.
import { type Document, isMap, isScalar, LineCounter, parseAllDocuments, visit } from 'yaml';

export const specSizeLimitBytes = 256 * 1024;

export class SpecTextError extends Error {}

const byteLength = (text: string) => new TextEncoder().encode(text).length;
const isWorkspace = (doc: unknown) => typeof doc === 'object' && doc !== null && (doc as { kind?: unknown }).kind === 'Workspace';

function refuseDuplicateKeys(doc: Document.Parsed, where: (offset: number) => string): void {
  visit(doc, {
    Map(_key, map) {
      if (!isMap(map)) return;
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key)) {
          const offset = isScalar(pair.key) ? (pair.key.range?.[0] ?? 0) : 0;
          throw new SpecTextError(`${where(offset)}: YAML syntax error: Map keys must be unique (${JSON.stringify(String(key)).slice(0, 40)})`);
        }
        seen.add(key);
      }
    },
  });
}

/**
 * One document of `text`: the only one, or in a multi-document file (PVCs plus a Workspace, as in
 * KAITO's own examples) the KAITO Workspace. `source` names the text in errors.
 */
export function parseSpecText(text: string, source: string): unknown {
  const size = byteLength(text);
  if (size > specSizeLimitBytes) throw new SpecTextError(`${source} is ${size} bytes; a spec may be at most ${specSizeLimitBytes} bytes (256 KiB)`);
  // The parser's own unique-key check is quadratic (seconds for a 256 KiB map): ours is linear.
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false, lineCounter });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const error = doc.errors[0];
    if (error) {
      const at = error.linePos?.[0];
      throw new SpecTextError(`${source}${at ? `:${at.line}:${at.col}` : ''}: YAML syntax error: ${error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
    }
    refuseDuplicateKeys(doc, (offset) => `${source}:${lineCounter.linePos(offset).line}:${lineCounter.linePos(offset).col}`);
  }
  const values = list.map((doc) => {
    try {
      return doc.toJS({ maxAliasCount: 100 }) as unknown;
    } catch (err) {
      throw new SpecTextError(`${source}: ${(err as Error).message}`);
    }
  });
  if (values.length === 0 || values.every((v) => v === null || v === undefined)) throw new SpecTextError(`${source} is empty`);
  if (values.length === 1) return values[0];
  const workspaces = values.filter(isWorkspace);
  if (workspaces.length !== 1) {
    throw new SpecTextError(`${source} has ${values.length} documents and ${workspaces.length} KAITO Workspaces; a multi-document file must hold exactly one Workspace`);
  }
  return workspaces[0];
}

/** A fineTune request from a spec file's value: a KAITO Workspace becomes { workspace }. */
export function requestFromSpec(value: unknown): unknown {
  return isWorkspace(value) ? { workspace: value } : value;
}
