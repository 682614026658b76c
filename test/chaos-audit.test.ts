// The chaos run's audit and fault plan, on records made up here (the run itself is
// `npm run chaos`, whose small version `npm test` runs): what counts as failed because of an
// injected fault, what is a duplicate tuning Job, and that a seed replays its plan.
import { describe, expect, it } from 'vitest';
import type { ManagedPool } from '../activities/azure/node-pools.js';
import { audit, type AuditInput, type ChaosRun, renderAudit, type ServingRecord } from '../scripts/chaos/audit.js';
import { faultKinds, type InjectedFault, planFaults } from '../scripts/chaos/faults.js';
import { GpuAfterEndSampler } from '../scripts/chaos/observe.js';
import { poolTags } from '../domain/pool-tags.js';
import { ownerIsOpen, type RecordedOwner } from '../domain/run-identity.js';
import { SeededRandom } from '../scripts/chaos/random.js';

const run = (index: number, overrides: Partial<ChaosRun> = {}): ChaosRun => ({
  index,
  kind: 'fine-tune',
  workflowId: `chaos-${index}`,
  runId: `run-${index}`,
  state: 'COMPLETED',
  output: { repository: `adapters/chaos-${index}`, tag: 'v1' },
  ...overrides,
});
const fault = (index: number, kind: InjectedFault['kind'], runId?: string): InjectedFault => ({
  index,
  kind,
  at: '2026-01-01T00:00:00Z',
  offsetSeconds: index,
  target: runId ? { workflowId: `chaos-${runId}`, runId } : undefined,
  detail: '',
  outcome: 'injected',
});
const input = (runs: ChaosRun[], faults: InjectedFault[], more: Partial<AuditInput> = {}): AuditInput => ({
  seed: 1,
  runs,
  faults,
  timeLimitMinutes: 10,
  wallSeconds: 60,
  jobs: [],
  leftovers: { pools: [], objects: [] },
  registryRoot: '/nonexistent',
  gpuMinutesAfterEnd: new Map(),
  recoveries: [],
  ...more,
});

