// Starts stack components as detached processes with a pid file and a log each, so
// `npm run stack` can exit while they keep running and `stack:stop` ends exactly those.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackConfig } from './config.js';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class StackError extends Error {}

const pidFile = (config: StackConfig, name: string) => join(config.pidsDir, `${name}.pid`);
export const logFile = (config: StackConfig, name: string) => join(config.logsDir, `${name}.log`);

/** The pid of a component this stack started, if that process is still alive. */
export function runningPid(config: StackConfig, name: string): number | undefined {
  const file = pidFile(config, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A recycled pid belongs to some other program: only trust it if its command line matches.
  try {
    const expected = readFileSync(file + '.cmd', 'utf8');
    const actual = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '');
    return actual === expected ? pid : undefined;
  } catch {
    return undefined; // it exited meanwhile, or the pid file predates the .cmd file
  }
}

export function logTail(config: StackConfig, name: string, lines = 30): string {
  const file = logFile(config, name);
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

export async function assertPortFree(host: string, port: number, owner: string, variable: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new StackError(
          err.code === 'EADDRINUSE'
            ? `port ${host}:${port} (${owner}) is in use by another process: stop it or set ${variable}`
            : `cannot bind ${host}:${port} for ${owner}: ${err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

export function startProcess(config: StackConfig, spec: ProcessSpec): number {
  if (!existsSync(spec.command)) {
    throw new StackError(`${spec.name}: ${spec.command} is missing; run \`npm run setup\` first`);
  }
  mkdirSync(config.logsDir, { recursive: true });
  mkdirSync(config.pidsDir, { recursive: true });
  const log = openSync(logFile(config, spec.name), 'a');
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  if (child.pid === undefined) throw new StackError(`${spec.name}: could not start ${spec.command}`);
  child.unref();
  writeFileSync(pidFile(config, spec.name), String(child.pid));
  writeFileSync(pidFile(config, spec.name) + '.cmd', [spec.command, ...spec.args].join('\0'));
  return child.pid;
}

/** Polls `ready` until it returns true; fails early with the log tail if the process exits. */
export async function waitUntilReady(
  config: StackConfig,
  name: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  // Gone only when seen gone twice: right after spawn, /proc/<pid>/cmdline can still be empty
  // while the kernel finishes exec, which runningPid reads as "not our process" (seen once, a
  // chaos stack's etcd reported exited while it went on to start).
  const exited = async () => runningPid(config, name) === undefined && (await sleep(250).then(() => runningPid(config, name) === undefined));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await exited()) {
      throw new StackError(`${name} exited during start-up. Last lines of ${logFile(config, name)}:\n${logTail(config, name)}`);
    }
    if (await ready().catch(() => false)) return;
    await sleep(250);
  }
  throw new StackError(
    `${name} was not ready after ${timeoutMs / 1000}s. Last lines of ${logFile(config, name)}:\n${logTail(config, name)}`,
  );
}

export async function stopProcess(config: StackConfig, name: string): Promise<boolean> {
  const pid = runningPid(config, name);
  rmSync(pidFile(config, name), { force: true });
  rmSync(pidFile(config, name) + '.cmd', { force: true });
  if (pid === undefined) return false;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal); // detached: the component leads its own process group
    } catch {
      /* already gone */
    }
  };
  signalGroup('SIGTERM');
  for (let i = 0; i < 40; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await sleep(250);
  }
  signalGroup('SIGKILL');
  return true;
}
