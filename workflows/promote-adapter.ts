// promoteAdapter: an adapter image → loaded on an endpoint as a candidate → evaluated against the
// version its alias serves, on the same server → gated → approved, if asked → switched → watched,
// and rolled back when it regresses. The endpoint's own workflow does every change (its Updates);
// this workflow decides. A gate failure or a rejection is a normal result (`rejected`, with the
// scores). After a failure or a cancel, what the run changed is undone in a scope that cannot be
// cancelled, each step on its own: a switched alias rolled back, a loaded candidate unloaded.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { type GateDecision, gateDecision, type SuiteResult } from '../domain/evaluation.js';
import { failureTypes } from '../domain/failure-types.js';
import { type PromotionPlan, type PromotionRequest, trafficSince, validatePromotionRequest, type WatchVerdict, watchVerdict, watchWindowProblems, withSuiteCases } from '../domain/promotion.js';
import { adapterProblems } from '../domain/vllm-server.js';
import { apiCalls, endpointUpdates, evaluations } from './activity-options.js';
import type { EndpointDescription } from './endpoint-api.js';
import { checkedInActivity, invalidInput } from './input-checks.js';
import {
  type ApprovalDecision,
  approveUpdate,
  type PromotionState,
  type PromotionStatus,
  promotionStatusQuery,
  rejectUpdate,
  type SuiteScore,
} from './promotion-api.js';
import { Endpoint, EvalPassRate, PromotionState as PromotionStateKey } from './search-attributes.js';
import { rootMessage } from './root-cause.js';
import { StepRecorder } from './step-recorder.js';
import { undoSteps } from './undo-steps.js';

export { type PromotionStatus, promotionStatusQuery, approveUpdate, rejectUpdate } from './promotion-api.js';

const registry = proxyActivities<Pick<Activities, 'inspectAdapterImage' | 'readSuiteImage' | 'recordEvaluationArtifact'>>(apiCalls);
const endpoints = proxyActivities<Pick<Activities, 'findEndpoint' | 'ensureEndpoint' | 'sendEndpointUpdate'>>(endpointUpdates);
const evaluation = proxyActivities<Pick<Activities, 'evaluateSuite' | 'watchAlias'>>(evaluations);

/** Readings of the alias per watch window: often enough to roll back well before the window ends. */
const watchReadings = 4;
/** Failed prompts a status lists per suite result (the counts cover all). */
const failedPromptsShown = 20;

interface Promotion {
  plan: PromotionPlan;
  status: PromotionStatus;
  recorder: StepRecorder<PromotionState>;
  /** Each Update this run sends carries `<this>:<step>`: a retried activity gets the first outcome, never a second change. */
  updateIdPrefix: string;
  endpoint?: EndpointDescription;
  /** What the run has changed on the endpoint, for compensation. */
  loaded: boolean;
  switched: boolean;
  approval?: { approved: boolean } & ApprovalDecision;
  /** The approval wait is over (decided or timed out): a late approve or reject is refused, not silently ignored. */
  approvalClosed: boolean;
}

export async function promoteAdapter(input: PromotionRequest): Promise<PromotionStatus> {
  const run = startPromotion(input);
  try {
    await inspect(run);
    await loadCandidate(run);
    const gate = await evaluate(run);
    if (!gate.promote) return await reject(run, { decision: 'gate-rejected', reason: gate.reasons.join('; ') });
    const approval = await awaitApproval(run);
    if (approval) return await reject(run, approval);
    await switchAlias(run);
    const verdict = await watch(run);
    if (verdict.rollback) {
      await rollBack(run, verdict.reasons.join('; '));
      await unloadCandidate(run); // served by nothing now: its slot is free for the next candidate
      return await finish(run, 'rolled-back');
    }
    return await finish(run, 'promoted');
  } catch (err) {
    throw await compensate(run, err);
  }
}

