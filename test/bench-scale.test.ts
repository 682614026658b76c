// The smoke version of `npm run bench:scale` (docs/benchmarks.md): two runs held in flight for a
// few seconds on the test stack, through the real script and its own worker process. It checks
// that the bench measures (calls, memory, histories) and leaves nothing behind; the figures
// themselves come from the full bench, not from here.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../scripts/stack/config.js';

const run = promisify(execFile);

/** The fields of a round of .stack/bench/scale-*.json this test reads. */
interface ScaleRound {
  runs: number;
  kubernetesCallsPerMinutePer100Runs: Record<string, number>;
  armCallsPerMinutePer100Runs: Record<string, number>;
  worker: { rssMiB: number };
  temporal: { sampled: number; historyEventsPerRun: { p50: number } };
}

describe('bench:scale, smoke', () => {
  it('holds 2 runs in flight, reports the steady state, then cancels them and leaves no pool', async () => {
    const args = ['--runs', '2', '--node-ready-seconds', '2', '--window-minutes', '0.25', '--poll-seconds', '2', '--ramp-per-minute', '600', '--settle-minutes', '2', '--history-sample', '2', '--cleanup-minutes', '2'];
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-scale.ts', ...args], { cwd: projectRoot, env: process.env, timeout: 240_000 });
    const file = /Results: (\S+)/.exec(stdout)?.[1];
    expect(file, stdout).toBeDefined();
    const [round] = (JSON.parse(readFileSync(file!, 'utf8')) as { rounds: ScaleRound[] }).rounds;
    expect(round).toMatchObject({ runs: 2, settled: true, inWindow: { trainersRunning: 2, pools: { Succeeded: 2 } }, cleanup: { runsStillOpen: 0, poolsLeft: {} } });
    // Training runs read their trainer's log on every check, and make no ARM call.
    expect(round!.kubernetesCallsPerMinutePer100Runs['get pods/log']).toBeGreaterThan(0);
    expect(round!.armCallsPerMinutePer100Runs.total).toBe(0);
    expect(round!.worker.rssMiB).toBeGreaterThan(0);
    expect(round!.temporal.sampled).toBe(2);
    expect(round!.temporal.historyEventsPerRun.p50).toBeGreaterThan(0);
  });
});
