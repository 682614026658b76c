/** FNV-1a, 32 bits: a small stable hash that needs no Node crypto, so workflow code can use it. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const fnv64Offset = 0xcbf29ce484222325n;
const fnv64Prime = 0x100000001b3n;
const mask64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bits (BigInt, so workflow code can use it), over the UTF-16 code units of the text. */
export function fnv1a64(text: string): bigint {
  let hash = fnv64Offset;
  for (let i = 0; i < text.length; i++) hash = ((hash ^ BigInt(text.charCodeAt(i))) * fnv64Prime) & mask64;
  return hash;
}

/**
 * `length` base-36 characters of the text's 64-bit FNV-1a hash (36^10 is about 2^51.7): short
 * names that stay apart where a 32-bit hash would collide among a few ten thousand runs.
 */
export function base36Digest(text: string, length: number): string {
  if (length < 1 || length > 12) throw new Error(`digest length ${length} must be 1-12 base-36 characters`);
  return (fnv1a64(text) % 36n ** BigInt(length)).toString(36).padStart(length, '0');
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
