// The chaos run's audit: from what the driver, the fault injector and the observers recorded,
// the figures the issue asks for, each check with what it must be, and whether the run passed.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedPool } from '../../activities/azure/node-pools.js';
import type { RunObject } from '../../activities/kubernetes/run-objects.js';
import { poolOwner } from '../../domain/pool-tags.js';
import type { FineTuneStatus } from '../../workflows/fine-tune.js';
import type { InjectedFault } from './faults.js';
import type { Recovery, SeenJob } from './observe.js';
import { percentile } from '../percentile.js';
import type { RunFailure } from '../../client/run-failure.js';

export type RunKind = 'fine-tune' | 'fine-tune-deploy' | 'retrain';

export interface Execution {
  workflowId: string;
  runId: string;
  /** Temporal's execution status once closed (COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT), else RUNNING. */
  state: string;
  closedAt?: string;
  /** The root cause of a failure, as the CLI shows it (client/run-failure.ts): its type and message. */
  cause?: RunFailure;
  status?: FineTuneStatus;
}

export interface ChaosRun extends Execution {
  index: number;
  kind: RunKind;
  /** Repository and tag of the adapter image the run (or its child) pushes. */
  output: { repository: string; tag: string };
  /** A retrain run's fineTune child. */
  child?: Execution;
}

/**
 * The endpoint every chaos run serves (when it runs one) and the promotion into it: how each
 * ended, whether its alias answered before the retire, and what of the endpoint was left after.
 */
export interface ServingRecord {
  /** The endpoint workflow (followed by workflow id: continue-as-new changes its run id); COMPLETED only through retire. */
  endpoint: Execution & { retireSent: boolean; retireError?: string };
  /** The promoteAdapter run and the phase its status query last reported. */
  promotion: Execution & { phase?: string };
  /** The alias through the endpoint's Service, before the retire: 200 or why not. */
  alias: { answered: boolean; detail: string };
  /** Pools and objects the endpoint's workflow id owns, read once its workflow completed. */
  leftAfterRetire: { pools: string[]; objects: string[] };
}

export interface AuditInput {
  seed: number;
  runs: ChaosRun[];
  faults: InjectedFault[];
  timeLimitMinutes: number;
  wallSeconds: number;
  jobs: SeenJob[];
  /** What is left without an open owner, in every cluster the worker serves (cluster: a target's name; none for the home cluster). */
  leftovers: { pools: (ManagedPool & { cluster?: string })[]; objects: (RunObject & { cluster?: string })[] };
  /** Registry storage: which digests a tag has pointed to. */
  registryRoot: string;
  gpuMinutesAfterEnd: Map<string, number>;
  recoveries: Recovery[];
  /** Absent when the run served no endpoint (`--endpoints 0`). */
  serving?: ServingRecord;
}

/** How long a run may take to move again after a worker kill. */
export const maxRecoverySeconds = 60;

