// The stack CLI's own promises: a second start reuses what runs, and failures say what to do.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { ApiextensionsV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { loadStackConfig } from '../scripts/stack/config.js';
import { Client, Connection } from '@temporalio/client';
import { startStack } from '../scripts/stack/cli.js';
import { assertPortFree, startProcess, stopProcess, waitUntilReady } from '../scripts/stack/processes.js';
import { gpuCheckWorkflowId } from '../workflows/ids.js';
import { projectSearchAttributes } from '../workflows/search-attributes.js';

const config = loadStackConfig();
/** A throw-away state folder for processes these tests start on purpose. */
const scratch = loadStackConfig({ STACK_DIR: mkdtempSync(join(tmpdir(), 'stack-test-')) });

describe('local stack CLI', () => {
  it('reuses the running stack on a second start and rewrites the same env file', async () => {
    const lines: string[] = [];
    const { env, started } = await startStack(config, (line) => lines.push(line));
    expect(started).toEqual([]);
    expect(lines.filter((l) => l.includes('reused'))).toHaveLength(9);
    const file = readFileSync(config.envFile, 'utf8');
    for (const [key, value] of Object.entries(env)) expect(file).toContain(`${key}=${value}\n`);
  });

  it("registers a project search attribute that a stack's older Temporal database lacks, and the kwok Logs resource", async () => {
    const connection = await Connection.connect({ address: `${config.host}:${config.ports.temporal}` });
    try {
      await connection.operatorService.removeSearchAttributes({ namespace: 'default', searchAttributes: ['PromotionState'] });
      await startStack(config, () => undefined);
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(customAttributes ?? {})).toEqual(expect.arrayContaining(projectSearchAttributes.map((k) => k.name)));
    } finally {
      await connection.close();
    }
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(config.kubeconfig);
    const crd = await kubeConfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: 'logs.kwok.x-k8s.io' });
    expect(crd.spec.versions.map((v) => v.name)).toEqual(['v1alpha1']);
  });

  it('restarts only a component that stopped, and Temporal keeps its runs across the restart (SQLite)', async () => {
    const address = `${config.host}:${config.ports.temporal}`;
    const workflowId = gpuCheckWorkflowId(`survives-restart-${Date.now()}`);
    let connection = await Connection.connect({ address });
    // No worker polls this queue: the run simply stays open.
    await new Client({ connection }).workflow.start('gpuCheck', { taskQueue: 'nobody-polls-this', workflowId, args: [{}] });
    await connection.close();

    await stopProcess(config, 'temporal');
    const { started } = await startStack(config, () => undefined);
    expect(started).toEqual(['temporal']);

    connection = await Connection.connect({ address });
    try {
      const handle = new Client({ connection }).workflow.getHandle(workflowId);
      expect((await handle.describe()).status.name).toBe('RUNNING');
      await handle.terminate('test done');
    } finally {
      await connection.close();
    }
  });

  it('names the port, its owner and the variable that moves it when a port is taken', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await expect(assertPortFree('127.0.0.1', port, 'etcd', 'STACK_ETCD_PORT')).rejects.toThrow(
        `port 127.0.0.1:${port} (etcd) is in use by another process: stop it or set STACK_ETCD_PORT`,
      );
    } finally {
      server.close();
    }
  });

  it('points at the setup script when a tool is missing', () => {
    expect(() => startProcess(scratch, { name: 'missing', command: '/nonexistent/kube-apiserver', args: [] })).toThrow(
      /kube-apiserver is missing; run `npm run setup` first/,
    );
  });

  it('shows the tail of the log when a component dies during start-up', async () => {
    startProcess(scratch, { name: 'crashes', command: '/bin/sh', args: ['-c', 'echo "listen tcp: address already in use"; exit 3'] });
    await expect(waitUntilReady(scratch, 'crashes', async () => false, 10_000)).rejects.toThrow(
      /crashes exited during start-up\. Last lines of .*crashes\.log:\n(.*\n)*listen tcp: address already in use/,
    );
  });

  it('rejects a port variable that is not a port', () => {
    expect(() => loadStackConfig({ STACK_APISERVER_PORT: 'http' })).toThrow('STACK_APISERVER_PORT=http is not a TCP port (1-65535)');
  });
});
