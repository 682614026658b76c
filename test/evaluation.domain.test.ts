// The pure decisions behind promotion: parsing a prompt suite, scoring answers, the gate, and
// what an endpoint's vLLM server is started with and will accept.
import { describe, expect, it } from 'vitest';
import { gateDecision, parsePromptSuite, promotionGateSchema, scoreAnswer, scoreSuite, type SuiteResult } from '../domain/evaluation.js';
import { adapterProblems, vllmServerCommand } from '../domain/vllm-server.js';

const result = (passed: number, total: number): SuiteResult => ({ passed, total, passRate: passed / total, cases: [] });

describe('prompt suites', () => {
  it('parses one case a line, skipping blank lines', () => {
    const suite = ['{"prompt":"2+2?","expect":{"exact":"4"}}', '', '{"prompt":"a JSON object","expect":{"json":true}}', '{"prompt":"hi","expect":{"regex":"^h"}}'].join('\n');
    const { cases, problems } = parsePromptSuite(suite);
    expect(problems).toEqual([]);
    expect(cases.map((c) => c.expect)).toEqual([{ exact: '4' }, { json: true }, { regex: '^h' }]);
  });

  it('reports every bad line by number and what is allowed', () => {
    const suite = ['not json', '{"prompt":"x","expect":{"regex":"("}}', '{"prompt":"x","expect":{"exact":"a","contains":"b"}}', '{"prompt":"","expect":{"contains":"a"}}'].join('\n');
    const { cases, problems } = parsePromptSuite(suite);
    expect(cases).toEqual([]);
    expect(problems[0]).toBe('line 1: not JSON');
    expect(problems.find((p) => p.startsWith('line 2:'))).toMatch(/expect/);
    expect(problems.find((p) => p.startsWith('line 3:'))).toMatch(/one of/);
    expect(problems.find((p) => p.startsWith('line 4:'))).toMatch(/prompt/);
  });

  it('refuses an empty suite', () => {
    expect(parsePromptSuite('\n\n').problems).toEqual(['the suite has no cases']);
  });
});

describe('scorers', () => {
  it.each([
    [{ exact: '4' }, ' 4\n', true],
    [{ exact: '4' }, '44', false],
    [{ contains: 'Paris' }, 'It is Paris.', true],
    [{ contains: 'Paris' }, 'It is Lyon.', false],
    [{ regex: '^\\d{3}-\\d{4}$' }, '555-1234', true],
    [{ regex: '^\\d{3}-\\d{4}$' }, 'call 555-1234', false],
    [{ json: true as const }, '{"a": [1, 2]}', true],
    [{ json: true as const }, '{"a": [1, 2]', false],
  ])('%j on %j passes: %s', (expectation, answer, passed) => {
    const scored = scoreAnswer(expectation, answer);
    expect(scored.passed).toBe(passed);
    expect(scored.reason === undefined).toBe(passed);
  });

  it('scores a suite; a missing answer fails its case', () => {
    const { cases } = parsePromptSuite('{"prompt":"a","expect":{"contains":"a"}}\n{"prompt":"b","expect":{"contains":"b"}}\n{"prompt":"c","expect":{"contains":"c"}}');
    const scored = scoreSuite(cases, ['a!', 'nope', undefined]);
    expect(scored).toMatchObject({ passed: 1, total: 3 });
    expect(scored.passRate).toBeCloseTo(1 / 3);
    expect(scored.cases.map((c) => c.reason)).toEqual([undefined, 'does not contain "b"', 'no answer']);
  });
});

describe('the promotion gate', () => {
  const gate = { minPassRate: 0.8, maxRegression: 0.05, maxEvalLoss: 1.5 };

  it('promotes when every criterion holds, saying why', () => {
    const decision = gateDecision(gate, { candidate: result(9, 10), production: result(9, 10), evalLoss: 1.2 });
    expect(decision.promote).toBe(true);
    expect(decision.reasons).toEqual([
      'pass rate 90.0% ≥ required 80.0%',
      'pass rate 90.0% vs production 90.0%: within the allowed 5.0% regression',
      'eval loss 1.2 ≤ allowed 1.5',
    ]);
  });

  it('rejects a candidate under the pass rate', () => {
    const decision = gateDecision(gate, { candidate: result(7, 10), evalLoss: 1 });
    expect(decision.promote).toBe(false);
    expect(decision.reasons).toContain('pass rate 70.0% < required 80.0%');
  });

  it('allows exactly the permitted regression, not more', () => {
    expect(gateDecision({ maxRegression: 0.05 }, { candidate: result(85, 100), production: result(90, 100) }).promote).toBe(true);
    const worse = gateDecision({ maxRegression: 0.05 }, { candidate: result(84, 100), production: result(90, 100) });
    expect(worse.promote).toBe(false);
    expect(worse.reasons[0]).toMatch(/worse than the allowed 5.0% regression/);
  });

  it('with no production adapter, the regression criterion holds', () => {
    expect(gateDecision({ maxRegression: 0 }, { candidate: result(1, 10) })).toEqual({ promote: true, reasons: ['no production adapter to compare with'] });
  });

  it('rejects on eval loss above the limit, or missing when the gate requires it', () => {
    expect(gateDecision({ maxEvalLoss: 1 }, { candidate: result(10, 10), evalLoss: 1.01 }).promote).toBe(false);
    expect(gateDecision({ maxEvalLoss: 1 }, { candidate: result(10, 10) })).toEqual({ promote: false, reasons: ['no eval loss recorded, the gate requires ≤ 1'] });
  });

  it('validates gate settings', () => {
    expect(promotionGateSchema.safeParse({ minPassRate: 1.2 }).success).toBe(false);
    expect(promotionGateSchema.safeParse({ minPassRate: 0.9, maxRegression: 0.02, maxEvalLoss: 2 }).success).toBe(true);
  });
});

describe("an endpoint's vLLM server", () => {
  it('enables runtime LoRA updating with the endpoint limits', () => {
    const { args, env } = vllmServerCommand({ servedModelName: 'phi-3', weightsPath: '/w', port: 5000, maxLoras: 4, maxLoraRank: 64 });
    expect(args).toEqual(['--model', '/w', '--served-model-name', 'phi-3', '--port', '5000', '--enable-lora', '--max-loras', '4', '--max-lora-rank', '64']);
    expect(env).toEqual([{ name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' }]);
  });

  it('accepts only LoRA adapters of its base model within its rank', () => {
    const endpoint = { baseModel: 'phi-3', maxLoraRank: 16 };
    // PEFT records the trainer's weights folder, so the base model comes from the image annotation.
    const config = { base_model_name_or_path: '/workspace/weights', r: 16, peft_type: 'LORA' };
    expect(adapterProblems({ baseModel: 'phi-3', config }, endpoint)).toEqual([]);
    expect(adapterProblems({ baseModel: 'llama', config: { ...config, r: 32 } }, endpoint)).toEqual([
      `base model "llama" is not the endpoint's "phi-3"`,
      "rank 32 exceeds the endpoint's max-lora-rank 16",
    ]);
    expect(adapterProblems({ baseModel: undefined, config }, endpoint)).toEqual([`base model null is not the endpoint's "phi-3"`]);
    expect(adapterProblems({ baseModel: 'phi-3', config: { ...config, peft_type: 'IA3' } }, endpoint)).toEqual(['peft_type is IA3, only LORA adapters are served']);
    expect(adapterProblems({ baseModel: 'phi-3', config: null }, endpoint)).toEqual(['adapter_config.json is not a JSON object']);
  });
});
