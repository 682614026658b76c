// What a promotion is asked to do (promoteAdapter's input, and the `promote` option of a fineTune
// request), and the watch window's verdict after the switch. Pure: the workflow validates its
// input and decides a rollback with it, so a replay decides the same.
import { z } from 'zod';
import { endpointSpecSchema } from './endpoint.js';
import { parsePromptSuite, type PromotionGate, type PromptCase, promotionGateSchema, type SuiteResult } from './evaluation.js';
import { type Checked, checkInput, dnsLabel, number, strict, text } from './schema.js';

/** A suite travels in the workflow's input and history: keep it well under Temporal's 2 MiB payload limit. */
export const maxSuiteBytes = 256 * 1024;
/** Cases a suite may hold: at a few seconds a prompt on a real GPU, twice (candidate and production), they fit the evaluation's 30 minutes. */
export const maxSuiteCases = 200;

/** An endpoint by name; its base model and VM size are needed only to create it (they are checked against a running one). */
export const endpointReferenceSchema = endpointSpecSchema.partial().required({ name: true });

export const approvalSchema = z.union(
  [z.literal('none'), strict({ required: z.literal(true), timeoutMinutes: number(0.05, 10_080) })],
  { error: '"none", or {"required": true, "timeoutMinutes": 0.05 to 10080}' },
);

export const watchSchema = strict({
  /** How long the error rate and the smoke prompts are watched after the switch (default: the endpoint's watchWindowMinutes). */
  minutes: number(0, 1_440).optional(),
  /** How many of the suite's first cases are the smoke prompts sent through the alias and to the previous version (default 5). */
  smokeCases: number(0, 100, { integer: true }).optional(),
  /** How far the alias's error rate may rise above the previous version's before it rolls back (0 to 1, default 0.01). */
  maxErrorRateIncrease: number(0, 1).optional(),
});

const suiteImage = text('an image reference (registry/repository[:tag|@digest]) of at most 255 characters', { pattern: /^[^\s]+$/ });

/** What fineTune's `promote` option and promoteAdapter share: where, under which alias, judged how. */
const promotionShape = {
  endpoint: endpointReferenceSchema,
  /** The stable model name clients call; versions load as `<alias>-v<n>`. */
  alias: dnsLabel(40, 'model alias'),
  /**
   * JSONL, one case a line: {"prompt": ..., "expect": {"exact"|"contains"|"regex"|"json": ...}};
   * in the request, or as a dataset image whose /data folder holds one .jsonl file.
   */
  suite: z.union([strict({ jsonl: text(`JSONL text of at most ${maxSuiteBytes} bytes`, { max: maxSuiteBytes }) }), strict({ image: suiteImage })], {
    error: `{"jsonl": JSONL text of at most ${maxSuiteBytes} bytes}, or {"image": a dataset image whose /data holds one .jsonl file}`,
  }),
  /** Every criterion must hold (default: none, the candidate passes). */
  gate: promotionGateSchema.optional(),
  /** Default "none": switched once the gate passes. */
  approval: approvalSchema.optional(),
  watch: watchSchema.optional(),
  /** The run namespace the endpoint lives in (default aks-finetune). */
  namespace: dnsLabel(63, 'namespace').optional(),
};

export const fineTunePromoteSchema = strict(promotionShape);
export type FineTunePromote = z.input<typeof fineTunePromoteSchema>;

export const promotionRequestSchema = strict({
  ...promotionShape,
  /** The adapter image, by digest. */
  image: text('an adapter image by digest: registry/repository@sha256:<64 hex>', { pattern: /^[^\s@]+@sha256:[0-9a-f]{64}$/, max: 400 }),
  /** The trainer's eval_loss on its held-out split, for the gate's maxEvalLoss. */
  evalLoss: number(0, 1_000_000).optional(),
});
export type PromotionRequest = z.input<typeof promotionRequestSchema>;

