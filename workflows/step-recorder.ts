// The record of a run's steps that its `status` query shows: one per workflow, shared by every
// workflow type, so the CLI and the UI read the same shape everywhere.
// Every phase and step is logged with its name (the workflow logger adds the workflow id and type)
// and every phase entered is counted (workflows/metrics.ts).
import { isCancellation, log, upsertSearchAttributes } from '@temporalio/workflow';
import { countPhaseEntered } from './metrics.js';
import { PipelinePhase } from './search-attributes.js';

export interface StepRecord {
  name: string;
  startedAt: string;
  endedAt?: string;
  detail?: string;
  /** Set when the step failed: its error message. */
  error?: string;
}

/** The part of a workflow's status the recorder keeps. */
export interface RecordedStatus<Phase extends string> {
  phase: Phase;
  currentStep?: string;
  steps: StepRecord[];
}

export class StepRecorder<Phase extends string> {
  constructor(private readonly status: RecordedStatus<Phase>) {}

  /** Enters a phase: the status and the PipelinePhase search attribute say so. */
  enter(phase: Phase): void {
    this.status.phase = phase;
    upsertSearchAttributes([{ key: PipelinePhase, value: phase }]);
    log.info('phase', { phase });
    countPhaseEntered(phase);
  }

  /** Runs one step and records when it started and ended, what it did (`detail`), or how it failed. */
  async step<T>(name: string, run: () => Promise<T>, detail?: (result: T) => string | undefined): Promise<T> {
    // new Date() is deterministic in workflow code: the sandbox replays time from history.
    const record: StepRecord = { name, startedAt: new Date().toISOString() };
    this.status.steps.push(record);
    this.status.currentStep = name;
    const context = { step: name, phase: this.status.phase };
    log.info('step started', context);
    try {
      const result = await run();
      record.detail = detail?.(result);
      log.info('step finished', { ...context, detail: record.detail });
      return result;
    } catch (err) {
      record.error = err instanceof Error ? err.message : String(err);
      if (isCancellation(err)) log.info('step cancelled', context);
      else log.warn('step failed', { ...context, error: record.error });
      throw err;
    } finally {
      record.endedAt = new Date().toISOString();
      this.status.currentStep = undefined;
    }
  }
}
