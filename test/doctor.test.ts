// `aks-finetune doctor` against the local stack: ready as the stack sets it up, and each missing
// piece found, named, with its fix.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AppsV1Api } from '@kubernetes/client-node';
import { msToTs } from '@temporalio/common/lib/time.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DoctorCheck, runDoctor } from '../client/doctor.js';
import { loadStackConfig } from '../scripts/stack/config.js';
import { prepareCluster } from '../scripts/prepare-cluster.js';
import { connectClient, loadTemporalSettings } from '../client/temporal-connection.js';
import { type AuthRegistry, startAuthRegistry } from './auth-registry.js';
import { adminKubeConfig, createNamespace, emulator, unique } from './support.js';

// As an operator runs it: the worker's variables, a cluster operator's kubeconfig.
const env = { ...process.env, KUBECONFIG: loadStackConfig().kubeconfig };
const failed = (checks: DoctorCheck[]) => checks.filter((c) => !c.ok);
const byName = (checks: DoctorCheck[], name: string) => checks.find((c) => c.name === name);

describe('doctor', () => {
  let registry: AuthRegistry;
  beforeAll(async () => {
    registry = await startAuthRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
    await emulator.cluster({ networkPolicy: 'cilium', workloadIdentity: true, oidcIssuer: true });
    await emulator.capacity();
  });

  it('finds the local stack ready, as it is set up, and says so on the command line with exit code 0', async () => {
    const checks = await runDoctor({ env });
    expect(failed(checks)).toEqual([]);
    expect(checks.map((c) => c.name)).toEqual([
      'Temporal',
      'AKS cluster',
      'workload identity',
      'network policy',
      'NVIDIA device plugin',
      "the worker's RBAC",
      'run namespace aks-finetune',
      'registry',
      'GPU quota for Standard_NC24ads_A100_v4',
    ]);
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/cli.ts', 'doctor'], { env });
    expect(stdout).toMatch(/^✓ Temporal: .* all 9 search attributes registered$/m);
    expect(stdout.trimEnd().endsWith('Ready for runs.')).toBe(true);
  });

  it('names what the cluster lacks: workload identity, a network policy engine, quota', async () => {
    await emulator.cluster({ networkPolicy: 'none', workloadIdentity: false });
    await emulator.capacity({ quotas: { standardNCADSA100v4Family: 0 } });
    const checks = await runDoctor({ env });
    expect(failed(checks).map((c) => c.name)).toEqual(['workload identity', 'network policy', 'GPU quota for Standard_NC24ads_A100_v4']);
    expect(byName(checks, 'workload identity')?.fix).toMatch(/^az aks update -g \S+ -n \S+ --enable-oidc-issuer --enable-workload-identity/);
    expect(byName(checks, 'network policy')?.detail).toContain('no network policy engine (networkPolicy none)');
    expect(byName(checks, 'network policy')?.fix).toContain('--network-policy azure');
    expect(byName(checks, 'GPU quota for Standard_NC24ads_A100_v4')?.fix).toMatch(/^request a quota increase for standardNCADSA100v4Family in /);
    await emulator.cluster({ networkPolicy: 'cilium', workloadIdentity: true, oidcIssuer: true });
    await emulator.capacity();
  });

  it('names a missing device plugin, a namespace runs may not use, a worker identity without its roles, a registry that refuses, and missing search attributes', async () => {
    const apps = adminKubeConfig.makeApiClient(AppsV1Api);
    const plain = `doctor-${unique()}`;
    await createNamespace(plain);
    const temporalNamespace = `doctor-${unique()}`;
    const client = await connectClient(loadTemporalSettings(env));
    await client.connection.workflowService.registerNamespace({ namespace: temporalNamespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    await client.connection.close();
    const plugin = (await apps.listDaemonSetForAllNamespaces()).items.find((d) => d.metadata?.name?.includes('nvidia-device-plugin'))!;
    await apps.deleteNamespacedDaemonSet({ name: plugin.metadata!.name!, namespace: plugin.metadata!.namespace! });
    try {
      const checks = await runDoctor({
        env: { ...env, REGISTRY_ENDPOINT: `https://${registry.host}`, TEMPORAL_NAMESPACE: temporalNamespace },
        namespaces: ['aks-finetune', plain, 'no-such-namespace'],
        workerServiceAccount: { namespace: 'aks-finetune', name: 'not-the-worker' },
      });
      expect(failed(checks).map((c) => c.name)).toEqual(['Temporal', 'NVIDIA device plugin', "the worker's RBAC", 'run namespace aks-finetune', `run namespace ${plain}`, 'run namespace no-such-namespace', 'registry']);
      expect(byName(checks, 'Temporal')?.detail).toMatch(/search attributes missing: PipelinePhase, BaseModel, /);
      expect(byName(checks, 'NVIDIA device plugin')?.fix).toMatch(/npm run prepare-cluster/);
      expect(byName(checks, "the worker's RBAC")?.detail).toMatch(/^system:serviceaccount:aks-finetune:not-the-worker may not: list nodes/);
      expect(byName(checks, `run namespace ${plain}`)?.fix).toContain(`apply deploy/run-namespace in ${plain}`);
      expect(byName(checks, 'run namespace no-such-namespace')?.detail).toBe('namespace no-such-namespace does not exist');
      expect(byName(checks, 'registry')?.fix).toMatch(/AcrPush/);
    } finally {
      await prepareCluster(adminKubeConfig);
    }
  });
});
