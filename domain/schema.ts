// Building blocks for the workflow input schemas (zod 4, which runs in Temporal's workflow
// sandbox) and one way to report what is wrong: every problem names the field path and what is
// allowed, and echoes at most a short, truncated value. Each leaf carries its "what is allowed"
// text as its zod error, so every issue on it reads the same.
import { z } from 'zod';

/** What a problem echoes of a value: enough to recognise it, never a whole document or secret-length string. */
export function echo(value: unknown, max = 32): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// Every leaf helper below sets one message, the "what is allowed" text.
export const boolean = () => z.boolean({ error: 'true or false (not a string)' });

export function number(min: number, max: number, options: { integer?: boolean; minExclusive?: boolean } = {}) {
  const allowed = `${options.integer ? 'an integer' : 'a number'} ${options.minExclusive ? `above ${min} and up to` : `from ${min} to`} ${max}`;
  const base = options.integer ? z.int({ error: allowed }) : z.number({ error: allowed });
  return (options.minExclusive ? base.gt(min, { error: allowed }) : base.min(min, { error: allowed })).max(max, { error: allowed });
}

export function text(allowed: string, options: { pattern?: RegExp; max?: number; min?: number } = {}) {
  let schema = z.string({ error: allowed }).min(options.min ?? 1, { error: allowed }).max(options.max ?? 255, { error: allowed });
  if (options.pattern) schema = schema.regex(options.pattern, { error: allowed });
  return schema;
}

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `one of ${values.map((v) => `"${v}"`).join(', ')}` });

export const list = <T extends z.ZodType>(element: T, min: number, max: number, what: string) =>
  z.array(element, { error: `a list of ${what}` }).min(min, { error: `a list of ${min} to ${max} ${what}` }).max(max, { error: `a list of ${min} to ${max} ${what}` });

/** An object that refuses unknown keys (they are reported with a did-you-mean suggestion). */
export const strict = <T extends z.ZodRawShape>(shape: T, allowed = 'an object (a mapping of fields)') => z.strictObject(shape, { error: allowed });

/** A field a KAITO Workspace may carry but this product does not honour: refused with the reason. */
export const refused = (reason: string) => z.never({ error: reason }).optional();

export const dnsLabelPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsLabel = (max = 63, what = 'name') =>
  text(`a ${what}: a DNS label of at most ${max} characters (lowercase letters, digits, '-')`, { pattern: dnsLabelPattern, max });
export const dnsSubdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const dnsSubdomainRule = "lowercase letters, digits, '-' and '.', at most 253 characters";
export const dnsSubdomain = (what: string) => text(`a ${what} name: ${dnsSubdomainRule}`, { pattern: dnsSubdomainPattern, max: 253 });

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The known key a typo most likely meant, if any is close. */
export function didYouMean(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase();
  // A shortened or lengthened name (pollInterval, policies) is as likely as a typo.
  const stem = known.find((k) => Math.min(k.length, key.length) >= 4 && (k.toLowerCase().startsWith(lower.slice(0, Math.max(4, k.length - 1))) || lower.startsWith(k.toLowerCase())));
  const scored = known.map((k) => ({ k, d: distance(key, k) })).sort((x, y) => x.d - y.d);
  const best = scored[0];
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? best.k : stem;
}

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; element?: z.ZodType; valueType?: z.ZodType; in?: z.ZodType; options?: z.ZodType[] };
const defOf = (schema: z.ZodType) => (schema as unknown as { def: Def }).def;

/** The fields of the object schema at `path`, for suggestions. */
function fieldsAt(schema: z.ZodType, path: PropertyKey[]): string[] {
  let current: z.ZodType | undefined = schema;
  const rest = [...path];
  while (current) {
    const def = defOf(current);
    if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable') current = def.innerType;
    else if (def.type === 'pipe') current = def.in;
    else if (def.type === 'union') current = def.options?.find((o) => defOf(o).type === 'object');
    else if (rest.length === 0) return def.type === 'object' ? Object.keys(def.shape ?? {}) : [];
    else if (def.type === 'object') current = def.shape?.[String(rest.shift())];
    else if (def.type === 'array' || def.type === 'record') {
      rest.shift();
      current = def.type === 'array' ? def.element : def.valueType;
    } else return [];
  }
  return [];
}

const pathText = (path: PropertyKey[]) =>
  path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '');

/** Problems reported at most: a spec of thousands of bad keys gets a readable answer, quickly. */
export const maxProblems = 50;

/** Readable problems for a failed parse: one line per issue (per unknown key). */
export function problemsOf(schema: z.ZodType, error: z.ZodError, root: string): string[] {
  return error.issues.flatMap((issue): string[] => {
    const at = pathText(issue.path);
    const field = at || root;
    if (issue.code === 'unrecognized_keys') {
      const known = fieldsAt(schema, issue.path);
      const more = issue.keys.length - maxProblems;
      return [...issue.keys.slice(0, maxProblems).map((key) => {
        const name = at ? `${at}.${key}` : key;
        const guess = didYouMean(key, known);
        const hint = guess ? `: did you mean ${at ? `${at}.` : ''}${guess}?` : known.length > 30 ? ` (none of the ${known.length} known fields here is close)` : `; known fields here: ${known.join(', ')}`;
        return `${name} is not a known field${hint}`;
      }), ...(more > 0 ? [`... and ${more} more unknown fields in ${field}`] : [])];
    }
    if (issue.code === 'invalid_type' && issue.expected === 'never') return [`${field} is not supported: ${issue.message}`];
    if (issue.input === undefined && issue.code === 'invalid_type') return [`${field} is required: ${issue.message}`];
    if (issue.code === 'custom') return [`${field}: ${issue.message}`];
    return [`${field} must be ${issue.message}, not ${echo(issue.input)}`];
  });
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };


/** Parses a workflow input with its schema; `root` names the whole input in problems. */
export function checkInput<S extends z.ZodType>(schema: S, input: unknown, root: string): Checked<z.infer<S>> {
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return { ok: true, value: result.data };
  const problems = problemsOf(schema, result.error, root);
  return { ok: false, problems: problems.length > maxProblems + 1 ? [...problems.slice(0, maxProblems), `... and ${problems.length - maxProblems} more problems`] : problems };
}
