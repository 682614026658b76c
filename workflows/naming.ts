// Deterministic names for what a run creates, derived from its identity (workflow id and run
// id), so that a retry, a second worker or a restarted workflow task computes the same names and
// adopts the objects, while a later run under the same workflow id gets names of its own and
// never adopts what an earlier run left behind.
import { base36Digest, fnv1a } from '../domain/hash.js';
import type { RunOwner } from '../domain/run-identity.js';

/** AKS Linux pool names: lowercase letter first, letters and digits, at most 12 characters. */
const poolNameLength = 12;

/** The prefix, then a 64-bit hash of workflow id and run id in base 36 filling the name to 12 characters. */
export function nodePoolName(prefix: string, owner: RunOwner): string {
  if (!/^[a-z][a-z0-9]{0,3}$/.test(prefix)) throw new Error(`pool name prefix "${prefix}" must be 1-4 lowercase letters/digits, a letter first`);
  return prefix + base36Digest(`${owner.workflowId}\n${owner.runId}`, poolNameLength - prefix.length);
}

/** An endpoint's pool: `ep`, then a hash of its workflow id alone, so every run of the endpoint (continue-as-new) names the same pool. */
export function endpointPoolName(workflowId: string): string {
  return 'ep' + base36Digest(workflowId, poolNameLength - 2);
}

/** A short tag of the run id that keeps the object names of two runs under one workflow id apart. */
export function runTag(owner: RunOwner): string {
  return base36Digest(owner.runId, 5);
}

/** Names of a fineTune run's objects: its run name, the run's tag, and what the object is. */
export function fineTuneObjectNames(runName: string, tag: string) {
  const base = `${runName}-${tag}`;
  return {
    configMap: `${base}-params`,
    results: `${base}-results`,
    /** The tuning Job; a restart on fresh capacity (after a lost node) gets a suffix. */
    trainJob: (restart = 0) => `${base}-train${restart > 0 ? `-r${restart}` : ''}`,
    pushJob: (attempt: number) => `${base}-push-${attempt}`,
    /** The copier Job of a volume output (request output.volume). */
    copyJob: (attempt: number) => `${base}-copy-${attempt}`,
  };
}

/** Kubernetes object names (DNS-1123 labels): the workflow id's slug, a hash of the run, and the run's tag. */
export function objectName(kind: string, owner: RunOwner): string {
  const slug = owner.workflowId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 36);
  return `${kind}-${slug}-${fnv1a(owner.workflowId).toString(36)}-${runTag(owner)}`.replace(/-+/g, '-').slice(0, 63).replace(/-+$/, '');
}
