// The agent pools of one emulated managed cluster and their long-running operations.
// A PUT or DELETE is accepted at once and finished later (after the configured provisioning
// delay), as ARM does; the nodes are made to match before the operation reports Succeeded.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ArmError } from './arm-error.js';
import { allocationFailure, capacityRandom, type CapacitySettings, maxAgentPoolsPerCluster, noLimits, quotaRefusal } from './capacity.js';
import { type AgentPoolProperties, parseAgentPoolSpec } from './agent-pool-spec.js';
import type { PoolNodes } from './pool-nodes.js';

export type OperationStatus = 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled';

export interface Operation {
  id: string;
  pool: string;
  kind: 'create' | 'update' | 'delete';
  status: OperationStatus;
  startTime: string;
  endTime?: string;
  error?: OperationError;
  /** When the operation is due to finish (ms since epoch). */
  dueAt: number;
  /** A failure injected for this operation (capacity, preemption): it finishes Failed with this error. */
  failWith?: OperationError;
}

/** The error of a failed operation, as the async operation status carries it (ARM RPC: code, message, details). */
export interface OperationError {
  code: string;
  message: string;
  details?: { code: string; message: string }[];
}

/** The node image AKS reports for the pools' nodes (a GET's nodeImageVersion; never set by clients). */
export const nodeImageVersion = 'AKSUbuntu-2204gen2containerd-202510.03.0';

interface PoolRecord {
  name: string;
  /** Changes with every change of the pool; If-Match on PUT/DELETE compares with it. */
  eTag: string;
  properties: AgentPoolProperties;
  provisioningState: 'Creating' | 'Updating' | 'Scaling' | 'Deleting' | 'Succeeded' | 'Failed';
  /** AKS's start/stop of a pool is not emulated: pools are always Running. */
  powerState: 'Running';
}

interface State {
  pools: Record<string, PoolRecord>;
  operations: Record<string, Operation>;
}

export interface Timing {
  provisioningDelayMs: number;
  deletionDelayMs: number;
}

export class AgentPools {
  private state: State = { pools: {}, operations: {} };
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private capacitySettings: CapacitySettings = noLimits();
  private capacityDraw = capacityRandom(this.capacitySettings);

  constructor(
    private readonly nodes: PoolNodes,
    private readonly stateFile: string,
    private readonly clusterVersion: string,
    readonly timing: Timing,
    private readonly location: string,
  ) {
    if (existsSync(stateFile)) this.state = JSON.parse(readFileSync(stateFile, 'utf8')) as State;
    // Operations that were running when the emulator stopped finish after a restart.
    for (const op of Object.values(this.state.operations)) if (op.status === 'InProgress') this.schedule(op);
  }

  private save(): void {
    writeFileSync(this.stateFile, JSON.stringify(this.state, null, 2));
  }

  /** The REST representation of a pool (what GET returns). */
  resource(idPrefix: string, name: string) {
    const pool = this.state.pools[name];
    if (!pool) return undefined;
    return {
      id: `${idPrefix}/agentPools/${name}`,
      name,
      type: 'Microsoft.ContainerService/managedClusters/agentPools',
      properties: {
        ...pool.properties,
        eTag: pool.eTag,
        provisioningState: pool.provisioningState,
        powerState: { code: pool.powerState },
        currentOrchestratorVersion: pool.properties.orchestratorVersion,
        nodeImageVersion,
        osSKU: 'Ubuntu',
        type: 'VirtualMachineScaleSets',
      },
    };
  }

  names(): string[] {
    return Object.keys(this.state.pools).sort();
  }

  /** How many node pools the cluster may have (the capacity settings', else AKS's maximum). */
  get maxAgentPools(): number {
    return this.capacitySettings.maxAgentPools ?? maxAgentPoolsPerCluster;
  }

  /** Quotas and where capacity is short (PUT /_emulator/capacity); setting them restarts the seeded draw. */
  get capacity(): CapacitySettings {
    return this.capacitySettings;
  }

