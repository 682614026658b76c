// The task queue and the workflow ids, in one place: the worker, the client, the CLI, the
// schedules, the scripts and the tests build them here. Free of I/O: workflow code imports it.

/** The task queue the worker polls and runs are started on (TEMPORAL_TASK_QUEUE overrides it). */
export const defaultTaskQueue = 'fine-tuning';

/** A fineTune run: `fine-tune-<name>` (the client's default name: the run name or model, then the start time). */
export const fineTuneWorkflowId = (name: string): string => `fine-tune-${name}`;

/** A retrain run started by the retraining Schedule `scheduleId` (Temporal appends each run's scheduled time). */
export const retrainWorkflowId = (scheduleId: string): string => `retrain-${scheduleId}`;

/** The fineTune child of a retrain run: deterministic, so a replayed or retried parent adopts it. */
export const retrainChildWorkflowId = (retrainRunWorkflowId: string): string => `${retrainRunWorkflowId}-fine-tune`;

/** A gpuCheck run: `gpu-check-<name>`. */
export const gpuCheckWorkflowId = (name: string): string => `gpu-check-${name}`;

/** The Schedule that runs the idle-GPU reaper (`npm run setup:temporal`). */
export const reaperScheduleId = 'idle-gpu-reaper';

/** A reapIdleGpuPools run started by hand: `reaper-<name>`. A Schedule's runs carry the Schedule's id (Temporal appends the scheduled time). */
export const reapIdleGpuPoolsWorkflowId = (name: string): string => `reaper-${name}`;

/** The long-lived workflow that owns an endpoint: `endpoint-<name>`. Its pool and objects record only this id (no run id): continue-as-new keeps them owned. */
export const endpointWorkflowId = (endpoint: string): string => `endpoint-${endpoint}`;

/** A promoteAdapter run: `promote-<name>`; the promotion a fineTune run starts is `<its workflow id>-promote`. */
export const promotionWorkflowId = (name: string): string => `promote-${name}`;
export const fineTunePromotionWorkflowId = (fineTuneRunWorkflowId: string): string => `${fineTuneRunWorkflowId}-promote`;
