// What one fineTune run knows about itself while it runs: its status (the `status` query), its
// plan, the names of what it creates, and the GPU pool it holds. The step functions in
// fine-tune.ts, fine-tune-gpus.ts and job-watch.ts all work on this one object.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { JobProgress } from '../activities/kubernetes/jobs.js';
import type { FineTunePlan } from '../domain/fine-tune-request.js';
import type { GpuAttemptRecord } from '../domain/gpu-candidates.js';
import type { RunOwner } from '../domain/run-identity.js';
import type { fineTuneObjectNames } from './naming.js';
import type { StepRecord, StepRecorder } from './step-recorder.js';
import type { TrainingStatus } from './training-watch.js';

export type FineTunePhase =
  | 'validating'
  | 'provisioning'
  | 'preparing'
  | 'training'
  | 'pushing'
  | 'releasing-gpus'
  | 'deploying'
  | 'promoting'
  | 'cleaning-up'
  | 'succeeded'
  | 'failed'
  | 'cancelled';

export type FineTuneStep = StepRecord;

export interface FineTuneStatus {
  phase: FineTunePhase;
  currentStep?: string;
  model?: string;
  method?: string;
  steps: FineTuneStep[];
  /** What this run created, as "Kind/name". */
  created: string[];
  /** What was removed or released, as "Kind/name" (pools: "AgentPool/name (deleted|scaled to 0)"). */
  released: string[];
  gpu?: {
    pool: string;
    vmSize: string;
    spot: boolean;
    /** True when the run uses a pool it did not create (named in the request, or a claimed warm pool). */
    reusedPool: boolean;
    /** The warm pool's previous owner, and how long that run took to get its GPUs: what this run saved. */
    reusedFrom?: string;
    provisioningSecondsSaved?: number;
    gpusPerNode?: number;
    readyAt?: string;
    releasedAt?: string;
    /** GPU-minutes the run has held so far (pool nodes Ready until released). */
    /** The availability zone the pool was pinned to, when the attempt that got it named one. */
    zone?: string;
    /** The cluster target the run landed in, when not the worker's home cluster. */
    cluster?: string;
    /** Every try for GPUs, newest last (bounded): size, Spot, zone, outcome, Azure's code, seconds. */
    attempts?: GpuAttemptRecord[];
    /** The last quota read: each quota the attempts draw on, or why it could not be read. */
    quota?: string;
    /** How the training arguments changed for the size the run got (another GPU count). */
    trainingChange?: string;
    gpuMinutes: number;
    estimatedCost?: number;
    currency: string;
    pricesAsOf: string;
  };
  /** Each time a node went away under the trainer or the pusher and the step started again on fresh capacity. */
  capacityRecoveries: { at: string; step: string; reason: string }[];
  /** The tuning Job and the trainer's progress: step, loss, ETA, loss curve, checkpoints, resumes (docs/pipeline.md, "Training progress"). */
  training?: TrainingStatus;
  /** The trainer's last eval_loss on the held-out split (request evaluation.testSplit), read from its log. */
  evalLoss?: number;
  pushAttempts: number;
  /** The last pusher Job (or copier Job, for a volume output). */
  push?: JobProgress & { job: string };
  /**
   * The adapter: an image (image, then digest and reference once pushed), or files on the user's
   * PersistentVolumeClaim (volume, then what was copied and their content digest, the diff_id the
   * same files would have as an image's layer).
   */
  adapter?: { image?: string; digest?: string; reference?: string; volume?: string; contentDigest?: string; files?: string[] };
  inference?: { service: string; models: string[] };
  /** With promote: the promotion child run and how it ended (promoted, rejected, rolled-back). */
  promotion?: { workflowId: string; endpoint: string; alias: string; state?: string; versionName?: string; passRate?: number; gate?: string[] };
  /** The root cause of a failure: the ARM, Kubernetes or validation message, with advice. */
  error?: string;
  /** Cleanup steps that failed after their retries (each ran on its own; the GPU pool was still released). */
  cleanupErrors?: string[];
  problems?: string[];
}

export const fineTuneStatusQuery = defineQuery<FineTuneStatus>('status');
/** Sent by the worker's shared Job watcher when a Job of this run completes or fails. */
export const jobFinishedSignal = defineSignal<[{ namespace: string; name: string }]>('jobFinished');

/** The GPU pool a run works on, and whether it is the run's to release. */
export interface RunPool {
  name: string;
  /** The cluster target the pool is in (or its create was last asked of); undefined: the worker's home cluster. Every Kubernetes step of the run goes there. */
  cluster?: string;
  /** The zone the run's attempt pinned the pool to: a recovery asks for the same (its results disk is zonal). */
  zone?: string;
  /** The run created or claimed it (so it releases it); false for a pool named in the request. */
  owned: boolean;
  released: boolean;
}

export interface FineTuneRun {
  /** This run (workflow id and run id): recorded on everything it creates, so no other run adopts or deletes it. */
  owner: RunOwner;
  status: FineTuneStatus;
  recorder: StepRecorder<FineTunePhase>;
  /** Names of this run's Jobs that the shared Job watcher reported finished. */
  finishedJobs: Set<string>;
  /** Set once the request is valid: nothing is created before. */
  plan?: FineTunePlan;
}

/** A run past validation. */
export interface PlannedRun extends FineTuneRun {
  plan: FineTunePlan;
  pool: RunPool;
  names: ReturnType<typeof fineTuneObjectNames>;
}
