import type { SimulatedTrainerScript } from './trainer.js';
import type { VllmSettings } from './vllm.js';

export interface SimulatorSettings extends VllmSettings {
  /** How long simulated training takes. */
  trainingMs: number;
  /**
   * Fail the next `times` training pods with this termination reason and exit code (e.g.
   * OOMKilled, 137); with `runId`, only the trainer pods of that run (label aks-finetune.io/run-id).
   */
  failTraining?: { reason: string; exitCode: number; times: number; runId?: string };
  /** The final eval_loss simulated trainers print (when the run holds out a split); default: a value in [0.5, 1.5) per Job name. */
  evalLoss?: number;
  /** Simulated minutes a training step stands for, against tuning.checkpointEveryMinutes (default 1). */
  minutesPerStep?: number;
  /** How the trainers of a run behave (NaN loss, silence, garbage, step count), by the run's label aks-finetune.io/run. */
  trainers?: Record<string, SimulatedTrainerScript>;
}
