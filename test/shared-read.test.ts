// The worker's shared ARM reads (activities/azure/shared-read.ts): how many reads callers
// cause, and that a caller who needs to see its own change gets a read that started after it.
import { describe, expect, it } from 'vitest';
import { sharedRead } from '../activities/azure/shared-read.js';

/** A read that answers with its own sequence number after `ms`. */
function countingRead(ms = 20) {
  let reads = 0;
  return {
    read: async () => {
      const n = ++reads;
      await new Promise((r) => setTimeout(r, ms));
      return n;
    },
    count: () => reads,
  };
}

describe('sharedRead', () => {
  it('fresh: a read sent after the call, shared by everyone who called while the last was out; next: the read in flight', async () => {
    const source = countingRead();
    const shared = sharedRead(source.read, 0);
    const answers = await Promise.all(Array.from({ length: 50 }, () => shared.fresh()));
    // The first call sends read 1 at once; the 49 that came while it was out share read 2.
    expect(answers[0]).toBe(1);
    expect(new Set(answers.slice(1))).toEqual(new Set([2]));
    expect(source.count()).toBe(2);
    // A poller joins the read in flight: one read for all.
    const polled = await Promise.all(Array.from({ length: 50 }, () => shared.next()));
    expect(new Set(polled)).toEqual(new Set([3]));
    expect(source.count()).toBe(3);
  });

  it('reuses a recent result until it is too old or invalidated', async () => {
    const source = countingRead(1);
    const shared = sharedRead(source.read, 0);
    expect(await shared.recent(10_000)).toBe(1);
    expect(await Promise.all(Array.from({ length: 20 }, () => shared.recent(10_000)))).toEqual(Array(20).fill(1));
    shared.invalidate();
    expect(await shared.recent(10_000)).toBe(2);
    await new Promise((r) => setTimeout(r, 15));
    expect(await shared.recent(10)).toBe(3);
  });

  it('spaces reads by the interval, and shares a failure with the callers of that read only', async () => {
    let fail = true;
    const shared = sharedRead(async () => {
      if (fail) throw new Error('ARM said no');
      return Date.now();
    }, 100);
    const failed = await Promise.allSettled([shared.next(), shared.next()]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    const before = Date.now();
    const at = await shared.next();
    expect(at - before).toBeGreaterThanOrEqual(90);
  });
});
