// The router's pure decisions: reading the desired state, aliases it cannot switch to, alias
// resolution, and its Prometheus lines.
import { describe, expect, it } from 'vitest';
import { aliasProblems, parseDesiredState, resolveAlias, routerMetrics } from '../domain/adapter-router.js';

const image = `reg.example/a@sha256:${'a'.repeat(64)}`;

describe('adapter-router decisions', () => {
  it('reads the desired state, saying what is wrong with a bad one', () => {
    expect(parseDesiredState(JSON.stringify({ generation: 1, adapters: [{ versionName: 'bot-v1', image }], aliases: { bot: 'bot-v1' } })).aliases).toEqual({ bot: 'bot-v1' });
    expect(() => parseDesiredState('{')).toThrow('desired.json is not JSON');
    expect(() => parseDesiredState(JSON.stringify({ generation: 1, adapters: [{ versionName: 'bot-v1', image: 'reg.example/a:v1' }], aliases: {} }))).toThrow(/adapters\.0\.image: an image by digest/);
  });

  it('refuses aliases to versions not desired; the base model is a valid target', () => {
    const desired = { generation: 2, adapters: [{ versionName: 'bot-v1', image }], aliases: { bot: 'bot-v1', raw: 'phi', lost: 'bot-v9' } };
    expect(aliasProblems(desired, 'phi')).toEqual([{ versionName: 'bot-v9', message: 'alias lost resolves to bot-v9, which is not among the desired adapters' }]);
  });

  it('resolves an alias to its version and passes any other name through, prototype names included', () => {
    expect(resolveAlias({ bot: 'bot-v2' }, 'bot')).toBe('bot-v2');
    expect(resolveAlias({ bot: 'bot-v2' }, 'bot-v1')).toBe('bot-v1');
    expect(resolveAlias({ bot: 'bot-v2' }, 'constructor')).toBe('constructor');
  });

  it('writes its counters in the Prometheus text format, escaping label values', () => {
    const lines = routerMetrics([{ model: 'bo"t', version: 'bot-v1', code: 200, count: 3 }], { appliedGeneration: 4, seenGeneration: 4, loaded: [], aliases: {}, errors: [] });
    expect(lines).toContain('adapter_router_requests_total{model="bo\\"t",version="bot-v1",code="200"} 3');
    expect(lines).toContain('adapter_router_applied_generation 4');
  });
});
