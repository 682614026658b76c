// The stack CLI's own promises: a second start reuses what runs, and failures say what to do.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadStackConfig } from '../scripts/stack/config.js';
import { startStack } from '../scripts/stack/cli.js';
import { assertPortFree, startProcess } from '../scripts/stack/processes.js';

const config = loadStackConfig();

describe('local stack CLI', () => {
  it('reuses the running stack on a second start and rewrites the same env file', async () => {
    const lines: string[] = [];
    const { env, started } = await startStack(config, (line) => lines.push(line));
    expect(started).toEqual([]);
    expect(lines.filter((l) => l.includes('reused'))).toHaveLength(8);
    const file = readFileSync(config.envFile, 'utf8');
    for (const [key, value] of Object.entries(env)) expect(file).toContain(`${key}=${value}\n`);
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
    expect(() => startProcess(config, { name: 'missing', command: '/nonexistent/kube-apiserver', args: [] })).toThrow(
      /kube-apiserver is missing; run `npm run setup` first/,
    );
  });

  it('rejects a port variable that is not a port', () => {
    expect(() => loadStackConfig({ STACK_APISERVER_PORT: 'http' })).toThrow('STACK_APISERVER_PORT=http is not a TCP port (1-65535)');
  });
});