describe('chaos audit', () => {
  it('counts a failure as injected only when a fault explains it, and lists every other one with its cause', () => {
    const runs = [
      run(0, { state: 'TERMINATED' }),
      run(1, { state: 'FAILED', cause: { type: 'TrainingFailed', message: 'trainer OOMKilled (exit 137)' } }),
      run(2, { kind: 'retrain', state: 'TERMINATED', child: { workflowId: 'chaos-2-fine-tune', runId: 'child-2', state: 'CANCELLED' } }),
      run(3, { state: 'FAILED', cause: { type: 'TrainingFailed', message: 'trainer OOMKilled (exit 137)' } }),
      run(4, { state: 'TERMINATED' }),
      run(5, { state: 'RUNNING' }),
    ];
    const result = audit(input(runs, [fault(0, 'terminate', 'run-0'), fault(1, 'trainer-oom', 'run-1'), fault(2, 'terminate', 'run-2')]));
    expect(result.failedByInjectedFault.map((f) => f.workflowId).sort()).toEqual(['chaos-0', 'chaos-1', 'chaos-2', 'chaos-2-fine-tune']);
    // run 3's OOM and run 4's termination had no fault aimed at them.
    expect(result.otherFailures).toEqual([
      { workflowId: 'chaos-3', state: 'FAILED', cause: 'TrainingFailed: trainer OOMKilled (exit 137)' },
      { workflowId: 'chaos-4', state: 'TERMINATED', cause: 'TERMINATED' },
    ]);
    expect(result.notTerminal).toEqual(['chaos-5']);
    expect(result.passed).toBe(false);
  });

  it('explains a retrain that failed through its child by the child, which alone uses up the quota fault', () => {
    const quota = { type: 'GpuQuotaExceeded', message: 'QuotaExceeded' };
    const runs = [
      run(0, { kind: 'retrain', state: 'FAILED', cause: quota, child: { workflowId: 'chaos-0-fine-tune', runId: 'child-0', state: 'FAILED', cause: quota } }),
      run(1, { state: 'FAILED', cause: quota }),
    ];
    const result = audit(input(runs, [fault(0, 'arm-quota')]));
    expect(result.failedByInjectedFault.map((f) => f.workflowId)).toEqual(['chaos-0-fine-tune', 'chaos-0']);
    expect(result.otherFailures.map((f) => f.workflowId)).toEqual(['chaos-1']);
  });

  it('allows one tuning Job per run plus one per node-loss recovery, and never two under one name', () => {
    const job = (runId: string, name: string, uid: string) => ({ uid, namespace: 'ns', name, runId, firstSeen: '' });
    const recovered = run(1, { status: { capacityRecoveries: [{ at: '', step: 'train', reason: 'node lost' }] } as ChaosRun['status'] });
    const result = audit(
      input([run(0), recovered, run(2)], [], {
        jobs: [
          job('run-0', 'a-train', 'u1'),
          job('run-0', 'a-push-1', 'u2'),
          job('run-1', 'b-train', 'u3'),
          job('run-1', 'b-train-r1', 'u4'),
          job('run-2', 'c-train', 'u5'),
          job('run-2', 'c-train', 'u6'),
        ],
      }),
    );
    expect(result.duplicateTuningJobs.map((d) => [d.runId, d.duplicates])).toEqual([['run-2', 1]]);
    expect(result.checks.duplicateTuningJobs).toBe(1);
  });

  it('fails when a run took over a minute to move again after a worker kill', () => {
    const recoveries = [
      { worker: 'w', killedAt: '', workflowId: 'a', activity: 'ensureNodePool', seconds: 21 },
      { worker: 'w', killedAt: '', workflowId: 'b', activity: 'startTuningJob', seconds: 75 },
      // Terminated by a fault before it moved again: nothing to measure.
      { worker: 'w', killedAt: '', workflowId: 'c', activity: 'ensureNodePool', runEndedFirst: true },
    ];
    const result = audit(input([run(0)], [fault(0, 'kill-one-worker')], { recoveries }));
    expect(result.recovery).toMatchObject({ kills: 1, activitiesHit: 3, runEndedFirst: 1, p50Seconds: 21, maxSeconds: 75 });
    expect(result.checks.recoveriesOverOneMinute).toBe(1);
    expect(audit(input([run(0)], [], { recoveries: recoveries.slice(0, 1) })).passed).toBe(true);
  });
});

describe('chaos audit of the endpoint and its promotion', () => {
  const serving = (overrides: Partial<ServingRecord> = {}): ServingRecord => ({
    endpoint: { workflowId: 'endpoint-chaos-ep', runId: 'ep-1', state: 'COMPLETED', retireSent: true },
    promotion: { workflowId: 'promote-chaos', runId: 'promo-1', state: 'COMPLETED', phase: 'promoted' },
    alias: { answered: true, detail: '200' },
    leftAfterRetire: { pools: [], objects: [] },
    ...overrides,
  });

  it('passes an endpoint retired cleanly, a promoted promotion and an alias that answered, and lists both in the end states', () => {
    const result = audit(input([run(0)], [], { serving: serving() }));
    expect(result.passed).toBe(true);
    expect(result.endStates).toMatchObject({ endpoint: { COMPLETED: 1 }, promotion: { 'COMPLETED promoted': 1 } });
    expect(result.checks).toMatchObject({ endpointNotRetired: 0, promotionNotPromoted: 0, aliasNotAnswering: 0, endpointLeftAfterRetire: 0 });
    expect(renderAudit(result)).toContain('endpoint not retired cleanly  0 (must be 0');
  });

  it('fails an endpoint that did not complete through retire, an alias that did not answer, and what the endpoint left', () => {
    const terminated = audit(input([run(0)], [], { serving: serving({ endpoint: { workflowId: 'endpoint-chaos-ep', runId: 'ep-1', state: 'TERMINATED', retireSent: true } }) }));
    expect(terminated.checks.endpointNotRetired).toBe(1);
    // Completed, but not through this run's retire: not clean either.
    expect(audit(input([run(0)], [], { serving: serving({ endpoint: { workflowId: 'endpoint-chaos-ep', runId: 'ep-1', state: 'COMPLETED', retireSent: false } }) })).checks.endpointNotRetired).toBe(1);
    const silent = audit(input([run(0)], [], { serving: serving({ alias: { answered: false, detail: 'alias chaos: 503' }, leftAfterRetire: { pools: ['epabc (1 node(s), Succeeded)'], objects: ['Service aks-finetune/chaos-ep'] } }) }));
    expect(silent.checks).toMatchObject({ aliasNotAnswering: 1, endpointLeftAfterRetire: 2 });
    expect(silent.passed).toBe(false);
  });

  it('fails a promotion that did not end promoted unless an injected fault explains it', () => {
    const rejected = audit(input([run(0)], [], { serving: serving({ promotion: { workflowId: 'promote-chaos', runId: 'promo-1', state: 'COMPLETED', phase: 'rejected' } }) }));
    expect(rejected.checks.promotionNotPromoted).toBe(1);
    const quota = { type: 'GpuQuotaExceeded', message: 'QuotaExceeded' };
    const failed = { workflowId: 'promote-chaos', runId: 'promo-1', state: 'FAILED', cause: quota };
    expect(audit(input([run(0)], [], { serving: serving({ promotion: failed }) })).checks.promotionNotPromoted).toBe(1);
    const explained = audit(input([run(0)], [fault(0, 'arm-quota')], { serving: serving({ promotion: failed }) }));
    expect(explained.checks.promotionNotPromoted).toBe(0);
    expect(explained.failedByInjectedFault).toEqual([{ workflowId: 'promote-chaos', state: 'FAILED', why: 'QuotaExceeded injected into ARM' }]);
  });
});