export interface PromotionPlan extends z.output<typeof promotionRequestSchema> {
  namespace: string;
  /** Empty until a suite given as an image is read (withSuiteCases). */
  gate: PromotionGate;
  approval: NonNullable<z.output<typeof approvalSchema>>;
  watch: z.output<typeof watchSchema>;
  cases: PromptCase[];
  smokeCases: PromptCase[];
  maxErrorRateIncrease: number;
}

export const promotionDefaults = { namespace: 'aks-finetune', smokeCases: 5, maxErrorRateIncrease: 0.01 };

/**
 * A watch window must end before the rollback window does: a regression found at its end must
 * still find the previous version loaded to roll back to. Either unknown (an endpoint spec that
 * leaves it to the default) passes: the defaults (10 and 60 minutes) fit.
 */
export function watchWindowProblems(watchMinutes: number | undefined, rollbackWindowMinutes: number | undefined): string[] {
  if (watchMinutes === undefined || rollbackWindowMinutes === undefined || watchMinutes <= rollbackWindowMinutes) return [];
  return [`the watch window (${watchMinutes} min) outlasts the endpoint's rollback window (${rollbackWindowMinutes} min): a regression found late could not be rolled back`];
}

/** The suite's cases, and its problems by line as a request's problems, for both fineTune's validation and promoteAdapter's. */
export function parseRequestSuite(jsonl: string): { cases: PromptCase[]; problems: string[] } {
  const { cases, problems } = parsePromptSuite(jsonl);
  const tooMany = cases.length > maxSuiteCases ? [`suite has ${cases.length} cases: at most ${maxSuiteCases} (each is asked of the candidate and of production within one 30-minute evaluation)`] : [];
  return { cases, problems: [...problems.map((p) => `suite.jsonl ${p}`), ...tooMany] };
}

/** The suite's problems as a request's (none for a suite given as an image: it is read later). */
export const suiteProblems = (suite: { jsonl: string } | { image: string }): string[] => ('jsonl' in suite ? parseRequestSuite(suite.jsonl).problems : []);

/** Checks a promotion request (any JSON value: runs also start from the Temporal UI), every problem at once. */
export function validatePromotionRequest(input: unknown): Checked<PromotionPlan> {
  const checked = checkInput(promotionRequestSchema, input ?? {}, 'request');
  if (!checked.ok) return checked;
  const request = checked.value;
  const plan: PromotionPlan = {
    ...request,
    namespace: request.namespace ?? promotionDefaults.namespace,
    gate: request.gate ?? {},
    approval: request.approval ?? 'none',
    watch: request.watch ?? {},
    cases: [],
    smokeCases: [],
    maxErrorRateIncrease: request.watch?.maxErrorRateIncrease ?? promotionDefaults.maxErrorRateIncrease,
  };
  return 'jsonl' in request.suite ? withSuiteCases(plan, request.suite.jsonl) : { ok: true, value: plan };
}

/** The plan with the suite's cases (and the smoke prompts, its first ones), or the suite's problems by line. */
export function withSuiteCases(plan: PromotionPlan, jsonl: string): Checked<PromotionPlan> {
  const { cases, problems } = parseRequestSuite(jsonl);
  if (problems.length) return { ok: false, problems };
  return { ok: true, value: { ...plan, cases, smokeCases: cases.slice(0, plan.watch.smokeCases ?? promotionDefaults.smokeCases) } };
}

/** Requests and server errors (5xx) a version answered through an alias, summed over the replicas. */
export interface TrafficCount {
  requests: number;
  errors: number;
}

export const errorRate = (c: TrafficCount | undefined): number => (c && c.requests > 0 ? c.errors / c.requests : 0);

/** What the watch window saw: the alias's traffic since the switch, the previous version's before it, and the smoke prompts on both. */
export interface WatchEvidence {
  current: TrafficCount;
  previous: TrafficCount;
  smoke: { current: SuiteResult; previous?: SuiteResult };
}

