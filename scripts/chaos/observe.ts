// What the audit needs to see while the runs go on, observed from outside the product:
// - every Job created, through a Kubernetes watch (resumed after an API server restart), so a
//   Job that was created and deleted again between two looks is still counted;
// - the GPUs of managed pools whose owner is no longer open (sampled from ARM every 2 s): one run,
//   or every run of a workflow id for a pool that records no run id (an endpoint's);
// - how long the runs a worker kill hit take to move again (from Temporal's pending activities).
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, type KubeConfig, type V1Job, Watch } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { ManagedPool } from '../../activities/azure/node-pools.js';
import { runIdLabel, temporalRunIdLabel } from '../../activities/kubernetes/labels.js';
import { poolOwner } from '../../domain/pool-tags.js';
import type { RecordedOwner } from '../../domain/run-identity.js';
import { findVmSize } from '../../domain/vm-sizes.js';

export interface SeenJob {
  uid: string;
  namespace: string;
  name: string;
  run?: string;
  runId?: string;
  firstSeen: string;
}

/** Every Job with a run label seen during the chaos run, by UID. */
export class JobWatch {
  readonly jobs = new Map<string, SeenJob>();
  private stopped = false;
  private abort?: () => void;

  constructor(private readonly kubeConfig: KubeConfig) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.();
  }

  private record(job: V1Job): void {
    const uid = job.metadata?.uid;
    const labels = job.metadata?.labels ?? {};
    if (!uid || labels[runIdLabel] === undefined || this.jobs.has(uid)) return;
    this.jobs.set(uid, { uid, namespace: job.metadata!.namespace!, name: job.metadata!.name!, run: labels[runIdLabel], runId: labels[temporalRunIdLabel], firstSeen: new Date().toISOString() });
  }

  private async loop(): Promise<void> {
    const batch = this.kubeConfig.makeApiClient(BatchV1Api);
    const watch = new Watch(this.kubeConfig);
    let resourceVersion: string | undefined;
    while (!this.stopped) {
      try {
        if (resourceVersion === undefined) {
          // (Re)list: what exists now, and where the watch starts.
          const list = await batch.listJobForAllNamespaces({ labelSelector: runIdLabel });
          for (const job of list.items) this.record(job);
          resourceVersion = list.metadata?.resourceVersion;
        }
        await new Promise<void>((resolve) => {
          void watch
            .watch(
              '/apis/batch/v1/jobs',
              { labelSelector: runIdLabel, resourceVersion, allowWatchBookmarks: true },
              (type: string, job: V1Job & { code?: number }) => {
                if (type === 'ERROR') {
                  resourceVersion = undefined; // 410 Gone: too old, list again
                  return;
                }
                resourceVersion = job.metadata?.resourceVersion ?? resourceVersion;
                if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.record(job);
              },
              () => resolve(),
            )
            .then((controller) => (this.abort = () => controller.abort()), () => resolve());
        });
      } catch {
        // The API server is down (a fault): look again shortly.
      }
      if (!this.stopped) await sleep(1000);
    }
  }
}

/** GPU-minutes of managed pools whose owner was no longer open, per owner ("workflowId runId", or the workflow id alone). */
export class GpuAfterEndSampler {
  readonly minutesByRun = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly listPools: () => Promise<ManagedPool[]>,
    /**
     * When the owner stopped being open (ms), undefined while it is open, as the reaper reads it
     * (ownerIsOpen): one run when the pool records a run id, else any run of the workflow id (an
     * endpoint's pool). A deployed run counts from when its inference is taken down.
     */
    private readonly billableSince: (owner: RecordedOwner & { workflowId: string }) => Promise<number | undefined>,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    let last = Date.now();
    while (!this.stopped) {
      await sleep(this.intervalMs);
      const now = Date.now();
      try {
        for (const pool of await this.listPools()) {
          const owner = poolOwner(pool.tags);
          if (pool.count === 0 || !owner.workflowId) continue;
          const since = await this.billableSince({ workflowId: owner.workflowId, runId: owner.runId });
          if (since === undefined || since > now) continue;
          const gpus = pool.count * (findVmSize(pool.vmSize)?.gpus ?? 0);
          const key = `${owner.workflowId} ${owner.runId ?? '(every run of the id)'}`;
          this.minutesByRun.set(key, (this.minutesByRun.get(key) ?? 0) + (gpus * (now - Math.max(since, last))) / 60_000);
        }
      } catch {
        // ARM or Temporal unreachable for a moment (a fault): this interval is not counted.
      }
      last = now;
    }
  }
}