describe('GPU-minutes after end', () => {
  it("counts an endpoint's pool (workflow id only) once no run of the id is open, and never while it is", async () => {
    const pool = (name: string, tags: Record<string, string>): ManagedPool => ({ name, spot: false, count: 1, vmSize: 'Standard_NC24ads_A100_v4', provisioningState: 'Succeeded', tags: { [poolTags.managed]: 'true', ...tags } });
    const pools = [pool('epopen', { [poolTags.workflowId]: 'endpoint-open' }), pool('epgone', { [poolTags.workflowId]: 'endpoint-gone' }), pool('run', { [poolTags.workflowId]: 'fine-tune-a', [poolTags.runId]: 'r1' })];
    // What Temporal says: the open endpoint has a running run (a later one than its first), the other's only run completed.
    const latest: Record<string, { runId: string; status: string }> = { 'endpoint-open': { runId: 'ep-2', status: 'RUNNING' }, 'endpoint-gone': { runId: 'ep-9', status: 'COMPLETED' }, 'fine-tune-a': { runId: 'r1', status: 'RUNNING' } };
    const endedAt = Date.now() - 60_000;
    const billableSince = async (owner: RecordedOwner & { workflowId: string }) => {
      const run = latest[owner.workflowId]!;
      return ownerIsOpen(owner, [{ workflowId: owner.workflowId, ...run }]) ? undefined : endedAt;
    };
    const sampler = new GpuAfterEndSampler(async () => pools, billableSince, 20);
    sampler.start();
    await new Promise((r) => setTimeout(r, 120));
    sampler.stop();
    expect([...sampler.minutesByRun.keys()]).toEqual(['endpoint-gone (every run of the id)']);
    expect(sampler.minutesByRun.get('endpoint-gone (every run of the id)')).toBeGreaterThan(0);
  });
});

describe('chaos fault plan', () => {
  it('is the same for the same seed, and gives every kind once before repeating any', () => {
    const plan = (seed: number) => planFaults(new SeededRandom(seed), faultKinds.length + 4, faultKinds, 100_000);
    expect(plan(42)).toEqual(plan(42));
    expect(plan(42)).not.toEqual(plan(43));
    const kindsSeen = plan(42).map((f) => f.kind);
    expect(new Set(kindsSeen.slice(0, faultKinds.length))).toEqual(new Set(faultKinds));
    expect(plan(42).map((f) => f.atMs)).toEqual([...plan(42).map((f) => f.atMs)].sort((a, b) => a - b));
  });
});
