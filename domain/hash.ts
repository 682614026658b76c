/** FNV-1a, 32 bits: a small stable hash that needs no Node crypto, so workflow code can use it. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const labelValue = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * A Kubernetes label value naming a run: the workflow id when it is one (63 characters of
 * [-_.A-Za-z0-9], alphanumeric at both ends); otherwise a cleaned, shortened id with a hash of
 * the whole (Schedules, for one, put ':' in the ids of the runs they start).
 */
export function runLabelValue(workflowId: string): string {
  if (labelValue.test(workflowId)) return workflowId;
  const cleaned = workflowId.replace(/[^-A-Za-z0-9_.]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 54).replace(/[^A-Za-z0-9]+$/, '');
  return `${cleaned}-${fnv1a(workflowId).toString(36)}`.replace(/^-/, '');
}
