// Client for the gpu-simulator's settings (/_simulator/settings): how long simulated training
// takes, and failures to inject. Used by tests and benchmarks.
import type { SimulatorSettings } from './settings.js';

export class SimulatorControl {
  constructor(private readonly baseUrl: string) {}

  /** Changes the given settings; a setting given as undefined is cleared (sent as null, which JSON keeps). */
  async settings(update?: Partial<SimulatorSettings>): Promise<SimulatorSettings> {
    const res = await fetch(new URL('/_simulator/settings', this.baseUrl), {
      method: update ? 'PUT' : 'GET',
      headers: { 'content-type': 'application/json' },
      body: update ? JSON.stringify(update, (_key, value: unknown) => (value === undefined ? null : value)) : undefined,
    });
    if (!res.ok) throw new Error(`gpu-simulator settings: ${res.status} ${await res.text()}`);
    return (await res.json()) as SimulatorSettings;
  }
}
