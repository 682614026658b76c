// A load generator for an OpenAI-compatible endpoint: N concurrent callers POST completions for
// one model (an endpoint's alias) back to back until stopped, and every answer is counted by
// status code and by the model that answered. The serving tests and `npm run bench:serving` use
// it to show that a switch or a rollback fails no request, and when the answers changed hands.
import { percentile } from './percentile.js';

export interface LoadOptions {
  /** The API's base URL, e.g. http://127.0.0.1:18080/services/ns/support (…/v1/completions is added). */
  url: string;
  /** The `model` every request names: the alias clients call. */
  model: string;
  concurrency: number;
  prompt?: string;
  /** One request's limit; a request over it counts as failed ('timeout'). Default 10 s. */
  timeoutMs?: number;
}

/** One answered (or failed) request. */
export interface LoadSample {
  startedAt: number;
  latencyMs: number;
  /** The HTTP status, or 'error' (no answer) / 'timeout'. */
  status: number | 'error' | 'timeout';
  /** The answer's `model` field: which version served an alias. */
  servedModel?: string;
}

export interface LoadReport {
  requests: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  byServedModel: Record<string, number>;
  latencyMs: { p50?: number; p90?: number; p99?: number; max?: number };
  /** The first few failures, for a report that says what went wrong. */
  failures: { at: string; status: LoadSample['status']; body?: string }[];
}

export interface LoadGenerator {
  /** Counts of the requests that started at or after `sinceMs` (default: all). */
  report(sinceMs?: number): LoadReport;
  /** When (epoch ms) the first answer from `model` arrived, among requests that started at or after `sinceMs`. */
  firstServedBy(model: string, sinceMs?: number): number | undefined;
  /** Ends every caller after its request in flight; the final report. */
  stop(): Promise<LoadReport>;
}

const isOk = (s: LoadSample) => typeof s.status === 'number' && s.status >= 200 && s.status < 300;

export function summarize(samples: LoadSample[], failures: LoadReport['failures'] = []): LoadReport {
  const count = (key: (s: LoadSample) => string | undefined) =>
    samples.reduce<Record<string, number>>((acc, s) => {
      const k = key(s);
      if (k !== undefined) acc[k] = (acc[k] ?? 0) + 1;
      return acc;
    }, {});
  const latencies = samples.map((s) => s.latencyMs);
  const ok = samples.filter(isOk).length;
  return {
    requests: samples.length,
    ok,
    failed: samples.length - ok,
    byStatus: count((s) => String(s.status)),
    byServedModel: count((s) => s.servedModel),
    latencyMs: { p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99), max: latencies.length ? Math.max(...latencies) : undefined },
    failures,
  };
}

export function startLoad(options: LoadOptions): LoadGenerator {
  const samples: LoadSample[] = [];
  const failures: LoadReport['failures'] = [];
  const endpoint = `${options.url.replace(/\/$/, '')}/v1/completions`;
  const body = JSON.stringify({ model: options.model, prompt: options.prompt ?? 'Say hello.', max_tokens: 8 });
  let running = true;

  async function call(): Promise<void> {
    const startedAt = Date.now();
    const sample: LoadSample = { startedAt, latencyMs: 0, status: 'error' };
    let failureBody: string | undefined;
    try {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      const text = await res.text();
      sample.status = res.status;
      if (res.ok) sample.servedModel = (JSON.parse(text) as { model?: string }).model;
      else failureBody = text.slice(0, 300);
    } catch (err) {
      sample.status = (err as Error).name === 'TimeoutError' ? 'timeout' : 'error';
      failureBody = String(err).slice(0, 300);
    }
    sample.latencyMs = Date.now() - startedAt;
    samples.push(sample);
    if (!isOk(sample) && failures.length < 20) failures.push({ at: new Date(startedAt).toISOString(), status: sample.status, body: failureBody });
  }

  const callers = Array.from({ length: options.concurrency }, async () => {
    while (running) await call();
  });

  return {
    report: (sinceMs = 0) => summarize(samples.filter((s) => s.startedAt >= sinceMs), failures.filter((f) => Date.parse(f.at) >= sinceMs)),
    firstServedBy: (model, sinceMs = 0) =>
      samples.filter((s) => s.startedAt >= sinceMs && isOk(s) && s.servedModel === model).reduce<number | undefined>((first, s) => Math.min(first ?? Infinity, s.startedAt + s.latencyMs), undefined),
    async stop() {
      running = false;
      await Promise.all(callers);
      return summarize(samples, failures);
    },
  };
}