export interface Recovery {
  worker: string;
  killedAt: string;
  workflowId: string;
  activity: string;
  /** Seconds from the kill until the activity ran again on a live worker (or completed); undefined: not within 3 minutes. */
  seconds?: number;
  /** The run ended first (a fault terminated or cancelled it): no recovery to measure. */
  runEndedFirst?: boolean;
}

const startedState = proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

/**
 * For each activity a killed worker was running, how long until the run moves again: the
 * activity is retried and running on a live worker, or it is no longer pending.
 */
export class RecoveryTracker {
  readonly recoveries: Recovery[] = [];
  private readonly pending: Promise<void>[] = [];

  constructor(
    private readonly client: Client,
    private readonly openExecutions: () => { workflowId: string; runId: string }[],
  ) {}

  workersKilled(identities: string[], killedAt: number): void {
    this.pending.push(this.follow(identities, killedAt));
  }

  /** Resolves once every kill so far has been followed to its end. */
  async settled(): Promise<void> {
    await Promise.all(this.pending);
  }

  /** The run's pending activities; undefined once it has ended (a closed run still lists its last ones), 'completed' when it completed. */
  private async pendingActivities(workflowId: string, runId: string) {
    const description = await this.client.workflow.getHandle(workflowId, runId).describe();
    if (description.status.name === 'COMPLETED') return 'completed' as const;
    return description.status.name === 'RUNNING' ? (description.raw.pendingActivities ?? []) : undefined;
  }

  private async follow(identities: string[], killedAt: number): Promise<void> {
    const hit: { workflowId: string; runId: string; activityId: string; type: string; attempt: number; worker: string }[] = [];
    for (const { workflowId, runId } of this.openExecutions()) {
      const activities = await this.pendingActivities(workflowId, runId).catch(() => undefined);
      for (const a of activities === 'completed' ? [] : (activities ?? [])) {
        if (a.state === startedState && identities.includes(a.lastWorkerIdentity ?? '')) {
          hit.push({ workflowId, runId, activityId: a.activityId ?? '', type: a.activityType?.name ?? '', attempt: a.attempt ?? 1, worker: a.lastWorkerIdentity ?? '' });
        }
      }
    }
    await Promise.all(
      hit.map(async (h) => {
        const recovery: Recovery = { worker: h.worker, killedAt: new Date(killedAt).toISOString(), workflowId: h.workflowId, activity: h.type };
        while (Date.now() - killedAt < 180_000) {
          const now = Date.now();
          const activities = await this.pendingActivities(h.workflowId, h.runId).catch(() => null);
          if (activities === undefined) {
            recovery.runEndedFirst = true;
            break;
          }
          // Completed between two looks (a short run, e.g. a promotion): the activity ran again and completed by then.
          if (activities === 'completed') {
            recovery.seconds = Math.round((now - killedAt) / 100) / 10;
            break;
          }
          if (activities) {
            const a = activities.find((p) => p.activityId === h.activityId);
            const movedOn = !a || (a.state === startedState && (a.attempt ?? 1) > h.attempt && !identities.includes(a.lastWorkerIdentity ?? ''));
            if (movedOn) {
              recovery.seconds = Math.round((now - killedAt) / 100) / 10;
              break;
            }
          }
          await sleep(1000);
        }
        this.recoveries.push(recovery);
      }),
    );
  }
}
