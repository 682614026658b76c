// The pure side of promotion: the request (promoteAdapter's input and fineTune's promote option),
// the router counters the watch window reads, and its rollback verdict.
import { describe, expect, it } from 'vitest';
import type { SuiteResult } from '../domain/evaluation.js';
import { promotionIdOf } from '../client/promotion-client.js';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { addTraffic, aliasTrafficByVersion, maxSuiteCases, parseRequestSuite, trafficSince, validatePromotionRequest, watchVerdict, watchWindowProblems, withSuiteCases } from '../domain/promotion.js';

const image = `registry.example.com/adapters/support@sha256:${'a'.repeat(64)}`;
const suite = { jsonl: ['{"prompt":"refund policy?","expect":{"contains":"refund"}}', '{"prompt":"as json","expect":{"json":true}}'].join('\n') };
const request = { endpoint: { name: 'support-bot' }, alias: 'support', image, suite };
const result = (passed: number, total: number): SuiteResult => ({ passed, total, passRate: passed / total, cases: [] });

describe('promotion requests', () => {
  it('fills the defaults: no approval, an empty gate, the first five cases as smoke prompts, namespace aks-finetune', () => {
    const checked = validatePromotionRequest(request);
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(checked.value).toMatchObject({ approval: 'none', gate: {}, namespace: 'aks-finetune', maxErrorRateIncrease: 0.01 });
    expect(checked.value.cases).toHaveLength(2);
    expect(checked.value.smokeCases).toHaveLength(2);
  });

  it('reports every problem at once: a tag instead of a digest, a bad alias, approval without a timeout, an unknown field', () => {
    const checked = validatePromotionRequest({ ...request, image: 'registry.example.com/adapters/support:v1', alias: 'Support', approval: { required: true }, endpoint: { name: 'support-bot', size: 2 } });
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.problems).toHaveLength(4);
    expect(checked.problems.join('\n')).toMatch(/image must be an adapter image by digest/);
    expect(checked.problems.join('\n')).toMatch(/approval must be "none", or \{"required": true, "timeoutMinutes"/);
  });

  it('takes a suite given as a dataset image, whose cases are read later and checked the same way', () => {
    const checked = validatePromotionRequest({ ...request, suite: { image: 'registry.example.com/suites/support:v3' } });
    expect(checked.ok && checked.value.cases).toEqual([]);
    if (!checked.ok) return;
    expect(withSuiteCases(checked.value, suite.jsonl)).toMatchObject({ ok: true, value: { cases: [expect.anything(), expect.anything()], smokeCases: [expect.anything(), expect.anything()] } });
    expect(withSuiteCases(checked.value, 'nope')).toEqual({ ok: false, problems: ['suite.jsonl line 1: not JSON'] });
  });

  it('reports the suite by line', () => {
    const checked = validatePromotionRequest({ ...request, suite: { jsonl: '{"prompt":"x","expect":{"contains":"x"}}\nnot json' } });
    expect(checked).toEqual({ ok: false, problems: ['suite.jsonl line 2: not JSON'] });
  });

  it("in a fineTune request: excludes deploy, checks the suite, and takes the run's model, VM size and namespace", () => {
    const base = {
      model: 'phi-3-mini-4k-instruct', method: 'qlora', dataset: { urls: ['https://datasets.example.com/a.jsonl'] },
      output: { image: 'registry.example.com/adapters/support:v1' }, gpu: { vmSize: 'Standard_NC24ads_A100_v4' }, namespace: 'team-a',
    };
    const promote = { endpoint: { name: 'support-bot' }, alias: 'support', suite };
    const ok = validateFineTuneRequest({ ...base, promote }, 'fine-tune-x');
    expect(ok.ok && ok.plan.promote).toMatchObject({ namespace: 'team-a', endpoint: { name: 'support-bot', baseModel: 'phi-3-mini-4k-instruct', vmSize: 'Standard_NC24ads_A100_v4' } });
    const bad = validateFineTuneRequest({ ...base, deploy: {}, promote: { ...promote, endpoint: { name: 'support-bot', baseModel: 'mistral-7b' }, suite: { jsonl: 'x' } } }, 'fine-tune-x');
    expect(bad.ok ? [] : bad.problems).toEqual([
      expect.stringMatching(/^deploy and promote exclude each other/),
      'promote.suite.jsonl line 1: not JSON',
      expect.stringMatching(/^promote.endpoint.baseModel mistral-7b is not the run's model/),
    ]);
  });
});

describe('watch window', () => {
  const metrics = [
    '# HELP adapter_router_requests_total requests by requested model, resolved version and status code',
    'adapter_router_requests_total{model="support",version="support-v2",code="200"} 40',
    'adapter_router_requests_total{model="support",version="support-v2",code="503"} 2',
    'adapter_router_requests_total{model="support",version="support-v1",code="200"} 100',
    'adapter_router_requests_total{model="support-v1",version="support-v1",code="500"} 7',
    'vllm:request_success_total{model_name="support-v2"} 42',
  ].join('\n');

  it("counts requests and 5xx answers per version for calls that named the alias, summed over replicas", () => {
    const one = aliasTrafficByVersion(metrics, 'support');
    expect(one).toEqual({ 'support-v2': { requests: 42, errors: 2 }, 'support-v1': { requests: 100, errors: 0 } });
    expect(addTraffic(one, one)['support-v2']).toEqual({ requests: 84, errors: 4 });
    expect(trafficSince({ requests: 10, errors: 1 }, { requests: 4, errors: 0 })).toEqual({ requests: 6, errors: 1 });
    expect(trafficSince({ requests: 2, errors: 0 }, { requests: 4, errors: 1 })).toEqual({ requests: 0, errors: 0 });
  });

  it('rolls back when the error rate rises beyond the allowed increase, or the smoke prompts do worse than the previous version beyond the allowed regression', () => {
    const tolerance = { maxErrorRateIncrease: 0.01, maxSmokeRegression: 0.2 };
    const calm = { current: { requests: 100, errors: 1 }, previous: { requests: 100, errors: 0 }, smoke: { current: result(4, 5), previous: result(5, 5) } };
    expect(watchVerdict(calm, tolerance)).toEqual({ rollback: false, reasons: ['error rate 1.0% vs previous 0.0%: within 1.0%', 'smoke prompts 4/5 vs previous 5/5: within the allowed 20.0% regression'] });
    expect(watchVerdict({ ...calm, current: { requests: 100, errors: 3 } }, tolerance)).toMatchObject({ rollback: true, reasons: [expect.stringMatching(/^error rate 3.0% \(3\/100\) vs previous 0.0%: more than 1.0% worse/), expect.any(String)] });
    expect(watchVerdict({ ...calm, smoke: { current: result(3, 5), previous: result(5, 5) } }, tolerance)).toMatchObject({ rollback: true, reasons: [expect.any(String), 'smoke prompts 3/5 vs previous 5/5: worse than the allowed 20.0% regression'] });
  });

  it('judges a first promotion by its error rate alone', () => {
    const first = { current: { requests: 10, errors: 0 }, previous: { requests: 0, errors: 0 }, smoke: { current: result(0, 5) } };
    expect(watchVerdict(first, { maxErrorRateIncrease: 0, maxSmokeRegression: 0 }).rollback).toBe(false);
  });
});

describe('promotion ids', () => {
  it("reaches a fineTune run's promotion through the run's id, and any other id as it is", () => {
    expect(promotionIdOf('fine-tune-support-2026')).toBe('fine-tune-support-2026-promote');
    expect(promotionIdOf('fine-tune-support-2026-promote')).toBe('fine-tune-support-2026-promote');
    expect(promotionIdOf('promote-support-3')).toBe('promote-support-3');
  });
});

describe('suite size', () => {
  it('refuses a suite with more cases than one evaluation can ask twice', () => {
    const jsonl = Array.from({ length: maxSuiteCases + 1 }, (_, i) => JSON.stringify({ prompt: `p${i}`, expect: { contains: 'x' } })).join('\n');
    expect(parseRequestSuite(jsonl).problems).toEqual([`suite has ${maxSuiteCases + 1} cases: at most ${maxSuiteCases} (each is asked of the candidate and of production within one 30-minute evaluation)`]);
    expect(parseRequestSuite(jsonl.split('\n').slice(1).join('\n')).problems).toEqual([]);
  });
});

describe('watch window against the rollback window', () => {
  it('refuses a watch that outlasts the rollback window, and passes one that fits or is left to defaults', () => {
    expect(watchWindowProblems(30, 10)).toEqual(["the watch window (30 min) outlasts the endpoint's rollback window (10 min): a regression found late could not be rolled back"]);
    expect(watchWindowProblems(10, 10)).toEqual([]);
    expect(watchWindowProblems(undefined, 5)).toEqual([]);
  });
});
