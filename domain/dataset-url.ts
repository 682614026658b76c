// Dataset URLs are fetched from inside the cluster, so a URL that reaches the cluster's own
// network, the node, or the cloud's metadata and host services is refused (KAITO refuses these
// too). Only what the URL says can be judged here: the WHATWG URL parser first turns every IPv4
// notation (decimal 2130706433, hex 0x7f.1, octal 0177.0.0.1, short 127.1) into dotted form and
// IPv6 into its compressed form, and that canonical host is checked. Names are resolved by the
// downloader in the tuning pod, which repeats the address check after resolving and on every
// redirect (DNS rebinding and redirects can only be caught there).

/** Host names of cloud metadata services (GCP, AWS, Azure) and their short forms. */
const metadataHosts = new Set(['metadata.google.internal', 'metadata.google', 'instance-data.ec2.internal', 'instance-data', 'metadata.azure.com', 'metadata']);
/** Suffixes that only resolve inside a cluster, a cloud VNet or a LAN. */
const internalSuffixes = ['.svc', '.cluster.local', '.local', '.internal', '.localdomain', '.home.arpa'];

/** IPv4 ranges a dataset may not come from: [first octets as a number, prefix length, what it is]. */
const forbiddenIpv4: [string, number, string][] = [
  ['0.0.0.0', 8, 'an unspecified address'],
  ['10.0.0.0', 8, 'a private address'],
  ['100.64.0.0', 10, 'a carrier-grade NAT address'],
  ['127.0.0.0', 8, 'a loopback address'],
  ['168.63.129.16', 32, "Azure's WireServer (host services)"],
  ['169.254.0.0', 16, 'a link-local address (cloud metadata lives there)'],
  ['172.16.0.0', 12, 'a private address'],
  ['192.0.0.0', 24, 'an IETF protocol address'],
  ['192.168.0.0', 16, 'a private address'],
  ['198.18.0.0', 15, 'a benchmarking address'],
  ['224.0.0.0', 4, 'a multicast address'],
  ['255.255.255.255', 32, 'the broadcast address'],
  ['240.0.0.0', 4, 'a reserved address'],
];

/** The same ranges as CIDRs, for the tuning pod's NetworkPolicy. */
export const forbiddenIpv4Cidrs = forbiddenIpv4.map(([base, prefix]) => `${base}/${prefix}`);
/**
 * IPv6 ranges the NetworkPolicy denies. IPv4-mapped addresses (::ffff:0:0/96) leave the pod as
 * IPv4, where the IPv4 list applies (and Kubernetes reads that CIDR as IPv4, so it cannot be listed here).
 */
