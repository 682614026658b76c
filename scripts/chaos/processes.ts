// The processes the fault injector kills and restarts: real worker processes (workers/main.ts
// with the stack's environment, as `npm run worker:local` runs it) and the stack's own
// components (Temporal, kube-apiserver, the registry), through the stack's pid files.
import type { ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack } from '../stack/cli.js';
import type { StackConfig } from '../stack/config.js';
import { stopProcess } from '../stack/processes.js';
import { startWorkerProcess } from '../stack/worker-process.js';

export interface WorkerSlot {
  slot: number;
  process?: ChildProcess;
  /** The Temporal worker identity: the SDK's default, pid@host. */
  identity?: string;
}

/** Two (or more) worker processes polling the stack's task queue, each restartable. */
export class WorkerProcesses {
  readonly slots: WorkerSlot[];

  constructor(
    count: number,
    private readonly logsDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.slots = Array.from({ length: count }, (_, slot) => ({ slot }));
  }

  /** Starts the worker of a slot and resolves once it polls (bounded: 2 minutes). */
  async start(slot: number): Promise<void> {
    const child = await startWorkerProcess(this.env, join(this.logsDir, `worker-${slot}.log`));
    Object.assign(this.slots[slot]!, { process: child, identity: `${child.pid}@${hostname()}` });
  }

  /** SIGKILL: no graceful shutdown, in-flight activities are lost with the process. Returns its identity. */
  kill(slot: number): string {
    const state = this.slots[slot]!;
    const identity = state.identity!;
    state.process?.removeAllListeners('exit');
    state.process?.kill('SIGKILL');
    state.process = undefined;
    return identity;
  }

  /** Ends every worker that is running (SIGTERM: the graceful shutdown a rolling update gives). */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        const child = s.process;
        if (!child || child.exitCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(30_000).then(() => child.kill('SIGKILL'))]);
      }),
    );
  }
}

/** Stops a stack component, leaves it down for `downMs`, then starts whatever of the stack is down again. */
export async function restartComponent(config: StackConfig, component: 'temporal' | 'kube-apiserver' | 'registry', downMs: number): Promise<void> {
  await stopProcess(config, component);
  await sleep(downMs);
  await startStack(config, () => undefined);
}
