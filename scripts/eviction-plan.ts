// Pure helpers of `npm run bench:cost`'s spot-eviction section: a seeded plan of when Azure
// evicts each job's node, what that plan should cost a trainer that resumes from checkpoints
// and one that restarts from step 0, and the steps an attempt trained. No I/O.

/** mulberry32: a small seeded generator in [0, 1), so a seed gives the same plan on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Evictions as a Poisson process over the time a node trains (`ratePerGpuHour` a GPU-hour of
 * training, one GPU a node): for each job, the training steps each attempt gets through before its
 * node is evicted, at most `maxPerJob` attempts (the workflow's capacity recoveries). Memoryless:
 * a fresh node waits a fresh exponential time, so an attempt that needs fewer steps (a resumed
 * one) is less likely to be evicted. Both tracks use the same plan, so they lose nodes at the same
 * moments of each attempt.
 */
export function planEvictions(p: { jobs: number; ratePerGpuHour: number; seed: number; minutesPerStep: number; maxPerJob: number }): number[][] {
  const random = seededRandom(p.seed);
  return Array.from({ length: p.jobs }, () =>
    Array.from({ length: p.maxPerJob }, () => {
      const u = random(); // drawn even at rate 0, so a job's plan does not depend on the rate's zeros
      if (!(p.ratePerGpuHour > 0)) return Infinity;
      const minutes = (-Math.log(1 - u) / p.ratePerGpuHour) * 60;
      return Math.max(1, Math.ceil(minutes / p.minutesPerStep));
    }),
  );
}

/** The steps between the simulated trainer's checkpoints: it saves once `everyMinutes` have passed, counting `minutesPerStep` a step. */
export function checkpointEverySteps(everyMinutes: number, minutesPerStep: number): number {
  let minutes = 0;
  for (let steps = 1; ; steps++) {
    minutes += minutesPerStep;
    if (minutes >= everyMinutes) return steps;
  }
}

export interface PredictedJob {
  /** Step at which each eviction happens. */
  evictedAt: number[];
  /** Step each attempt starts from. */
  startsFrom: number[];
  stepsTrained: number;
}

/**
 * What a job's plan does to a trainer that checkpoints every `checkpointSteps` steps (resuming
 * from the newest, counting again from there) or, without, restarts from step 0 each attempt.
 */
export function predictJob(plan: number[], totalSteps: number, checkpointSteps?: number): PredictedJob {
  const result: PredictedJob = { evictedAt: [], startsFrom: [0], stepsTrained: 0 };
  let from = 0;
  for (const after of plan) {
    if (from + after >= totalSteps) break;
    const at = from + after;
    result.evictedAt.push(at);
    result.stepsTrained += after;
    // Checkpoints at from + n, from + 2n, ... before the last step.
    from = checkpointSteps ? from + Math.floor(after / checkpointSteps) * checkpointSteps : 0;
    result.startsFrom.push(from);
  }
  result.stepsTrained += totalSteps - from;
  return result;
}

/**
 * The steps one attempt trained: from where it started to where it was when its node went (the
 * next attempt's start, when a checkpoint was saved in the moment after the last read), or to the
 * end.
 */
export function attemptSteps(from: number, end: number, nextFrom?: number): number {
  return Math.max(end, nextFrom ?? 0) - from;
}

/** Whether `part` is `whole` with some elements left out, in order. */
export function isSubsequence<T>(part: T[], whole: T[]): boolean {
  let i = 0;
  for (const x of whole) if (i < part.length && part[i] === x) i++;
  return i === part.length;
}

export const round = (n: number, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};
