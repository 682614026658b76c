// Liveness heartbeats for every activity. A heartbeat timeout is how Temporal notices that the
// worker running an activity is gone (SIGKILL, node loss): without heartbeats a lost activity
// waits out its whole start-to-close timeout before it is retried elsewhere. Progress
// heartbeats (an ARM poll, a node joining) only come when something changes, and the Azure
// SDK may sit out a throttling Retry-After of up to 60 s between polls (AKS: 429 Throttled,
// https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/create-upgrade-delete/429-too-many-requests-errors),
// so a timer beats besides them while the activity runs.
import { Context } from '@temporalio/activity';

/** Beats this many times per heartbeat timeout (the worker sends at most one every few seconds). */
const beatsPerTimeout = 4;

/** The same activities, each heartbeating on a timer while it runs when its options set a heartbeat timeout. */
export function withLivenessHeartbeats<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped = Object.entries(activities).map(([name, fn]) => [
    name,
    async (...args: never[]) => {
      const ctx = Context.current();
      const timeoutMs = ctx.info.heartbeatTimeoutMs;
      const timer = timeoutMs ? setInterval(() => ctx.heartbeat(), Math.max(1000, timeoutMs / beatsPerTimeout)) : undefined;
      try {
        return await fn(...args);
      } finally {
        clearInterval(timer);
      }
    },
  ]);
  return Object.fromEntries(wrapped) as T;
}
