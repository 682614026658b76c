// A real worker process (workers/main.ts, as `npm run worker:local` runs it) for the scripts that
// measure or break one: the benchmark and the chaos run.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './config.js';

/** How long a worker may take to bundle its workflows and poll. */
const pollingDeadlineMs = 120_000;

/** Starts a worker with `env`, its output appended to `logPath`; resolves once it polls, rejects if it exits first or takes over 2 minutes. */
export async function startWorkerProcess(env: NodeJS.ProcessEnv, logPath: string): Promise<ChildProcess> {
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'workers/main.ts')], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the worker did not poll within ${pollingDeadlineMs / 1000} s (log: ${logPath})`));
    }, pollingDeadlineMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`the worker exited with ${code} before it polled (log: ${logPath})`));
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!/worker polling/i.test(chunk.toString())) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve();
    });
    child.once('exit', onExit);
  });
  return child;
}
