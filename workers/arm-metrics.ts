// Counts what ARM answers the worker's activities with: throttles (429), server errors (5xx),
// and the retries the Azure SDK's retry policy makes after them, and logs each throttle and
// server error. The policy sits below the retry policy ("perRetry"), so it sees every attempt; it
// counts through the calling activity's metric meter (the worker's Prometheus endpoint) and logs
// through its logger (with the workflow id and activity type). Calls made outside an activity
// (tests, scripts) are not the worker's and are neither counted nor logged.
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { asyncLocalStorage } from '@temporalio/activity';

/**
 * "METHOD resourceType" of an ARM request, from its path: the last resource type after the
 * provider namespace, e.g. "PUT agentPools", "GET operations" (a long-running operation's poll).
 */
export function armOperation(method: string, url: string): string {
  const segments = new URL(url).pathname.split('/').filter(Boolean);
  const provider = segments.map((s) => s.toLowerCase()).lastIndexOf('providers');
  // After "providers/<namespace>": type, name, type, name...
  const types = provider < 0 ? [] : segments.slice(provider + 2).filter((_, i) => i % 2 === 0);
  return `${method} ${types.at(-1) ?? 'unknown'}`;
}

export function armMetricsPolicy(): PipelinePolicy {
  const seen = new WeakSet<object>();
  return {
    name: 'aksFinetuneArmMetrics',
    async sendRequest(request, next) {
      const activity = asyncLocalStorage.getStore();
      const meter = activity?.metricMeter;
      const operation = armOperation(request.method, request.url);
      if (seen.has(request)) meter?.createCounter('aks_finetune_arm_retries', 'requests', 'ARM requests sent again by the Azure SDK retry policy').add(1, { operation });
      seen.add(request);
      const response = await next(request);
      if (response.status === 429) {
        meter?.createCounter('aks_finetune_arm_throttles', 'responses', 'ARM responses 429 (throttled)').add(1, { operation });
        activity?.log.warn('ARM throttled', { operation, retryAfter: response.headers.get('retry-after') });
      } else if (response.status >= 500) {
        meter?.createCounter('aks_finetune_arm_server_errors', 'responses', 'ARM responses 5xx').add(1, { operation, status: String(response.status) });
        activity?.log.warn('ARM server error', { operation, status: response.status });
      }
      return response;
    },
  };
}
