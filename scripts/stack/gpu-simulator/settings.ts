import type { VllmSettings } from './vllm.js';

export interface SimulatorSettings extends VllmSettings {
  /** How long simulated training takes. */
  trainingMs: number;
  /** Fail the next `times` training pods with this termination reason and exit code (e.g. OOMKilled, 137). */
  failTraining?: { reason: string; exitCode: number; times: number };
}
