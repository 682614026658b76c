// `download-dataset`: the tuning pod's dataset downloader (worker image). The URL check at
// validation time cannot see DNS or redirects, so here every hop is checked again: the URL
// itself, then every address its name resolves to, and the connection is pinned to a checked
// address (no second lookup an attacker's DNS could answer differently). Redirects are
// followed by hand, at most 5, each through the same checks. Each URL's file lands in the
// target folder under its last path segment, as KAITO's downloader names it.
import { lookup as dnsLookup } from 'node:dns/promises';
import { createWriteStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { datasetFileName, datasetUrlProblem, hostProblem, urlForRecords } from '../domain/dataset-url.js';

export const maxRedirects = 5;

export interface DownloadOptions {
  /** Resolves a host name to addresses (default: the system resolver). */
  resolve?: (host: string) => Promise<string[]>;
  /**
   * "address:port" pairs exempt from the address check, for a dataset server on a private
   * network of your own (the local stack's is on loopback). Names and redirects still go
   * through every other check.
   */
  allow?: string[];
}

const systemResolve = async (host: string) => (await dnsLookup(host, { all: true })).map((a) => a.address);

class RefusedDownload extends Error {}

/** The address to connect to for `url`, after every check; throws RefusedDownload when one fails. */
async function checkedAddress(url: URL, options: DownloadOptions): Promise<string> {
  const problem = datasetUrlProblem(url.href);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const allowed = (address: string) => options.allow?.includes(`${address}:${port}`) ?? false;
  if (problem && !(isIP(host) && allowed(host))) throw new RefusedDownload(problem);
  const addresses = isIP(host) ? [host] : await (options.resolve ?? systemResolve)(host);
  if (addresses.length === 0) throw new RefusedDownload(`${url.hostname} resolves to no address`);
  for (const address of addresses) {
    const why = hostProblem(address);
    if (why && !allowed(address)) throw new RefusedDownload(`${url.origin}: ${url.hostname} resolves to ${address}, which is ${why}`);
  }
  return addresses[0]!;
}

function get(url: URL, address: string): Promise<IncomingMessage> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      // Pinned: the socket goes to the address that was checked; TLS still verifies the name.
      lookup: (_host, opts, callback) => {
        if ((opts as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family: isIP(address) }]);
        else callback(null, address, isIP(address));
      },
      timeout: 60_000,
    });
    req.on('response', resolve).on('error', reject).on('timeout', () => req.destroy(new Error(`${url.origin}: no answer in 60 s`)));
    req.end();
  });
}

/** Downloads one URL into `dir`, following checked redirects; returns the file's path. */
export async function downloadDataset(text: string, index: number, dir: string, options: DownloadOptions = {}): Promise<string> {
  let url = new URL(text);
  const file = join(dir, datasetFileName(text, index));
  for (let hop = 0; ; hop++) {
    const response = await get(url, await checkedAddress(url, options));
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume();
      if (hop >= maxRedirects) throw new RefusedDownload(`${url.origin}: more than ${maxRedirects} redirects`);
      url = new URL(response.headers.location, url);
      continue;
    }
    if (status !== 200) {
      response.resume();
      throw new Error(`${url.origin}${url.pathname}: HTTP ${status}`);
    }
    await pipeline(response, createWriteStream(file));
    if ((await stat(file)).size === 0) throw new Error(`${url.origin}${url.pathname}: empty file`);
    return file;
  }
}

/** URLs from a list file (a mounted Secret): one a line; blank lines and # comments are skipped. */
export const urlsFromList = (text: string) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));

/** `download-dataset --dir /mnt/data [--allow address:port]... [--urls-file FILE] [URL...]` */
export async function downloadDatasetCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { dir: { type: 'string', default: '/mnt/data' }, allow: { type: 'string', multiple: true }, 'urls-file': { type: 'string' } },
  });
  const urls = [...positionals, ...(values['urls-file'] ? urlsFromList(await readFile(values['urls-file'], 'utf8')) : [])];
  if (urls.length === 0) throw new Error('no dataset URLs given');
  for (const [i, url] of urls.entries()) {
    const file = await downloadDataset(url, i, values.dir, { allow: values.allow });
    // Logged without query strings: a Secret's URLs may carry SAS tokens.
    console.log(`downloaded ${urlForRecords(url)} to ${file}`);
  }
}