/** Validates the input (every problem at once, before anything is touched) and sets up the status, its query and the approval Updates. */
function startPromotion(input: PromotionRequest): Promotion {
  const { workflowId, runId } = workflowInfo();
  const request = input as Partial<PromotionRequest> | undefined;
  const status: PromotionStatus = {
    phase: 'inspecting', steps: [], decisions: [],
    endpoint: request?.endpoint?.name ?? '', alias: request?.alias ?? '', image: request?.image ?? '',
  };
  setHandler(promotionStatusQuery, () => status);
  const validation = validatePromotionRequest(input);
  if (!validation.ok) {
    status.phase = 'failed';
    status.error = validation.problems.join('; ');
    throw invalidInput('promoteAdapter request', validation.problems);
  }
  const run: Promotion = { plan: validation.value, status, recorder: new StepRecorder(status), updateIdPrefix: `${workflowId}:${runId}`, loaded: false, switched: false, approvalClosed: false };
  const decide = (approved: boolean) => (decision: ApprovalDecision) => {
    run.approval = { approved, ...decision };
  };
  const whileAwaiting = (_decision: ApprovalDecision) => {
    if (status.phase !== 'awaiting-approval' || run.approval || run.approvalClosed) throw new Error(`promotion ${workflowId} is ${status.phase}, not awaiting approval`);
  };
  setHandler(approveUpdate, decide(true), { validator: whileAwaiting });
  setHandler(rejectUpdate, decide(false), { validator: whileAwaiting });
  upsertSearchAttributes([{ key: Endpoint, value: run.plan.endpoint.name }]);
  enter(run, 'inspecting');
  return run;
}

function enter(run: Promotion, state: PromotionState): void {
  run.recorder.enter(state);
  upsertSearchAttributes([{ key: PromotionStateKey, value: state }]);
}

/**
 * The image and the endpoint, checked against each other before anything is created or loaded
 * (base model, LoRA, rank): against the running endpoint, or the spec that will create it.
 */
async function inspect(run: Promotion): Promise<void> {
  const { plan } = run;
  if ('image' in plan.suite) await readSuite(run, plan.suite.image);
  const adapter = await run.recorder.step('inspect adapter image', () => registry.inspectAdapterImage(plan.image), (a) => `base model ${a.baseModel ?? 'unknown'}`);
  const running = await run.recorder.step('find endpoint', () => endpoints.findEndpoint(plan.endpoint.name), (e) => (e ? `${e.name}: ${e.baseModel} on ${e.vmSize}, ${e.scale}` : 'none yet'));
  const target = running ?? (plan.endpoint.baseModel ? { baseModel: plan.endpoint.baseModel, maxLoraRank: plan.endpoint.maxLoraRank! } : undefined);
  const problems = [
    ...(target ? adapterProblems(adapter, target) : []),
    ...watchWindowProblems(plan.watch.minutes ?? running?.watchWindowMinutes ?? plan.endpoint.watchWindowMinutes, running?.rollbackWindowMinutes ?? plan.endpoint.rollbackWindowMinutes),
  ];
  if (problems.length) throw invalidInput(`adapter ${plan.image} for endpoint ${plan.endpoint.name}`, problems);
  run.endpoint = await run.recorder.step(
    running ? 'check endpoint' : 'create endpoint',
    () => endpoints.ensureEndpoint({ spec: plan.endpoint, namespace: plan.namespace }),
    (e) => `${e.name}: ${e.baseModel} on ${e.vmSize}, ${e.scale}`,
  );
  run.status.previousVersion = run.endpoint.aliases.find((a) => a.alias === plan.alias)?.versionName;
}

/** A suite given as a dataset image: read, then checked by line like one given in the request. */
async function readSuite(run: Promotion, image: string): Promise<void> {
  const jsonl = await checkedInActivity('promoteAdapter request', run.recorder.step('read suite image', () => registry.readSuiteImage(image)));
  const withCases = withSuiteCases(run.plan, jsonl);
  if (!withCases.ok) throw invalidInput('promoteAdapter request', withCases.problems);
  run.plan = withCases.value;
}

const sendUpdate = (run: Promotion, step: string, update: Parameters<Activities['sendEndpointUpdate']>[1], args: [unknown]) =>
  endpoints.sendEndpointUpdate(run.plan.endpoint.name, update, args, `${run.updateIdPrefix}:${step}`);

