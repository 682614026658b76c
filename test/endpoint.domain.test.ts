// The endpoint's pure state machine: spec, transitions and their validators, alias resolution,
// and the per-replica reconcile plan.
import { describe, expect, it } from 'vitest';
import { idleCheck, requestCount, checkLoadCandidate, checkScale, desiredState, parseEndpointInput, setReplicas, wantedReplicas, checkRollback, checkScaleToZero, describeEndpoint, scaleToZero, wake, checkUnload, desiredAdapters, expireRollbackWindow, loadCandidate, newEndpointState, parseEndpointSpec, promote, reconcilePlan, resolveModelName, rollback, servesAlready, unload } from '../domain/endpoint.js';

const spec = parseEndpointSpec({ name: 'support', baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4', maxLoras: 3 });
const promoted = (digests: string[]) => digests.reduce((s, d, i) => promote(loadCandidate(s, 'bot', d), `bot-v${i + 1}`, 1_000), newEndpointState(spec, 0));

describe('endpoint', () => {
  it('fills defaults and refuses a bad name', () => {
    expect(spec.replicas).toBe(1);
    expect(() => parseEndpointSpec({ ...spec, name: 'Bad_Name' })).toThrow(/endpoint.name/);
  });
  it('promotes under versioned names and resolves the stable alias', () => {
    const s = promoted(['sha256:a', 'sha256:b']);
    expect(resolveModelName(s, 'bot')).toBe('bot-v2');
    expect(s.rollbackTargets.bot).toEqual({ versionName: 'bot-v1', expiresAtMs: 1_000 });
    const back = rollback(s, 'bot');
    expect(resolveModelName(back, 'bot')).toBe('bot-v1');
    expect(() => checkRollback(back, 'bot')).toThrow(/no previous version/);
    expect(servesAlready(s, 'bot-v2')).toBe(true);
    expect(servesAlready(s, 'bot-v1')).toBe(false);
  });
  it('refuses to unload a served version and expires the rollback target', () => {
    const s = promoted(['sha256:a', 'sha256:b']);
    expect(() => checkUnload(s, 'bot-v1')).toThrow(/kept for rollback/);
    expect(expireRollbackWindow(s, 2_000).versions.map((v) => v.versionName)).toEqual(['bot-v2']);
    const unloaded = unload(loadCandidate(s, 'bot', 'sha256:c'), 'bot-v3');
    expect(unloaded.versions).toHaveLength(2);
    expect(loadCandidate(unloaded, 'bot', 'sha256:d').versions.at(-1)?.versionName).toBe('bot-v4');
  });
  it('evicts a version nothing pins at maxLoras, never a candidate a promotion may be evaluating, and refuses when none may go', () => {
    // bot-v3 promoted: bot-v2 is kept for rollback, bot-v1 served once and is kept by nothing now, so it goes.
    const stale = promote(loadCandidate(promoted(['sha256:a', 'sha256:b']), 'bot', 'sha256:c'), 'bot-v3', 1_000);
    expect(loadCandidate(stale, 'bot', 'sha256:d').versions.map((v) => v.versionName)).toEqual(['bot-v2', 'bot-v3', 'bot-v4']);
    // bot-v3 a candidate: another alias's load must not take its slot.
    const evaluating = loadCandidate(promoted(['sha256:a', 'sha256:b']), 'bot', 'sha256:c');
    expect(evaluating.versions.at(-1)).toMatchObject({ versionName: 'bot-v3', candidate: true });
    expect(describeEndpoint(evaluating).candidates).toEqual(['bot-v3']);
    expect(() => loadCandidate(evaluating, 'faq', 'sha256:d')).toThrow(/candidates a promotion may be evaluating \(bot-v3\)/);
    expect(() => checkLoadCandidate(evaluating, 'faq', `registry.example/a@sha256:${'d'.repeat(64)}`)).toThrow(/bot-v3/);
    // Runs from before the patch replay the old rule: the candidate is evicted.
    expect(loadCandidate(evaluating, 'faq', 'sha256:d', { keepCandidates: false }).versions.map((v) => v.versionName)).toEqual(['bot-v1', 'bot-v2', 'faq-v1']);
    // Promoted, it is no candidate any more.
    expect(promote(evaluating, 'bot-v3', 1_000).versions.at(-1)?.candidate).toBe(false);
    const full = promoted(['sha256:a', 'sha256:b']);
    expect(() => loadCandidate({ ...full, spec: { ...full.spec, maxLoras: 2 } }, 'bot', 'sha256:c')).toThrow(/maxLoras=2/);
  });
  it('survives JSON and plans a replica reconcile', () => {
    const s = promoted(['sha256:a', 'sha256:b']);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    expect(reconcilePlan(desiredAdapters(s), []).load).toHaveLength(2);
    expect(reconcilePlan(desiredAdapters(expireRollbackWindow(s, 2_000)), ['bot-v1', 'bot-v2'])).toEqual({ load: [], unload: ['bot-v1'] });
  });
  it('scales to zero, wakes with a cold start and counts idle minutes saved', () => {
    const idle = scaleToZero(promoted(['sha256:a']), 0);
    expect(() => checkScaleToZero(idle)).toThrow(/already scaled to zero/);
    const woken = wake(idle, 45 * 60_000);
    expect(woken.counters).toMatchObject({ coldStarts: 1, idleMinutesSaved: 45, promotions: 1 });
    expect(describeEndpoint(woken).aliases).toEqual([{ alias: 'bot', versionName: 'bot-v1', digest: 'sha256:a', image: 'sha256:a', rollbackTo: undefined }]);
  });
  it('validates a candidate: alias, image by digest, a free slot', () => {
    const image = `registry.example/adapters/bot@sha256:${'a'.repeat(64)}`;
    const s = newEndpointState(spec, 0);
    expect(() => checkLoadCandidate(s, 'bot', image)).not.toThrow();
    expect(() => checkLoadCandidate(s, 'Bad Alias', image)).toThrow(/alias/);
    expect(() => checkLoadCandidate(s, 'bot', 'registry.example/adapters/bot:v1')).toThrow(/by digest/);
    const full = promoted(['sha256:a', 'sha256:b']);
    expect(() => checkLoadCandidate({ ...full, spec: { ...full.spec, maxLoras: 2 } }, 'bot', image)).toThrow(/maxLoras=2/);
    const loaded = loadCandidate(s, 'bot', image);
    expect(loaded.versions[0]).toEqual({ versionName: 'bot-v1', alias: 'bot', image, digest: `sha256:${'a'.repeat(64)}`, candidate: true });
    expect(desiredState(promote(loaded, 'bot-v1', 0), 7)).toEqual({ generation: 7, adapters: [{ versionName: 'bot-v1', image }], aliases: { bot: 'bot-v1' } });
  });
  it('bounds the replica count and runs none while scaled to zero', () => {
    const s = newEndpointState(spec, 0);
    expect(() => checkScale(s, { replicas: 0 })).toThrow(/from 1 to 16/);
    expect(() => checkScale(s, { replicas: 17 })).toThrow(/from 1 to 16/);
    expect(wantedReplicas(setReplicas(s, 3))).toBe(3);
    expect(wantedReplicas(scaleToZero(setReplicas(s, 3), 0))).toBe(0);
    expect(() => checkScale(scaleToZero(s, 0), { toZero: true })).toThrow(/already scaled to zero/);
  });
  it('reads the spec and namespace together, every problem at once', () => {
    expect(parseEndpointInput({ ...spec }, 'team-a').namespace).toBe('team-a');
    expect(() => parseEndpointInput({ ...spec, idleGraceSeconds: 5 }, 'Team A')).toThrow(/idleGraceSeconds[\s\S]*namespace/);
  });
  it('counts requests from a replica\'s metrics and calls the endpoint idle only after a whole grace without change', () => {
    const metrics = [
      '# TYPE vllm:request_success_total counter',
      'vllm:request_success_total{finished_reason="stop",model_name="bot-v1"} 3.0',
      'vllm:request_success_total{finished_reason="length",model_name="bot-v1"} 2',
      'vllm:num_requests_running{model_name="bot-v1"} 7',
      'adapter_router_requests_total{model="bot",version="bot-v1",code="200"} 5',
    ].join('\n');
    expect(requestCount(metrics)).toBe(10);
    const first = idleCheck(undefined, [{ uid: 'a', requests: 10 }], 0, 10);
    expect(first.idle).toBe(false);
    expect(idleCheck(first.mark, [{ uid: 'a', requests: 10 }], 9_999, 10).idle).toBe(false);
    expect(idleCheck(first.mark, [{ uid: 'a', requests: 10 }], 10_000, 10).idle).toBe(true);
    expect(idleCheck(first.mark, [{ uid: 'a', requests: 11 }], 10_000, 10)).toEqual({ mark: { fingerprint: 'a=11', sinceMs: 10_000 }, idle: false });
    expect(idleCheck(first.mark, [{ uid: 'b', requests: 10 }], 10_000, 10).idle).toBe(false);
  });
});
