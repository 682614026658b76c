// A second registry for the tests that log in: the stack's own distribution binary and TLS
// certificate, with htpasswd (basic) auth, as an ACR admin user or token answers a login. Started
// by the test that needs it, on a free loopback port, and stopped after it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { loadStackConfig } from '../scripts/stack/config.js';

export interface AuthRegistry {
  /** host:port, as an image reference names it. */
  host: string;
  username: string;
  password: string;
  stop(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });

/** GET /v2/ without credentials: 401 once the registry serves. */
const challengeStatus = (host: string, ca: Buffer) =>
  new Promise<number | undefined>((resolve) => {
    const req = request(`https://${host}/v2/`, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });

export async function startAuthRegistry(username = 'pusher', password = 'right-password'): Promise<AuthRegistry> {
  const stack = loadStackConfig();
  const dir = mkdtempSync(join(tmpdir(), 'auth-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(join(dir, 'htpasswd'), `${username}:${bcrypt.hashSync(password, 5)}\n`);
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      '    realm: aks-finetune-test',
      `    path: ${join(dir, 'htpasswd')}`,
      'http:',
      `  addr: ${host}`,
      '  relativeurls: true',
      '  tls:',
      `    certificate: ${join(stack.certsDir, 'server.crt')}`,
      `    key: ${join(stack.certsDir, 'server.key')}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  const ca = readFileSync(join(stack.certsDir, 'ca.crt'));
  for (let waited = 0; (await challengeStatus(host, ca)) !== 401; waited += 100) {
    if (waited > 15_000) throw new Error(`the registry with basic auth did not answer on ${host}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    username,
    password,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

/** The `.dockerconfigjson` of a docker-registry Secret, as `kubectl create secret docker-registry` writes it. */
export const dockerConfigJson = (host: string, username: string, password: string) =>
  JSON.stringify({ auths: { [host]: { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
