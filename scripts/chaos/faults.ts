// The seeded fault injector. The plan (which faults, when, with what parameters, and a random
// draw for choosing a target) comes from the seed alone, so `--seed` replays it; which runs are
// candidates for a target depends on where they are at that moment. Every fault is recorded,
// so the audit can tell a run that failed because of an injected fault from any other failure.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { EmulatorControl } from '../stack/aks-emulator/control-client.js';
import type { StackConfig } from '../stack/config.js';
import type { SimulatorControl } from '../stack/gpu-simulator/control-client.js';
import type { FineTuneStatus } from '../../workflows/fine-tune.js';
import { restartComponent, type WorkerProcesses } from './processes.js';
import type { SeededRandom } from './random.js';

export const faultKinds = [
  'kill-one-worker',
  'kill-all-workers',
  'temporal-restart',
  'apiserver-restart',
  'registry-down',
  'arm-throttle',
  'arm-server-error',
  'arm-quota',
  'arm-capacity',
  'arm-preemption',
  'spot-eviction',
  'trainer-oom',
  'cancel',
  'terminate',
] as const;
export type FaultKind = (typeof faultKinds)[number];

/** How often each kind comes up once every kind has had its turn. */
const weights: Record<FaultKind, number> = {
  'kill-one-worker': 3,
  'kill-all-workers': 1,
  'temporal-restart': 1,
  'apiserver-restart': 1,
  'registry-down': 1,
  'arm-throttle': 2,
  'arm-server-error': 2,
  'arm-quota': 1,
  'arm-capacity': 1,
  'arm-preemption': 1,
  'spot-eviction': 2,
  'trainer-oom': 1,
  cancel: 2,
  terminate: 2,
};

export interface PlannedFault {
  kind: FaultKind;
  /** When, from the start of the runs. */
  atMs: number;
  /** How long a process or the registry stays down. */
  downMs: number;
  /** How many ARM requests an ARM fault applies to. */
  times: number;
  retryAfterSeconds: number;
  method: 'PUT' | 'DELETE';
  /** A draw in [0, 1) that picks the target among the candidates at that moment. */
  choice: number;
}

export interface InjectedFault {
  index: number;
  kind: FaultKind;
  at: string;
  /** Seconds from the start of the runs. */
  offsetSeconds: number;
  /** The run it was aimed at (cancel, terminate, trainer-oom, spot-eviction). */
  target?: { workflowId: string; runId: string };
  detail: string;
  outcome: 'injected' | 'skipped';
}

/** Every kind once (when count allows, in a seeded order), then weighted picks; times spread over the window. */
export function planFaults(random: SeededRandom, count: number, kinds: readonly FaultKind[], windowMs: number): PlannedFault[] {
  const bag = kinds.flatMap((k) => Array<FaultKind>(weights[k]).fill(k));
  const chosen = [...random.shuffle(kinds).slice(0, count)];
  while (chosen.length < count) chosen.push(random.pick(bag));
  const times = chosen.map(() => Math.round(windowMs * (0.1 + 0.9 * random.next()))).sort((a, b) => a - b);
  return chosen.map((kind, i) => ({
    kind,
    atMs: times[i]!,
    downMs: kind === 'registry-down' ? random.int(10_000, 25_000) : random.int(1_000, 6_000),
    times: random.int(1, 3),
    retryAfterSeconds: random.int(1, 5),
    method: random.pick(['PUT', 'DELETE'] as const),
    choice: random.next(),
  }));
}

/** An open fineTune execution (a top-level run or a retrain's child) and where it is. */
export interface OpenFineTune {
  workflowId: string;
  runId: string;
  status: FineTuneStatus;
}

export interface InjectorDeps {
  stack: StackConfig;
  client: Client;
  emulator: EmulatorControl;
  simulator: SimulatorControl;
  workers: WorkerProcesses;
  /** Top-level runs (fineTune or retrain) that are open now. */
  openRuns(): { workflowId: string; runId: string }[];
  /** Open fineTune executions, top-level and children, with their status. */
  openFineTunes(): Promise<OpenFineTune[]>;
  /** Told of each worker kill, to measure how long the runs it hit take to move again. */
  workersKilled(identities: string[], at: number): void;
  log(line: string): void;
}

const pickBy = <T>(items: T[], choice: number): T | undefined => items[Math.floor(choice * items.length)];

export class FaultInjector {
  readonly injected: InjectedFault[] = [];
  /** Runs already aimed at, so each gets at most one targeted fault. */
  private readonly targeted = new Set<string>();

  constructor(private readonly deps: InjectorDeps) {}