async function loadCandidate(run: Promotion): Promise<void> {
  enter(run, 'loading');
  run.loaded = true; // from the moment the Update may land: compensation unloads whatever it loaded
  const { versionName } = await run.recorder.step(
    'load candidate',
    () => sendUpdate(run, 'load', 'loadCandidate', [{ alias: run.plan.alias, image: run.plan.image }]) as Promise<{ versionName: string }>,
    (r) => `${r.versionName} on every replica`,
  );
  run.status.versionName = versionName;
}

const score = (r: SuiteResult): SuiteScore => ({
  passed: r.passed, total: r.total, passRate: r.passRate,
  failed: r.cases.filter((c) => !c.passed).slice(0, failedPromptsShown).map(({ prompt, reason }) => ({ prompt, reason })),
});

/** The suite for the candidate and, when the alias serves one, production: same prompts, same server, same pass. */
async function evaluate(run: Promotion): Promise<GateDecision> {
  const { plan, status } = run;
  enter(run, 'evaluating');
  const models = [status.versionName!, ...(status.previousVersion ? [status.previousVersion] : [])];
  const [candidate, production] = await run.recorder.step(
    'evaluate',
    () => evaluation.evaluateSuite({ namespace: plan.namespace, service: plan.endpoint.name, models, cases: plan.cases }),
    ([c, p]) => `candidate ${c!.passed}/${c!.total}${p ? `, production ${p.passed}/${p.total}` : ''}`,
  );
  status.scores = { candidate: score(candidate!), production: production && score(production), evalLoss: plan.evalLoss };
  upsertSearchAttributes([{ key: EvalPassRate, value: candidate!.passRate }]);
  status.gate = gateDecision(plan.gate, { candidate: candidate!, production, evalLoss: plan.evalLoss });
  return status.gate;
}

/** With approval required: waits for approve or reject; returns the rejection (or the timeout), undefined when approved. */
async function awaitApproval(run: Promotion): Promise<PromotionStatus['decisions'][number] | undefined> {
  const { approval } = run.plan;
  if (approval === 'none') return undefined;
  enter(run, 'awaiting-approval');
  const decided = await condition(() => run.approval !== undefined, approval.timeoutMinutes * 60_000);
  run.approvalClosed = true;
  const at = new Date().toISOString();
  if (!decided) return { at, decision: 'approval-timed-out', reason: `no decision within ${approval.timeoutMinutes} minutes` };
  const { approved, by, reason } = run.approval!;
  if (!approved) return { at, decision: 'rejected', by, reason };
  run.status.decisions.push({ at, decision: 'approved', by, reason });
  return undefined;
}

/** Not promoted: the candidate is unloaded, production keeps serving, the run ends `rejected` with its scores. */
async function reject(run: Promotion, decision: Omit<PromotionStatus['decisions'][number], 'at'> & { at?: string }): Promise<PromotionStatus> {
  run.status.decisions.push({ ...decision, at: decision.at ?? new Date().toISOString() });
  await unloadCandidate(run);
  return finish(run, 'rejected');
}

async function unloadCandidate(run: Promotion): Promise<void> {
  // A load cut short (a cancel while its Update ran) may still have landed: asking again with the
  // same Update id returns its outcome, never a second load. A load that failed left nothing.
  const versionName =
    run.status.versionName ??
    (await (sendUpdate(run, 'load', 'loadCandidate', [{ alias: run.plan.alias, image: run.plan.image }]) as Promise<{ versionName: string }>).then(
      (r) => r.versionName,
      () => undefined,
    ));
  if (!versionName) return;
  await run.recorder.step('unload candidate', () => sendUpdate(run, 'unload', 'unload', [{ versionName }]), () => versionName);
  run.loaded = false;
}

async function switchAlias(run: Promotion): Promise<void> {
  enter(run, 'switching');
  run.switched = true;
  const switched = await run.recorder.step(
    'switch alias',
    () => sendUpdate(run, 'promote', 'promote', [{ versionName: run.status.versionName! }]) as Promise<{ alias: string; versionName: string; previous?: string }>,
    (r) => `${r.alias} → ${r.versionName}${r.previous ? ` (was ${r.previous})` : ''}`,
  );
  run.status.previousVersion = switched.previous;
}

/**
 * The watch window: readings spread over it compare the alias's error rate since the switch with
 * the previous version's before it, and the smoke prompts on both. The first regression ends it.
 * A first promotion has nothing to compare with or return to: it is not watched.
 */
