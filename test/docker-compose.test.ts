// docker-compose.yml cannot run here (no Docker engine); check that it parses, has the
// services it promises, and hands the worker exactly the variables the worker reads.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { workerVariables } from '../workers/config.js';

const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
  services: Record<string, { image?: string; build?: string; environment?: Record<string, string> }>;
};
// The configuration table lives in docs/operations.md, "Configuration".
const readme = readFileSync('docs/operations.md', 'utf8');

describe('docker-compose.yml', () => {
  it('runs Temporal on PostgreSQL, the UI, the Temporal set-up and the worker', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['postgresql', 'temporal', 'temporal-setup', 'temporal-ui', 'worker']);
    expect(compose.services.temporal?.environment?.DB).toBe('postgres12');
    expect(compose.services.worker?.build).toBe('.');
  });

  it("gives the worker only variables the worker reads, including every required one", () => {
    const given = Object.keys(compose.services.worker?.environment ?? {});
    expect(given.filter((name) => !(name in workerVariables))).toEqual([]);
    for (const required of ['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AKS_CLUSTER_NAME', 'REGISTRY_ENDPOINT']) {
      expect(given).toContain(required);
    }
  });

  it('docs/operations.md documents every variable the worker reads', () => {
    const undocumented = Object.keys(workerVariables).filter((name) => !readme.includes(`\`${name}\``));
    expect(undocumented).toEqual([]);
  });
});
