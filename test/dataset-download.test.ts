// The tuning pod's dataset downloader against real HTTP servers on this machine: a public-looking
// name whose server redirects to loopback is refused, and so is a name that resolves into a
// private range (DNS rebinding). The local servers' own address:port is exempted with --allow,
// as a private dataset server would be; nothing else is.
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadDataset } from '../workers/download-dataset.js';

let datasets: Server;
let internal: Server;
let datasetsPort = 0;
let internalPort = 0;
const internalHits: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'download-'));

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

beforeAll(async () => {
  internal = createServer((req, res) => {
    internalHits.push(req.url ?? '');
    res.end('secret');
  });
  internalPort = await listen(internal);
  datasets = createServer((req, res) => {
    const redirects: Record<string, string> = {
      '/to-loopback.jsonl': `http://127.0.0.1:${internalPort}/latest/meta-data`,
      '/to-mapped.jsonl': `http://[::ffff:127.0.0.1]:${internalPort}/x`,
      '/to-localhost.jsonl': `http://localhost:${internalPort}/x`,
      '/to-rebinding-name.jsonl': `http://rebind.example.com:${internalPort}/x`,
      '/moved.jsonl': '/train.jsonl',
    };
    if (redirects[req.url ?? '']) res.writeHead(302, { location: redirects[req.url!] }).end();
    else if (req.url === '/loop.jsonl') res.writeHead(302, { location: '/loop.jsonl' }).end();
    else if (req.url === '/train.jsonl') res.end('{"text": "hello"}\n');
    else res.writeHead(404).end();
  });
  datasetsPort = await listen(datasets);
});
afterAll(() => {
  datasets?.close();
  internal?.close();
});

const names: Record<string, string[]> = { 'datasets.example.com': ['127.0.0.1'], 'rebind.example.com': ['10.0.0.8'] };
const options = () => ({ resolve: async (host: string) => names[host] ?? [], allow: [`127.0.0.1:${datasetsPort}`] });
const at = (path: string, host = 'datasets.example.com') => `http://${host}:${datasetsPort}${path}`;

describe('dataset downloader', () => {
  it('downloads through a redirect that stays on an allowed server', async () => {
    const file = await downloadDataset(at('/moved.jsonl'), 0, dir, options());
    expect(file).toBe(join(dir, 'moved.jsonl'));
    expect(readFileSync(file, 'utf8')).toContain('hello');
  });

  it.each([
    ['/to-loopback.jsonl', 'loopback'],
    ['/to-mapped.jsonl', 'IPv4-mapped'],
    ['/to-localhost.jsonl', 'localhost'],
    ['/to-rebinding-name.jsonl', 'resolves to 10.0.0.8, which is a private address'],
  ])('refuses a public-looking name whose server redirects into the cluster (%s)', async (path, why) => {
    await expect(downloadDataset(at(path), 0, dir, options())).rejects.toThrow(why);
    expect(internalHits).toEqual([]);
  });

  it('refuses a name that resolves into a private range before connecting', async () => {
    await expect(downloadDataset(`http://rebind.example.com:${internalPort}/x.jsonl`, 0, dir, options())).rejects.toThrow('private address');
    expect(internalHits).toEqual([]);
  });

  it('without the exemption, the local server itself is refused; redirect loops end', async () => {
    await expect(downloadDataset(at('/train.jsonl'), 0, dir, { resolve: options().resolve })).rejects.toThrow('resolves to 127.0.0.1, which is a loopback address');
    await expect(downloadDataset(at('/loop.jsonl'), 0, dir, options())).rejects.toThrow('more than 5 redirects');
  });
});