  set capacity(settings: CapacitySettings) {
    this.capacitySettings = settings;
    this.capacityDraw = capacityRandom(settings);
  }

  /** Every pool's properties: what the usages API counts. */
  allProperties(): AgentPoolProperties[] {
    return Object.values(this.state.pools).map((p) => p.properties);
  }

  /** Every operation, for measuring how long ARM work took. */
  operations(): Operation[] {
    return Object.values(this.state.operations);
  }

  operation(id: string): Operation | undefined {
    return this.state.operations[id];
  }

  private busy(name: string): Operation | undefined {
    return Object.values(this.state.operations).find((op) => op.pool === name && op.status === 'InProgress');
  }

  private assertIdle(name: string): void {
    const op = this.busy(name);
    if (op) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Operation is not allowed because there's an in progress ${op.kind} node pool operation on agent pool ${name}. Please wait for it to finish before starting a new operation.`,
      );
    }
  }

  /** ARM's optimistic concurrency: a request with If-Match applies only to the pool in that version. */
  private assertMatches(name: string, ifMatch: string | undefined): void {
    if (ifMatch === undefined) return;
    const current = this.state.pools[name]?.eTag;
    if (ifMatch.replace(/^(W\/)?"|"$/g, '') !== current) {
      throw new ArmError(412, 'PreconditionFailed', `The agent pool ${name} has changed since eTag ${ifMatch} (current: ${current ?? 'none'}).`);
    }
  }

  /** Accepts a PUT. Returns whether it creates the pool, and the operation that will finish it. */
  put(name: string, body: unknown, capacityFailure?: OperationError, ifMatch?: string): { created: boolean; op: Operation } {
    this.assertMatches(name, ifMatch);
    this.assertIdle(name);
    const existing = this.state.pools[name];
    const properties = parseAgentPoolSpec(body, existing?.properties, this.clusterVersion);
    const created = existing === undefined;
    const maxAgentPools = this.maxAgentPools;
    if (created && this.names().length >= maxAgentPools) {
      // AKS's own code for this refusal is not documented (the quotas page gives the limit only);
      // the product does not depend on it: it reads maxAgentPools and the pool count first.
      throw new ArmError(400, 'InvalidParameter', `Managed cluster has ${this.names().length} agent pools, the maximum allowed is ${maxAgentPools}; agent pool ${name} cannot be added.`);
    }
    const others = Object.values(this.state.pools).filter((p) => p.name !== name).map((p) => p.properties);
    const overQuota = quotaRefusal(others, properties, existing?.properties, this.capacity, this.location);
    if (overQuota) throw overQuota;
    // Only new VMs need capacity: a create, or a scale-up.
    const grows = properties.count > (existing?.properties.count ?? 0);
    capacityFailure ??= grows ? allocationFailure(properties, this.capacitySettings, this.capacityDraw) : undefined;
    this.state.pools[name] = {
      name,
      eTag: randomUUID(),
      properties,
      // AKS reports a change of count alone as Scaling (AgentPool provisioningState).
      provisioningState: created ? 'Creating' : existing.properties.count !== properties.count ? 'Scaling' : 'Updating',
      powerState: 'Running',
    };
    const op = this.begin(name, created ? 'create' : 'update', this.timing.provisioningDelayMs, capacityFailure);
    return { created, op };
  }

  /**
   * Accepts a DELETE; undefined when there is no such pool (ARM answers 204). A DELETE preempts
   * a create or update in progress, which then fails with AKSOperationPreemptedByDelete, and a
   * DELETE while one runs is accepted as that same operation
   * (https://learn.microsoft.com/azure/aks/delete-cluster and the agent pool DELETE of the spec:
   * "AKS will preempt any in-progress operations").
   */
  delete(name: string, ifMatch?: string): Operation | undefined {
    if (!this.state.pools[name]) return undefined;
    this.assertMatches(name, ifMatch);
    const running = this.busy(name);
    if (running?.kind === 'delete') return running;
    if (running) this.preempt(running);
    this.state.pools[name]!.provisioningState = 'Deleting';
    return this.begin(name, 'delete', this.timing.deletionDelayMs);
  }

  private preempt(op: Operation): void {
    clearTimeout(this.timers.get(op.id));
    this.timers.delete(op.id);
    op.status = 'Failed';
    op.error = {
      code: 'AKSOperationPreemptedByDelete',
      message: `The ${op.kind} operation on agent pool ${op.pool} was preempted by a delete operation.`,
    };
    op.endTime = new Date().toISOString();
  }

  /**
   * Spot eviction, as Azure does it to a Spot pool with eviction policy Delete: the evicted VMs
   * are deleted, so their nodes leave the cluster and the pool's count drops by as many
   * (https://learn.microsoft.com/azure/aks/spot-node-pool, "Eviction policy"). Pods bound to them
   * are then Kubernetes' business: its pod garbage collector fails and deletes them.
   */
  async evictSpotNodes(name: string, nodes: number): Promise<{ evicted: string[]; count: number }> {
    const pool = this.state.pools[name];
    if (!pool) throw new ArmError(404, 'NotFound', `Could not find agent pool ${name}.`);
    if (pool.properties.scaleSetPriority !== 'Spot' || pool.properties.scaleSetEvictionPolicy !== 'Delete') {
      throw new ArmError(400, 'InvalidFault', `spot-eviction needs a Spot pool with eviction policy Delete; ${name} is not one.`);
    }
    this.assertIdle(name);
    const count = Math.max(0, pool.properties.count - nodes);
    const evicted = await this.nodes.removeLast(name, pool.properties.count - count);
    pool.properties.count = count;
    pool.eTag = randomUUID();
    this.save();
    return { evicted, count };
  }

  private begin(pool: string, kind: Operation['kind'], delayMs: number, failWith?: Operation['failWith']): Operation {
    const now = Date.now();
    const op: Operation = {
      id: randomUUID(),
      pool,
      kind,
      status: 'InProgress',
      startTime: new Date(now).toISOString(),
      dueAt: now + delayMs,
      failWith,
    };
    this.state.operations[op.id] = op;
    this.save();
    this.schedule(op);
    return op;
  }

  private schedule(op: Operation): void {
    const timer = setTimeout(() => {
      this.timers.delete(op.id);
      void this.finish(op);
    }, Math.max(0, op.dueAt - Date.now()));
    this.timers.set(op.id, timer);
  }

  private async finish(op: Operation): Promise<void> {
    const pool = this.state.pools[op.pool];
    try {
      if (op.failWith) {
        op.error = op.failWith;
      } else if (op.kind === 'delete') {
        await this.nodes.removeAll(op.pool);
        delete this.state.pools[op.pool];
      } else if (pool) {
        await this.nodes.sync(op.pool, pool.properties, pool.properties.count);
        await this.nodes.waitUntilReady(op.pool, pool.properties.count);
      }
    } catch (err) {
      op.error =
        err instanceof ArmError
          ? { code: err.code, message: err.message }
          : { code: 'InternalOperationError', message: `Reconciling the node pool's nodes failed: ${String(err)}` };
    }
    if (op.status !== 'InProgress') {
      // Preempted by a delete meanwhile; if that delete already finished, take back the nodes this made.
      if (!this.state.pools[op.pool]) await this.nodes.removeAll(op.pool).catch(() => undefined);
      return;
    }
    op.status = op.error ? 'Failed' : 'Succeeded';
    if (pool && op.kind !== 'delete') {
      pool.provisioningState = op.error ? 'Failed' : 'Succeeded';
      if (!op.error) pool.eTag = randomUUID();
    }
    op.endTime = new Date().toISOString();
    this.save();
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
  }
}
