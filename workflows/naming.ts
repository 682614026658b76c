// Deterministic names for what a run creates, derived from its workflow id, so that a retry,
// a second worker or a restarted workflow task computes the same names and adopts the objects.
import { fnv1a } from '../domain/hash.js';

/** AKS pool names: lowercase letter first, letters and digits, at most 12 characters. */
export function nodePoolName(prefix: string, workflowId: string): string {
  if (!/^[a-z][a-z0-9]{0,4}$/.test(prefix)) throw new Error(`pool name prefix "${prefix}" must be 1-5 lowercase letters/digits`);
  return prefix + fnv1a(workflowId).toString(36).padStart(7, '0');
}

/** Kubernetes object names (DNS-1123 labels): the run's slug plus a hash that keeps it unique. */
export function objectName(kind: string, workflowId: string): string {
  const slug = workflowId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return `${kind}-${slug}-${fnv1a(workflowId).toString(36)}`.replace(/-+/g, '-').slice(0, 63).replace(/-+$/, '');
}
