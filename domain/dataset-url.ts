// Dataset URLs are fetched from inside the cluster, so an address that reaches the cluster's
// own network or the cloud's metadata service is refused (as KAITO refuses it). Only literal
// hosts can be judged here; names are resolved by the downloader, which repeats the check.

const metadataHosts = new Set(['metadata.google.internal', 'metadata.azure.com', 'metadata', 'instance-data']);

function ipv4Problem(host: string): string | undefined {
  const parts = host.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  const [a = 0, b = 0] = parts;
  if (a === 127) return 'a loopback address';
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return 'a private address';
  if (a === 169 && b === 254) return 'a link-local address (cloud metadata lives there)';
  if (a === 0) return 'an unspecified address';
  if (a === 100 && b >= 64 && b <= 127) return 'a carrier-grade NAT address';
  return undefined;
}

function ipv6Problem(host: string): string | undefined {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (!h.includes(':')) return undefined;
  if (h === '::1') return 'a loopback address';
  if (h === '::') return 'an unspecified address';
  if (/^fe[89ab]/.test(h)) return 'a link-local address';
  if (/^f[cd]/.test(h)) return 'a private (unique local) address';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped ? ipv4Problem(mapped[1]!) : undefined;
}

/** Why a dataset URL is refused, or undefined when it is acceptable. */
export function datasetUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${text}: only http and https URLs are accepted`;
  const host = url.hostname.toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return `${text}: points at localhost`;
  if (metadataHosts.has(host)) return `${text}: points at a cloud metadata service`;
  const problem = ipv4Problem(host) ?? ipv6Problem(host);
  return problem ? `${text}: ${host} is ${problem}` : undefined;
}
