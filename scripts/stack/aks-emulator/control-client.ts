// Client for the emulator's control API (/_emulator): settings, fault injection, request log.
// Used by tests and benchmarks; real ARM has no such API.
import type { Operation, Timing } from './agent-pools.js';
import type { CapacitySettings } from './capacity.js';
import type { Fault } from './faults.js';
import type { ClusterProfile, RequestRecord } from './server.js';

export class EmulatorControl {
  constructor(private readonly armEndpoint: string) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(`/_emulator/${path}`, this.armEndpoint), {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`emulator ${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  settings(update?: Partial<Timing>): Promise<Timing> {
    return update ? this.call('PUT', 'settings', update) : this.call('GET', 'settings');
  }

  /** The cluster's network policy, workload identity and OIDC issuer, as its GET reports them (doctor reads them). */
  cluster(update?: Partial<ClusterProfile>): Promise<ClusterProfile> {
    return update ? this.call('PUT', 'cluster', update) : this.call('GET', 'cluster');
  }

  /** Replaces the quotas and capacity shortages (none given: Azure with room everywhere). */
  capacity(settings?: Partial<CapacitySettings>): Promise<CapacitySettings> {
    return this.call('PUT', 'capacity', settings ?? {});
  }

  addFault(fault: Partial<Fault> & Pick<Fault, 'kind'>): Promise<Fault[]> {
    return this.call('POST', 'faults', fault);
  }

  /** Azure evicts `nodes` nodes of a Spot pool now (eviction policy Delete): they leave, the count drops. */
  evictSpotNodes(pool: string, nodes = 1): Promise<{ evicted: string[]; count: number }> {
    return this.call('POST', 'faults', { kind: 'spot-eviction', pool, nodes });
  }

  clearFaults(): Promise<Fault[]> {
    return this.call('DELETE', 'faults');
  }

  operations(): Promise<Operation[]> {
    return this.call('GET', 'operations');
  }

  requests(): Promise<RequestRecord[]> {
    return this.call('GET', 'requests');
  }

  clearRequests(): Promise<RequestRecord[]> {
    return this.call('DELETE', 'requests');
  }
}
