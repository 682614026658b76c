// What a failure means for the user, and what to change: turned from a pod's reasons into advice.
import type { TrainingConfig } from './training-config.js';

/** The message of a failed training Job, with advice when the trainer ran out of memory. */
export function trainingFailureMessage(job: string, reason: string | undefined, vmSize: { name: string; gpuMemoryGiB?: number }): string {
  const message = `Training Job ${job} failed: ${reason ?? 'unknown reason'}`;
  if (!/OOMKilled|CUDA out of memory/i.test(reason ?? '')) return message;
  const memory = vmSize.gpuMemoryGiB !== undefined ? `'s ${vmSize.gpuMemoryGiB} GiB` : '';
  return `${message}. The trainer ran out of memory: use method qlora, or a VM size with more GPU memory than ${vmSize.name}${memory}.`;
}

/** Why a run stopped on a diverged loss, and what usually fixes it. */
export function divergedTrainingMessage(job: string, divergence: string, config: TrainingConfig): string {
  const rate = config.training_config.TrainingArguments?.learning_rate;
  const lower = typeof rate === 'number' ? `lower tuning.learningRate (it is ${rate}; try ${rate / 10})` : 'set a lower tuning.learningRate (e.g. 2e-5)';
  return (
    `Training Job ${job} stopped: ${divergence}. The GPUs were released rather than paying for the remaining steps. ` +
    `Usually: ${lower}; check the dataset for empty, huge or mis-formatted records; with method lora on a large model, try qlora. ` +
    'To let such a run go on, set tuning.stopOnDivergence to false.'
  );
}
