// Evaluation of an adapter before it serves users: a prompt suite (JSONL, one case a line), the
// scorers that judge an answer, the suite's result, and the promotion gate's decision. Pure, so
// workflows can decide with it and replays decide the same.
import { z } from 'zod';

/** Longest regex a suite may carry: suites come from requests, and a pattern runs against every answer. */
const maxPatternLength = 200;

const validRegex = (pattern: string) => {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
};

/** What an answer must satisfy: exactly one scorer. */
export const expectationSchema = z.union(
  [
    z.strictObject({ exact: z.string() }),
    z.strictObject({ contains: z.string().min(1) }),
    z.strictObject({ regex: z.string().min(1).max(maxPatternLength).refine(validRegex, 'not a valid regular expression') }),
    z.strictObject({ json: z.literal(true) }),
  ],
  { error: `one of {"exact": text}, {"contains": text}, {"regex": pattern up to ${maxPatternLength} characters}, {"json": true}` },
);
export type Expectation = z.infer<typeof expectationSchema>;

export const promptCaseSchema = z.strictObject({ prompt: z.string().min(1, 'a non-empty prompt'), expect: expectationSchema });
export type PromptCase = z.infer<typeof promptCaseSchema>;

/** Parses a JSONL suite; blank lines are skipped; every bad line is reported by its number. */
export function parsePromptSuite(jsonl: string): { cases: PromptCase[]; problems: string[] } {
  const cases: PromptCase[] = [];
  const problems: string[] = [];
  jsonl.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      problems.push(`line ${i + 1}: not JSON`);
      return;
    }
    const parsed = promptCaseSchema.safeParse(value);
    if (parsed.success) cases.push(parsed.data);
    else problems.push(...parsed.error.issues.map((issue) => `line ${i + 1}: ${[...issue.path].join('.') || 'case'}: ${issue.message}`));
  });
  if (cases.length === 0 && problems.length === 0) problems.push('the suite has no cases');
  return { cases, problems };
}

export interface CaseResult {
  prompt: string;
  passed: boolean;
  /** Why it failed, in words; absent when it passed. */
  reason?: string;
}

/** Judges one answer. Answers are compared as the model returned them, except trailing/leading whitespace for exact and JSON. */
export function scoreAnswer(expect: Expectation, answer: string): { passed: boolean; reason?: string } {
  if ('exact' in expect) return answer.trim() === expect.exact.trim() ? { passed: true } : { passed: false, reason: `not exactly ${JSON.stringify(expect.exact)}` };
  if ('contains' in expect) return answer.includes(expect.contains) ? { passed: true } : { passed: false, reason: `does not contain ${JSON.stringify(expect.contains)}` };
  if ('regex' in expect) return new RegExp(expect.regex).test(answer) ? { passed: true } : { passed: false, reason: `does not match /${expect.regex}/` };
  try {
    JSON.parse(answer.trim());
    return { passed: true };
  } catch {
    return { passed: false, reason: 'not valid JSON' };
  }
}

export interface SuiteResult {
  passed: number;
  total: number;
  /** passed / total, from 0 to 1. */
  passRate: number;
  cases: CaseResult[];
}

/** Scores every case against its answer (answers in the suite's order; a missing answer, e.g. a failed request, fails its case). */
export function scoreSuite(cases: PromptCase[], answers: (string | undefined)[]): SuiteResult {
  const results = cases.map((c, i): CaseResult => {
    const answer = answers[i];
    if (answer === undefined) return { prompt: c.prompt, passed: false, reason: 'no answer' };
    return { prompt: c.prompt, ...scoreAnswer(c.expect, answer) };
  });
  const passed = results.filter((r) => r.passed).length;
  return { passed, total: results.length, passRate: results.length ? passed / results.length : 0, cases: results };
}

export interface PromotionGate {
  /** The candidate's pass rate must be at least this (0 to 1). */
  minPassRate?: number;
  /** The candidate may trail production's pass rate on the same suite by at most this (0 to 1). */
  maxRegression?: number;
  /** The training-time eval loss must be at most this. */
  maxEvalLoss?: number;
}

export const promotionGateSchema = z.strictObject({
  minPassRate: z.number().min(0).max(1).optional(),
  maxRegression: z.number().min(0).max(1).optional(),
  maxEvalLoss: z.number().positive().optional(),
});

export interface GateEvidence {
  candidate: SuiteResult;
  /** Production's result on the same suite and server; absent when nothing serves yet. */
  production?: SuiteResult;
  /** eval_loss from the trainer's held-out split; absent when the run kept no split. */
  evalLoss?: number;
}

export interface GateDecision {
  promote: boolean;
  /** One line per criterion: what was measured against what was required. */
  reasons: string[];
}

const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`;

/** Applies every criterion the gate sets; the candidate is promoted only when all hold. */
export function gateDecision(gate: PromotionGate, evidence: GateEvidence): GateDecision {
  const checks: { ok: boolean; reason: string }[] = [];
  const rate = evidence.candidate.passRate;
  if (gate.minPassRate !== undefined) {
    checks.push({ ok: rate >= gate.minPassRate, reason: `pass rate ${percent(rate)} ${rate >= gate.minPassRate ? '≥' : '<'} required ${percent(gate.minPassRate)}` });
  }
  if (gate.maxRegression !== undefined) {
    if (!evidence.production) checks.push({ ok: true, reason: 'no production adapter to compare with' });
    else {
      const drop = evidence.production.passRate - rate;
      // Rates are ratios of small integers: compare in whole hundredths of a percent, not raw floats.
      const ok = Math.round(drop * 10000) <= Math.round(gate.maxRegression * 10000);
      checks.push({
        ok,
        reason: `pass rate ${percent(rate)} vs production ${percent(evidence.production.passRate)}: ${ok ? 'within' : 'worse than'} the allowed ${percent(gate.maxRegression)} regression`,
      });
    }
  }
  if (gate.maxEvalLoss !== undefined) {
    if (evidence.evalLoss === undefined) checks.push({ ok: false, reason: `no eval loss recorded, the gate requires ≤ ${gate.maxEvalLoss}` });
    else {
      const ok = evidence.evalLoss <= gate.maxEvalLoss;
      checks.push({ ok, reason: `eval loss ${evidence.evalLoss} ${ok ? '≤' : '>'} allowed ${gate.maxEvalLoss}` });
    }
  }
  if (checks.length === 0) checks.push({ ok: true, reason: 'the gate sets no criteria' });
  return { promote: checks.every((c) => c.ok), reasons: checks.map((c) => c.reason) };
}
