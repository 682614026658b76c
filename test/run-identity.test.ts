// Run identity: pool names that do not collide, and the ownership decisions the reaper and the
// warm-pool search make from what a resource records about its owner.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { base36Digest, fnv1a64 } from '../domain/hash.js';
import { isOwnedBy, ownerIsOpen, type RunRecord, sweepDecision } from '../domain/run-identity.js';
import { fineTuneObjectNames, nodePoolName, objectName, runTag } from '../workflows/naming.js';

const run = (workflowId: string, status = 'RUNNING'): RunRecord => ({ workflowId, runId: randomUUID(), status });

describe('pool and object names', () => {
  it('are valid AKS pool names of 12 characters, one per run, also under one workflow id', () => {
    const workflowId = 'fine-tune-nightly';
    const a = nodePoolName('ft', { workflowId, runId: randomUUID() });
    const b = nodePoolName('ft', { workflowId, runId: randomUUID() });
    expect(a).toMatch(/^ft[a-z0-9]{10}$/);
    expect(b).not.toBe(a);
    expect(nodePoolName('gchk', { workflowId, runId: 'r' })).toMatch(/^gchk[a-z0-9]{8}$/);
    expect(nodePoolName('ft', { workflowId, runId: 'r' })).toBe(nodePoolName('ft', { workflowId, runId: 'r' })); // a retry computes the same name
  });

  it('do not collide among 100,000 runs (a 32-bit hash is expected to, once)', () => {
    const names = new Set<string>();
    for (let i = 0; i < 100_000; i++) names.add(nodePoolName('ft', { workflowId: `ft-${i}`, runId: randomUUID() }));
    expect(names.size).toBe(100_000);
  });

  it('use the 64-bit FNV-1a test vectors', () => {
    // http://www.isthe.com/chongo/tech/comp/fnv/ : FNV-1a 64 of "" and "a".
    expect(fnv1a64('')).toBe(0xcbf29ce484222325n);
    expect(fnv1a64('a')).toBe(0xaf63dc4c8601ec8cn);
    expect(base36Digest('a', 10)).toHaveLength(10);
  });

  it('give each run under one workflow id its own Kubernetes object names', () => {
    const workflowId = 'ft-same-id';
    const [first, second] = [randomUUID(), randomUUID()].map((runId) => ({ workflowId, runId }));
    expect(fineTuneObjectNames(workflowId, runTag(first!)).trainJob()).not.toBe(fineTuneObjectNames(workflowId, runTag(second!)).trainJob());
    expect(fineTuneObjectNames('x'.repeat(40), runTag(first!)).pushJob(5).length).toBeLessThanOrEqual(63);
    expect(objectName('gpu-check', first!)).not.toBe(objectName('gpu-check', second!));
    expect(objectName('gpu-check', { workflowId: 'y'.repeat(200), runId: randomUUID() })).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])$/);
  });
});

describe('ownership', () => {
  it('belongs to a run only when both its workflow id and its run id match', () => {
    const owner = { workflowId: 'w', runId: 'r1' };
    expect(isOwnedBy({ workflowId: 'w', runId: 'r1' }, owner)).toBe(true);
    expect(isOwnedBy({ workflowId: 'w', runId: 'r0' }, owner)).toBe(false);
    expect(isOwnedBy({ workflowId: 'w' }, owner)).toBe(false);
  });

  it('is open only for the recorded run, not for a later run under the same workflow id', () => {
    const earlier = run('w', 'TERMINATED');
    const later = run('w');
    expect(ownerIsOpen(earlier, [earlier, later])).toBe(false);
    expect(ownerIsOpen(later, [earlier, later])).toBe(true);
    expect(ownerIsOpen({ workflowId: 'w' }, [earlier, later])).toBe(true); // recorded without a run id: any open run counts
    expect(ownerIsOpen({ workflowId: 'w', runId: 'unknown' }, [later])).toBe(false);
  });

  it("sweeps an ended run's objects, keeps an open run's and the inference a completed run deployed", () => {
    const open = run('a');
    const terminated = run('b', 'TERMINATED');
    const completed = run('c', 'COMPLETED');
    const runs = [open, terminated, completed];
    expect(sweepDecision('Job', open, runs)).toMatchObject({ remove: false });
    expect(sweepDecision('Job', terminated, runs)).toEqual({ remove: true, reason: `its run b (${terminated.runId}) has ended (TERMINATED)` });
    expect(sweepDecision('Deployment', terminated, runs).remove).toBe(true);
    expect(sweepDecision('ConfigMap', completed, runs).remove).toBe(true);
    expect(sweepDecision('Service', completed, runs)).toMatchObject({ remove: false, reason: expect.stringContaining('which completed') });
    expect(sweepDecision('Deployment', { workflowId: 'gone', runId: 'x' }, runs).remove).toBe(false);
    expect(sweepDecision('PersistentVolumeClaim', { workflowId: 'gone', runId: 'x' }, runs).remove).toBe(true);
    expect(sweepDecision('Job', {}, runs)).toEqual({ remove: false, reason: 'no owner recorded' });
  });
});