/** Why an execution did not complete, when an injected fault explains it; undefined otherwise. */
function injectedCause(execution: Execution, faults: InjectedFault[], parent: ChaosRun | undefined, quotaLeft: { n: number }): string | undefined {
  const aimedAt = (kind: InjectedFault['kind'], runId: string | undefined) => faults.some((f) => f.kind === kind && f.outcome === 'injected' && f.target?.runId === runId);
  switch (execution.state) {
    case 'TERMINATED':
      return aimedAt('terminate', execution.runId) ? 'terminated by the fault injector' : undefined;
    case 'CANCELLED':
      if (aimedAt('cancel', execution.runId)) return 'cancelled by the fault injector';
      if (parent && (aimedAt('cancel', parent.runId) || aimedAt('terminate', parent.runId))) return 'its retrain run was cancelled or terminated by the fault injector';
      return undefined;
    case 'FAILED': {
      const { type, message } = execution.cause ?? { message: '' };
      if (type === 'TrainingFailed' && /OOMKilled/.test(message) && aimedAt('trainer-oom', execution.runId)) return 'trainer OOMKilled by the fault injector';
      if (type === 'GpuQuotaExceeded' && quotaLeft.n > 0) {
        quotaLeft.n -= 1;
        return 'QuotaExceeded injected into ARM';
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

const tuningJob = /-train(-r\d+)?$/;

export function audit(input: AuditInput) {
  const { runs, faults } = input;
  const injected = faults.filter((f) => f.outcome === 'injected');
  const faultsByKind: Record<string, number> = {};
  for (const f of injected) faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1;
  const skippedByKind: Record<string, number> = {};
  for (const f of faults.filter((x) => x.outcome === 'skipped')) skippedByKind[f.kind] = (skippedByKind[f.kind] ?? 0) + 1;

  const endStates: Record<string, Record<string, number>> = {};
  for (const run of runs) {
    const byKind = (endStates[run.kind] ??= {});
    byKind[run.state] = (byKind[run.state] ?? 0) + 1;
    if (run.child) {
      const children = (endStates['retrain child fineTune'] ??= {});
      children[run.child.state] = (children[run.child.state] ?? 0) + 1;
    }
  }

  const notTerminal = [...runs, ...runs.flatMap((r) => (r.child ? [r.child] : []))].filter((e) => e.state === 'RUNNING').map((e) => e.workflowId);

  const quotaLeft = { n: faultsByKind['arm-quota'] ?? 0 };
  const failedByInjectedFault: { workflowId: string; state: string; why: string }[] = [];
  const otherFailures: { workflowId: string; state: string; cause: string }[] = [];
  const classify = (execution: Execution, parent?: ChaosRun, childWhy?: string) => {
    if (execution.state === 'COMPLETED' || execution.state === 'RUNNING') return;
    // A parent that failed because its child did is explained by the child (and uses no quota fault of its own).
    const why = childWhy ?? injectedCause(execution, faults, parent, quotaLeft);
    const cause = execution.cause ? `${execution.cause.type ?? 'failure'}: ${execution.cause.message}` : execution.state;
    if (why) failedByInjectedFault.push({ workflowId: execution.workflowId, state: execution.state, why });
    else otherFailures.push({ workflowId: execution.workflowId, state: execution.state, cause });
  };
  for (const run of runs) {
    if (run.child) classify(run.child, run);
    const child = run.child && failedByInjectedFault.find((f) => f.workflowId === run.child!.workflowId);
    classify(run, undefined, child && run.state === 'FAILED' ? `its fineTune child: ${child.why}` : undefined);
  }

  // The endpoint and its promotion: the endpoint must complete through the retire this run sent;
  // the promotion must end promoted unless an injected fault explains it (the same rule as above).
  const serving = input.serving;
  const servingProblems: { endpointNotRetired: string[]; promotionNotPromoted: string[]; aliasNotAnswering: string[]; endpointLeftAfterRetire: string[] } = {
    endpointNotRetired: [],
    promotionNotPromoted: [],
    aliasNotAnswering: [],
    endpointLeftAfterRetire: [],
  };
  if (serving) {
    const { endpoint, promotion } = serving;
    endStates['endpoint'] = { [endpoint.state]: 1 };
    endStates['promotion'] = { [promotion.state === 'COMPLETED' ? `COMPLETED ${promotion.phase ?? '?'}` : promotion.state]: 1 };
    if (!endpoint.retireSent || endpoint.state !== 'COMPLETED') {
      const cause = endpoint.cause ? `, ${endpoint.cause.type ?? 'failure'}: ${endpoint.cause.message}` : '';
      servingProblems.endpointNotRetired.push(`${endpoint.workflowId} ${endpoint.state}${endpoint.retireSent ? '' : ', retire not sent'}${endpoint.retireError ? ` (retire: ${endpoint.retireError})` : ''}${cause}`);
    }
    if (!(promotion.state === 'COMPLETED' && promotion.phase === 'promoted')) {
      const why = promotion.state === 'RUNNING' || promotion.state === 'COMPLETED' ? undefined : injectedCause(promotion, faults, undefined, quotaLeft);
      const cause = promotion.cause ? `${promotion.cause.type ?? 'failure'}: ${promotion.cause.message}` : `${promotion.state}, phase ${promotion.phase ?? 'unknown'}`;
      if (why) failedByInjectedFault.push({ workflowId: promotion.workflowId, state: promotion.state, why });
      else servingProblems.promotionNotPromoted.push(`${promotion.workflowId} ${promotion.state}: ${cause}`);
    }
    if (!serving.alias.answered) servingProblems.aliasNotAnswering.push(serving.alias.detail);
    servingProblems.endpointLeftAfterRetire.push(...serving.leftAfterRetire.pools.map((p) => `pool ${p}`), ...serving.leftAfterRetire.objects);
  }

  // Tuning Jobs per run: one, plus one per node-loss recovery of the training step; a second Job
  // under one name (a second UID) is a duplicate too.
  const recoveriesOf = new Map<string, number>();
  for (const e of [...runs, ...runs.flatMap((r) => (r.child ? [r.child] : []))]) {
    recoveriesOf.set(e.runId, e.status?.capacityRecoveries.filter((c) => c.step === 'train').length ?? 0);
  }
  const tuningJobs = new Map<string, SeenJob[]>();
  for (const job of input.jobs.filter((j) => tuningJob.test(j.name) && j.runId)) tuningJobs.set(job.runId!, [...(tuningJobs.get(job.runId!) ?? []), job]);
  const duplicateTuningJobs = [...tuningJobs.entries()].flatMap(([runId, jobs]) => {
    const names = new Set(jobs.map((j) => j.name));
    const extra = jobs.length - names.size + Math.max(0, names.size - 1 - (recoveriesOf.get(runId) ?? 0));
    return extra > 0 ? [{ runId, jobs: jobs.map((j) => `${j.namespace}/${j.name} (${j.uid})`), duplicates: extra }] : [];
  });

  const digestsOf = (repository: string, tag: string): string[] => {
    const dir = join(input.registryRoot, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'index/sha256');
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const differentDigests = runs
    .map((r) => ({ workflowId: r.workflowId, image: `${r.output.repository}:${r.output.tag}`, digests: digestsOf(r.output.repository, r.output.tag) }))
    .filter((d) => d.digests.length > 1);

  const inCluster = (c: { cluster?: string }) => (c.cluster ? ` in ${c.cluster}` : '');
  const leftoverPools = input.leftovers.pools.map((p) => `${p.name}${inCluster(p)} (owner ${poolOwner(p.tags).workflowId ?? 'none'}, ${p.count} node(s), ${p.provisioningState})`);
  const leftoverObjects = input.leftovers.objects.map((o) => `${o.kind} ${o.namespace}/${o.name}${inCluster(o)} (owner ${o.owner.workflowId ?? 'none'})`);

  const gpuAfterEnd = [...input.gpuMinutesAfterEnd.entries()].map(([run, minutes]) => ({ run, minutes: Math.round(minutes * 100) / 100 }));
  // A run a fault ended before it moved again has no recovery time: it is listed, not measured.
  const measured = input.recoveries.filter((r) => !r.runEndedFirst);
  const recoverySeconds = measured.map((r) => r.seconds).filter((s): s is number => s !== undefined);
  const notRecovered = measured.filter((r) => r.seconds === undefined);
  const recovery = {
    kills: injected.filter((f) => f.kind === 'kill-one-worker' || f.kind === 'kill-all-workers').length,
    activitiesHit: input.recoveries.length,
    runEndedFirst: input.recoveries.length - measured.length,
    p50Seconds: percentile(recoverySeconds, 0.5),
    maxSeconds: recoverySeconds.length ? Math.max(...recoverySeconds) : undefined,
    notRecoveredWithin3Minutes: notRecovered.length,
    samples: input.recoveries,
  };

  const checks = {
    notTerminalWithinLimit: notTerminal.length,
    failedForOtherReasons: otherFailures.length,
    leftoverPools: leftoverPools.length,
    leftoverObjects: leftoverObjects.length,
    duplicateTuningJobs: duplicateTuningJobs.reduce((n, d) => n + d.duplicates, 0),
    runsWithDifferentDigests: differentDigests.length,
    recoveriesOverOneMinute: measured.filter((r) => r.seconds === undefined || r.seconds > maxRecoverySeconds).length,
    endpointNotRetired: servingProblems.endpointNotRetired.length,
    promotionNotPromoted: servingProblems.promotionNotPromoted.length,
    aliasNotAnswering: servingProblems.aliasNotAnswering.length,
    endpointLeftAfterRetire: servingProblems.endpointLeftAfterRetire.length,
  };
  return {
    seed: input.seed,
    runs: runs.length,
    timeLimitMinutes: input.timeLimitMinutes,
    wallSeconds: input.wallSeconds,
    faultsInjected: injected.length,
    faultsByKind,
    faultsSkipped: skippedByKind,
    endStates,
    checks,
    passed: Object.values(checks).every((n) => n === 0),
    notTerminal,
    failedByInjectedFault,
    otherFailures,
    serving: serving && { endpoint: serving.endpoint.workflowId, promotion: serving.promotion.workflowId, ...servingProblems },
    leftovers: { pools: leftoverPools, objects: leftoverObjects },
    duplicateTuningJobs,
    differentDigests,
    gpuMinutesAfterEnd: {
      total: Math.round(gpuAfterEnd.reduce((n, g) => n + g.minutes, 0) * 100) / 100,
      max: gpuAfterEnd.length ? Math.max(...gpuAfterEnd.map((g) => g.minutes)) : 0,
      runs: gpuAfterEnd.length,
      perRun: gpuAfterEnd,
    },
    recovery,
    faults,
  };
}

export type Audit = ReturnType<typeof audit>;

export function renderAudit(a: Audit): string {
  const kinds = (r: Record<string, number>) => Object.entries(r).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const lines = [
    `Chaos audit: seed ${a.seed}, ${a.runs} runs, ${a.wallSeconds} s, time limit ${a.timeLimitMinutes} min: ${a.passed ? 'PASSED' : 'FAILED'}`,
    `  faults injected       ${a.faultsInjected}: ${kinds(a.faultsByKind)}${Object.keys(a.faultsSkipped).length ? ` (skipped: ${kinds(a.faultsSkipped)})` : ''}`,
    ...Object.entries(a.endStates).map(([kind, states]) => `  end states ${kind.padEnd(22)} ${kinds(states)}`),
    `  failed by an injected fault   ${a.failedByInjectedFault.length}`,
    ...a.failedByInjectedFault.map((f) => `    ${f.workflowId} ${f.state}: ${f.why}`),
    `  not terminal within the limit ${a.checks.notTerminalWithinLimit} (must be 0)${a.notTerminal.length ? `: ${a.notTerminal.join(', ')}` : ''}`,
    `  failed for another reason     ${a.checks.failedForOtherReasons} (must be 0)`,
    ...a.otherFailures.map((f) => `    ${f.workflowId} ${f.state}: ${f.cause}`),
    `  pools left without an open owner   ${a.checks.leftoverPools} (must be 0)`,
    ...a.leftovers.pools.map((p) => `    ${p}`),
    `  objects left without an open owner ${a.checks.leftoverObjects} (must be 0; Jobs, ConfigMaps, PVCs, Deployments, Services)`,
    ...a.leftovers.objects.map((o) => `    ${o}`),
    `  duplicate tuning Jobs         ${a.checks.duplicateTuningJobs} (must be 0)`,
    ...a.duplicateTuningJobs.map((d) => `    run ${d.runId}: ${d.jobs.join(', ')}`),
    `  runs whose pushes gave different digests ${a.checks.runsWithDifferentDigests} (must be 0)`,
    ...a.differentDigests.map((d) => `    ${d.workflowId} ${d.image}: ${d.digests.join(', ')}`),
    `  GPU-minutes billed after runs ended: ${a.gpuMinutesAfterEnd.total} in all, at most ${a.gpuMinutesAfterEnd.max} for one run (${a.gpuMinutesAfterEnd.runs} runs held GPUs after their end)`,
    ...(a.serving
      ? [
          `  endpoint not retired cleanly  ${a.checks.endpointNotRetired} (must be 0; ${a.serving.endpoint} must complete through retire)`,
          ...a.serving.endpointNotRetired.map((e) => `    ${e}`),
          `  promotion not promoted        ${a.checks.promotionNotPromoted} (must be 0 unless an injected fault explains it; ${a.serving.promotion})`,
          ...a.serving.promotionNotPromoted.map((e) => `    ${e}`),
          `  alias not answering before retire ${a.checks.aliasNotAnswering} (must be 0)`,
          ...a.serving.aliasNotAnswering.map((e) => `    ${e}`),
          `  endpoint's pools/objects left after retire ${a.checks.endpointLeftAfterRetire} (must be 0)`,
          ...a.serving.endpointLeftAfterRetire.map((e) => `    ${e}`),
        ]
      : []),
    `  recovery after worker kills: ${a.recovery.kills} kill(s), ${a.recovery.activitiesHit} activities hit (${a.recovery.runEndedFirst} of them in runs a fault ended first), p50 ${a.recovery.p50Seconds ?? '-'} s, max ${a.recovery.maxSeconds ?? '-'} s; over ${maxRecoverySeconds} s or not recovered: ${a.checks.recoveriesOverOneMinute} (must be 0)`,
  ];
  return lines.join('\n');
}