  /** Injects the planned faults in order, each at its time (or as soon as the one before has ended). */
  async run(plan: PlannedFault[], startedAt: number, until: () => boolean): Promise<void> {
    for (const [index, fault] of plan.entries()) {
      const wait = startedAt + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      if (until()) return;
      const at = Date.now();
      const record = (outcome: InjectedFault['outcome'], detail: string, target?: InjectedFault['target']) => {
        const entry = { index, kind: fault.kind, at: new Date(at).toISOString(), offsetSeconds: Math.round((at - startedAt) / 100) / 10, target, detail, outcome };
        this.injected.push(entry);
        this.deps.log(`fault #${index} ${fault.kind} at +${entry.offsetSeconds}s: ${outcome === 'skipped' ? 'skipped, ' : ''}${detail}`);
      };
      try {
        await this.inject(fault, record);
      } catch (err) {
        record('skipped', `could not inject: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  private async inject(fault: PlannedFault, record: (outcome: InjectedFault['outcome'], detail: string, target?: InjectedFault['target']) => void): Promise<void> {
    const { emulator, simulator, workers, stack, client } = this.deps;
    switch (fault.kind) {
      case 'kill-one-worker':
      case 'kill-all-workers': {
        const slots = fault.kind === 'kill-all-workers' ? workers.slots.map((s) => s.slot) : [Math.floor(fault.choice * workers.slots.length)];
        const killedAt = Date.now();
        const identities = slots.map((slot) => workers.kill(slot));
        this.deps.workersKilled(identities, killedAt);
        record('injected', `SIGKILL worker ${slots.join(', ')} (${identities.join(', ')}), restarted after ${fault.downMs} ms`);
        await sleep(fault.downMs);
        await Promise.all(slots.map((slot) => workers.start(slot)));
        return;
      }
      case 'temporal-restart':
      case 'apiserver-restart':
      case 'registry-down': {
        const component = fault.kind === 'temporal-restart' ? 'temporal' : fault.kind === 'apiserver-restart' ? 'kube-apiserver' : 'registry';
        record('injected', `${component} stopped, started again after ${fault.downMs} ms down`);
        await restartComponent(stack, component, fault.downMs);
        return;
      }
      case 'arm-throttle':
        await emulator.addFault({ kind: 'throttle', method: fault.method, times: fault.times, retryAfterSeconds: fault.retryAfterSeconds });
        return record('injected', `the next ${fault.times} ARM ${fault.method} request(s): 429 Throttled, Retry-After ${fault.retryAfterSeconds} s`);
      case 'arm-server-error':
        await emulator.addFault({ kind: 'server-error', method: fault.method, times: fault.times });
        return record('injected', `the next ${fault.times} ARM ${fault.method} request(s): 500`);
      case 'arm-quota':
        await emulator.addFault({ kind: 'quota', method: 'PUT', times: 1 });
        return record('injected', 'the next agent pool PUT: 400 QuotaExceeded');
      case 'arm-capacity':
        await emulator.addFault({ kind: 'capacity', method: 'PUT', times: fault.times, subcode: fault.choice < 0.5 ? 'ZonalAllocationFailed' : 'AllocationFailed' });
        return record('injected', `the next ${fault.times} agent pool operation(s): allocation failure`);
      case 'arm-preemption':
        await emulator.addFault({ kind: 'preemption', method: 'PUT', times: 1 });
        return record('injected', 'the next agent pool operation: AKSOperationPreempted');
      case 'spot-eviction': {
        const training = await this.waitForCandidate((r) => r.status.gpu?.spot === true && r.status.training?.state === 'running' && r.status.capacityRecoveries.length === 0);
        const target = pickBy(training, fault.choice);
        if (!target) return record('skipped', 'no spot run was training');
        const { evicted } = await emulator.evictSpotNodes(target.status.gpu!.pool, 1);
        this.targeted.add(target.runId);
        return record('injected', `evicted ${evicted.join(', ')} of pool ${target.status.gpu!.pool} under its trainer`, { workflowId: target.workflowId, runId: target.runId });
      }
      case 'trainer-oom': {
        const before = await this.waitForCandidate((r) => r.status.phase === 'training' || r.status.phase === 'preparing');
        const target = pickBy(before, fault.choice);
        if (!target) return record('skipped', 'no run was about to train');
        // Both pods the tuning Job may start (backoffLimit 1): the same config runs out of memory again.
        await simulator.settings({ failTraining: { reason: 'OOMKilled', exitCode: 137, times: 2, runId: target.runId } });
        this.targeted.add(target.runId);
        return record('injected', 'its trainer pods end OOMKilled (exit 137)', { workflowId: target.workflowId, runId: target.runId });
      }
      case 'cancel':
      case 'terminate': {
        const target = pickBy(this.deps.openRuns().filter((r) => !this.targeted.has(r.runId)), fault.choice);
        if (!target) return record('skipped', 'no run was open');
        const handle = client.workflow.getHandle(target.workflowId, target.runId);
        await (fault.kind === 'cancel' ? handle.cancel() : handle.terminate('chaos: terminated by the fault injector'));
        this.targeted.add(target.runId);
        return record('injected', fault.kind === 'cancel' ? 'cancelled' : 'terminated (no cleanup runs: the reaper must sweep)', { workflowId: target.workflowId, runId: target.runId });
      }
    }
  }

  /** Open fineTunes that fit, not aimed at before; looks again for up to 10 s while there are none. */
  private async waitForCandidate(fits: (r: OpenFineTune) => boolean): Promise<OpenFineTune[]> {
    for (let i = 0; i < 5; i++) {
      const found = (await this.deps.openFineTunes()).filter((r) => fits(r) && !this.targeted.has(r.runId));
      if (found.length > 0) return found;
      await sleep(2000);
    }
    return [];
  }
}
