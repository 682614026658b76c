// What a failure means for the user, and what to change: turned from a pod's reasons into advice.

/** The message of a failed training Job, with advice when the trainer ran out of memory. */
export function trainingFailureMessage(job: string, reason: string | undefined, vmSize: { name: string; gpuMemoryGiB?: number }): string {
  const message = `Training Job ${job} failed: ${reason ?? 'unknown reason'}`;
  if (!/OOMKilled|CUDA out of memory/i.test(reason ?? '')) return message;
  const memory = vmSize.gpuMemoryGiB !== undefined ? `'s ${vmSize.gpuMemoryGiB} GiB` : '';
  return `${message}. The trainer ran out of memory: use method qlora, or a VM size with more GPU memory than ${vmSize.name}${memory}.`;
}