export interface WatchVerdict {
  rollback: boolean;
  reasons: string[];
}

const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`;

/** How much worse than the previous version the watch window lets the new one be. */
export interface WatchTolerance {
  /** The error rate may rise by this much (0 to 1). */
  maxErrorRateIncrease: number;
  /** The smoke prompts' pass rate may drop by this much (0 to 1): the gate's maxRegression, 0 when it sets none. */
  maxSmokeRegression: number;
}

/**
 * Rolls back when the alias fails more requests than the previous version did by more than the
 * allowed increase, or when the new version passes the smoke prompts worse than the previous one
 * on the same server by more than the allowed regression. With no previous version (a first
 * promotion), only the error rate counts.
 */
export function watchVerdict(evidence: WatchEvidence, tolerance: WatchTolerance): WatchVerdict {
  const reasons: string[] = [];
  let rollback = false;
  // Rates are ratios of small integers: compare in whole hundredths of a percent, not raw floats.
  const exceeds = (rise: number, allowed: number) => Math.round(rise * 10000) > Math.round(allowed * 10000);
  const now = errorRate(evidence.current);
  const before = errorRate(evidence.previous);
  if (exceeds(now - before, tolerance.maxErrorRateIncrease)) {
    rollback = true;
    reasons.push(`error rate ${percent(now)} (${evidence.current.errors}/${evidence.current.requests}) vs previous ${percent(before)}: more than ${percent(tolerance.maxErrorRateIncrease)} worse`);
  } else reasons.push(`error rate ${percent(now)} vs previous ${percent(before)}: within ${percent(tolerance.maxErrorRateIncrease)}`);
  const { current, previous } = evidence.smoke;
  if (previous) {
    const worse = exceeds(previous.passRate - current.passRate, tolerance.maxSmokeRegression);
    rollback ||= worse;
    reasons.push(`smoke prompts ${current.passed}/${current.total} vs previous ${previous.passed}/${previous.total}: ${worse ? 'worse than' : 'within'} the allowed ${percent(tolerance.maxSmokeRegression)} regression`);
  }
  return { rollback, reasons };
}

/** The router's request counter (domain/adapter-router.ts: one per replica, labelled with the requested model, the version it resolved to, the status code). */
export const routerRequestsMetric = 'adapter_router_requests_total';

/**
 * Requests and 5xx answers per version for calls that named `alias`, from one replica's
 * Prometheus text; a caller sums replicas with addTraffic.
 */
export function aliasTrafficByVersion(metricsText: string, alias: string): Record<string, TrafficCount> {
  const traffic: Record<string, TrafficCount> = {};
  for (const line of metricsText.split('\n')) {
    const match = /^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)/.exec(line);
    if (!match || match[1] !== routerRequestsMetric) continue;
    const labels = Object.fromEntries([...match[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.model !== alias || !labels.version) continue;
    const count = Number(match[3]);
    const total = (traffic[labels.version] ??= { requests: 0, errors: 0 });
    total.requests += count;
    if (labels.code?.startsWith('5')) total.errors += count;
  }
  return traffic;
}

export function addTraffic(a: Record<string, TrafficCount>, b: Record<string, TrafficCount>): Record<string, TrafficCount> {
  const sum = structuredClone(a);
  for (const [version, c] of Object.entries(b)) {
    const total = (sum[version] ??= { requests: 0, errors: 0 });
    total.requests += c.requests;
    total.errors += c.errors;
  }
  return sum;
}

/** What changed between two readings of a version's counters (a replica that restarted starts again from zero: never below 0). */
export const trafficSince = (now: TrafficCount | undefined, before: TrafficCount | undefined): TrafficCount => ({
  requests: Math.max(0, (now?.requests ?? 0) - (before?.requests ?? 0)),
  errors: Math.max(0, (now?.errors ?? 0) - (before?.errors ?? 0)),
});