export const forbiddenIpv6Cidrs = ['::/96', '64:ff9b::/96', '64:ff9b:1::/48', '2002::/16', '2001::/32', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8'];

const ipv4Number = (dotted: string) => dotted.split('.').reduce((n, p) => n * 256 + Number(p), 0);
const dottedIpv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Why an IPv4 address (as a 32-bit number) is refused, if it is. */
function ipv4NumberProblem(address: number): string | undefined {
  for (const [base, prefix, what] of forbiddenIpv4) {
    const size = 2 ** (32 - prefix);
    const start = ipv4Number(base);
    if (address >= start && address < start + size) return what;
  }
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address, or undefined when it is not one. */
export function ipv6Groups(text: string): number[] | undefined {
  let h = text.replace(/^\[|\]$/g, '').toLowerCase();
  if (!/^[0-9a-f:.]+$/.test(h) || !h.includes(':')) return undefined;
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (v4) {
    const n = ipv4Number(v4[2]!);
    h = `${v4[1]}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = h.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s ? s.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)) : []);
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return groups.some(Number.isNaN) ? undefined : groups;
}

/** Why an IPv6 address is refused, if it is. IPv4 inside it (mapped, compatible, NAT64, 6to4) is never accepted. */
function ipv6Problem(groups: number[]): string | undefined {
  const [a = 0, b = 0] = groups;
  const zerosBefore = (n: number) => groups.slice(0, n).every((g) => g === 0);
  if (zerosBefore(8)) return 'the unspecified address';
  if (zerosBefore(7) && groups[7] === 1) return 'a loopback address';
  if (zerosBefore(5) && groups[5] === 0xffff) return 'an IPv4-mapped address';
  if (zerosBefore(6)) return 'an IPv4-compatible address';
  if (a === 0x64 && b === 0xff9b) return 'a NAT64 address';
  if (a === 0x2002) return 'a 6to4 address (it embeds an IPv4 address)';
  if (a === 0x2001 && b === 0) return 'a Teredo address (it embeds an IPv4 address)';
  if ((a & 0xffc0) === 0xfe80) return 'a link-local address';
  if ((a & 0xffc0) === 0xfec0) return 'a site-local address';
  if ((a & 0xfe00) === 0xfc00) return 'a private (unique local) address';
  if ((a & 0xff00) === 0xff00) return 'a multicast address';
  if (a === 0x2001 && b === 0xdb8) return 'a documentation address';
  return undefined;
}

/** Why a host (IPv4, IPv6 or name) is refused, if it is. The downloader applies it to resolved addresses too. */
export function hostProblem(hostText: string): string | undefined {
  const host = hostText.toLowerCase();
  const v4 = dottedIpv4.exec(host);
  if (v4) {
    if (v4.slice(1).some((p) => Number(p) > 255)) return 'not a valid IPv4 address';
    return ipv4NumberProblem(ipv4Number(host));
  }
  const groups = ipv6Groups(host);
  if (groups) return ipv6Problem(groups);
  if (host.startsWith('[')) return 'not a valid IPv6 address';
  if (host.endsWith('.')) return 'a name with a trailing dot (it skips DNS search rules; write it without the dot)';
  if (host === 'localhost' || host.endsWith('.localhost')) return 'localhost';
  if (metadataHosts.has(host)) return 'a cloud metadata service';
  if (!host.includes('.')) return 'a single-label name (it resolves inside the cluster)';
  const suffix = internalSuffixes.find((s) => host.endsWith(s));
  if (suffix) return `a cluster- or network-internal name (*${suffix})`;
  return undefined;
}

const short = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);
const byteLength = (text: string) => new TextEncoder().encode(text).length;

/** The file a URL is saved as in /mnt/data: the last path segment, as KAITO's downloader names it. */
export function datasetFileName(url: string, index: number): string {
  return new URL(url).pathname.split('/').pop() || `dataset-${index}`;
}

/** Why a dataset URL is refused, or undefined when it is acceptable. Echoes at most 80 characters of it. */
export function datasetUrlProblem(text: string): string | undefined {
  // The URL parser silently drops tabs and newlines: refuse control characters before parsing.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return `${JSON.stringify(short(text))} contains control characters`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${JSON.stringify(short(text))} is not a URL`;
  }
  // Echoed without its query string or fragment, which may hold secrets.
  const shown = short(`${url.protocol}//${url.host}${url.pathname}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${shown}: only http and https URLs are accepted`;
  if (url.username || url.password) return `${short(`${url.protocol}//${url.host}${url.pathname}`)}: credentials in a URL would be recorded in the run's history; keep them out of the URL`;
  const problem = hostProblem(url.hostname);
  if (problem) return `${shown}: ${url.hostname} is ${problem}`;
  const file = datasetFileName(text, 0);
  if (byteLength(file) > 255) return `${shown}: its file name (the last path segment) is ${byteLength(file)} bytes; file systems allow 255`;
  return undefined;
}

/** A URL as it may be recorded (memo, lineage annotations): no credentials, query or fragment, which can hold secrets such as SAS tokens. */
export function urlForRecords(text: string): string {
  try {
    const url = new URL(text);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

/** A dataset source as it may be recorded: URLs through urlForRecords. */
export function datasetForRecords<T extends { urls?: string[] }>(dataset: T): T {
  return dataset.urls ? { ...dataset, urls: dataset.urls.map(urlForRecords) } : dataset;
}

/** The dataset as the adapter image's lineage annotation records it: no secrets. */
export function datasetLineage(dataset: { urls?: string[]; urlsSecret?: { name: string; key?: string }; image?: string; volume?: string }): string {
  if (dataset.urls) return dataset.urls.map(urlForRecords).join(',');
  if (dataset.urlsSecret) return `secret:${dataset.urlsSecret.name}/${dataset.urlsSecret.key ?? datasetUrlsSecretKey}`;
  return dataset.image ?? `pvc:${dataset.volume}`;
}

/** The Secret key that holds the URL list when dataset.urlsSecret names none. */
export const datasetUrlsSecretKey = 'urls';