async function watch(run: Promotion): Promise<WatchVerdict> {
  const { plan, status } = run;
  const minutes = plan.watch.minutes ?? run.endpoint!.watchWindowMinutes;
  if (!status.previousVersion || minutes === 0) {
    status.watch = { rollback: false, reasons: [status.previousVersion ? 'no watch window' : 'no previous version to compare with or roll back to'] };
    return status.watch;
  }
  enter(run, 'watching');
  const read = () =>
    evaluation.watchAlias({ namespace: plan.namespace, endpoint: plan.endpoint.name, alias: plan.alias, previousVersion: status.previousVersion, smokeCases: plan.smokeCases });
  return run.recorder.step('watch', async () => {
    // The first reading, just after the switch, is the baseline of the counters, and its smoke prompts already count.
    const baseline = await read();
    let now = baseline;
    for (let reading = 0; ; reading++) {
      status.watch = watchVerdict(
        {
          current: trafficSince(now.traffic[status.versionName!], baseline.traffic[status.versionName!]),
          previous: trafficSince(baseline.traffic[status.previousVersion!], undefined),
          smoke: now.smoke,
        },
        { maxErrorRateIncrease: plan.maxErrorRateIncrease, maxSmokeRegression: plan.gate.maxRegression ?? 0 },
      );
      if (status.watch.rollback || reading === watchReadings) return status.watch;
      await sleep((minutes * 60_000) / watchReadings);
      now = await read();
    }
  }, (v) => v.reasons.join('; '));
}

async function rollBack(run: Promotion, reason: string): Promise<void> {
  await run.recorder.step('roll back', () => sendUpdate(run, 'rollback', 'rollback', [{ alias: run.plan.alias }]), () => `${run.plan.alias} → ${run.status.previousVersion}`);
  run.switched = false;
  run.status.decisions.push({ at: new Date().toISOString(), decision: 'rolled-back', reason });
}

async function finish(run: Promotion, state: 'promoted' | 'rejected' | 'rolled-back'): Promise<PromotionStatus> {
  await recordLineage(run, state);
  enter(run, state);
  return run.status;
}

/**
 * The evaluation and its outcome become part of the adapter's lineage (an OCI artifact that
 * refers to the image). The outcome stands either way: a registry that refuses the artifact
 * after its retries is reported in the status, and never undoes a promotion.
 */
async function recordLineage(run: Promotion, outcome: PromotionState): Promise<void> {
  const { plan, status } = run;
  const evaluation = {
    workflowId: workflowInfo().workflowId, endpoint: plan.endpoint.name, alias: plan.alias, versionName: status.versionName, outcome,
    scores: status.scores, gate: status.gate, decisions: status.decisions, watch: status.watch,
  };
  try {
    const recorded = await run.recorder.step('record lineage', () => registry.recordEvaluationArtifact({ adapterImage: plan.image, evaluation }), (r) => r.digest);
    status.lineage = { artifactDigest: recorded.digest, referrersTag: recorded.referrersTag };
  } catch (err) {
    if (isCancellation(err)) throw err;
    status.lineage = { error: rootMessage(err) };
  }
}

/**
 * After a failure or a cancel: the alias goes back to the previous version if this run switched
 * it, and the candidate is unloaded if this run loaded it, each step on its own. Returns what the
 * run fails with: the original error, with any compensation failure added.
 */
async function compensate(run: Promotion, err: unknown): Promise<unknown> {
  run.status.error = rootMessage(err);
  const { attempt, failed } = undoSteps('compensation');
  await CancellationScope.nonCancellable(async () => {
    if (run.switched && run.status.previousVersion) await attempt('roll back', () => rollBack(run, `the promotion failed: ${run.status.error}`));
    if (run.loaded && !run.switched) await attempt('unload candidate', () => unloadCandidate(run));
  });
  enter(run, 'failed');
  if (failed.length === 0) return err;
  return ApplicationFailure.create({ message: `${rootMessage(err)} (undoing it also failed: ${failed.join('; ')})`, nonRetryable: true, type: failureTypes.endpointRefused, cause: err as Error });
}
