// The dataset URL check over the whole space the issue lists, plus properties: whatever notation
// a forbidden address is written in, the URL is refused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { datasetUrlProblem, hostProblem } from '../domain/dataset-url.js';

const refused = (url: string) => datasetUrlProblem(url);

describe('dataset URL check', () => {
  it.each([
    // IPv4 in every notation
    ['http://127.0.0.1/a.csv', 'loopback'],
    ['http://2130706433/a.csv', 'loopback'],
    ['http://0x7f000001/a.csv', 'loopback'],
    ['http://0177.0.0.1/a.csv', 'loopback'],
    ['http://127.1/a.csv', 'loopback'],
    ['http://0x7f.1/a.csv', 'loopback'],
    ['http://10.1.2.3/a.csv', 'private'],
    ['http://172.16.0.1/a.csv', 'private'],
    ['http://172.31.255.255/a.csv', 'private'],
    ['http://192.168.1.1/a.csv', 'private'],
    ['http://169.254.169.254/latest/meta-data', 'link-local'],
    ['http://0xa9fea9fe/', 'link-local'],
    ['http://100.64.0.1/a.csv', 'carrier-grade NAT'],
    ['http://100.127.255.254/a.csv', 'carrier-grade NAT'],
    ['http://224.0.0.1/a.csv', 'multicast'],
    ['http://255.255.255.255/a.csv', 'broadcast'],
    ['http://0.0.0.0/a.csv', 'unspecified'],
    ['http://0/a.csv', 'unspecified'],
    ['http://168.63.129.16/machine', 'WireServer'],
    // IPv6
    ['http://[::1]/a.csv', 'loopback'],
    ['http://[::]/a.csv', 'unspecified'],
    ['http://[::ffff:127.0.0.1]/a.csv', 'IPv4-mapped'],
    ['http://[::ffff:169.254.169.254]/a.csv', 'IPv4-mapped'],
    ['http://[::ffff:7f00:1]/a.csv', 'IPv4-mapped'],
    ['http://[::127.0.0.1]/a.csv', 'IPv4-compatible'],
    ['http://[64:ff9b::a9fe:a9fe]/a.csv', 'NAT64'],
    ['http://[2002:7f00:1::]/a.csv', '6to4'],
    ['http://[fe80::1]/a.csv', 'link-local'],
    ['http://[fd00:ec2::254]/a.csv', 'unique local'],
    ['http://[fc00::1]/a.csv', 'unique local'],
    ['http://[ff02::1]/a.csv', 'multicast'],
    // names
    ['http://localhost/a.csv', 'localhost'],
    ['http://LOCALHOST:8080/a.csv', 'localhost'],
    ['http://a.b.localhost/a.csv', 'localhost'],
    ['http://example.com./a.csv', 'trailing dot'],
    ['http://localhost./a.csv', 'trailing dot'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
    ['http://metadata.google/computeMetadata/v1/', 'metadata'],
    ['http://instance-data.ec2.internal/latest/', 'metadata'],
    ['http://metadata/', 'metadata'],
    ['http://kubernetes.default.svc/api', '*.svc'],
    ['http://minio.data.svc.cluster.local/a.csv', '*.cluster.local'],
    ['http://nas.local/a.csv', '*.local'],
    ['http://storage/a.csv', 'single-label'],
    // credentials, control characters, schemes, file names
    ['https://user:pass@data.example.com/a.csv', 'credentials'],
    ['https://token@data.example.com/a.csv', 'credentials'],
    ['https://data.example.com/a\n.csv', 'control characters'],
    ['https://data.exa\tmple.com/a.csv', 'control characters'],
    ['https://data.example.com/a\u0000.csv', 'control characters'],
    ['ftp://data.example.com/a.csv', 'only http and https'],
    ['file:///etc/passwd', 'only http and https'],
    ['not a url', 'is not a URL'],
    [`https://data.example.com/${'a'.repeat(256)}.csv`, '255'],
  ])('refuses %s (%s)', (url, why) => {
    expect(refused(url)).toContain(why);
  });

  it.each([
    'https://huggingface.co/datasets/x/resolve/main/train.jsonl',
    'https://myaccount.blob.core.windows.net/data/train.parquet',
    'http://8.8.8.8/a.csv',
    'http://172.32.0.1/a.csv',
    'http://100.128.0.1/a.csv',
    'http://[2606:4700::1111]/a.csv',
    'https://data.example.com/',
  ])('accepts %s', (url) => {
    expect(refused(url)).toBeUndefined();
  });

  it('echoes at most a short part of a long URL', () => {
    const problem = refused(`http://10.0.0.1/${'x'.repeat(5000)}`)!;
    expect(problem.length).toBeLessThan(200);
  });
});

// Properties: an address in a forbidden range is refused in every notation the URL parser accepts.
const forbiddenV4 = fc.oneof(
  fc.tuple(fc.constant(127), fc.nat(255), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(10), fc.nat(255), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(172), fc.integer({ min: 16, max: 31 }), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(192), fc.constant(168), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(169), fc.constant(254), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(100), fc.integer({ min: 64, max: 127 }), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.integer({ min: 224, max: 255 }), fc.nat(255), fc.nat(255), fc.nat(255)),
  fc.tuple(fc.constant(0), fc.nat(255), fc.nat(255), fc.nat(255)),
);
const asNumber = ([a, b, c, d]: number[]) => ((a! * 256 + b!) * 256 + c!) * 256 + d!;
const notations = (o: number[]) => {
  const n = asNumber(o);
  const hex = (x: number) => `0x${x.toString(16)}`;
  const oct = (x: number) => `0${x.toString(8)}`;
  return [
    o.join('.'),
    String(n),
    hex(n),
    oct(n),
    o.map(hex).join('.'),
    o.map(oct).join('.'),
    `${o[0]}.${(o[1]! << 16) + (o[2]! << 8) + o[3]!}`,
    `${o[0]}.${o[1]}.${(o[2]! << 8) + o[3]!}`,
    `[::ffff:${o.join('.')}]`,
    `[::ffff:${((o[0]! << 8) + o[1]!).toString(16)}:${((o[2]! << 8) + o[3]!).toString(16)}]`,
    `[::${o.join('.')}]`,
    `[64:ff9b::${o.join('.')}]`,
    `[0:0:0:0:0:ffff:${o.join('.')}]`,
  ];
};

describe('dataset URL check, properties', () => {
  it('refuses a forbidden IPv4 address in any notation, with any port, path and case', () => {
    fc.assert(
      fc.property(forbiddenV4, fc.nat(notations([0, 0, 0, 0]).length - 1), fc.option(fc.integer({ min: 1, max: 65535 })), fc.webPath(), fc.boolean(), (octets, which, port, path, upper) => {
        let host = notations(octets)[which]!;
        if (upper) host = host.toUpperCase();
        const url = `http://${host}${port === null ? '' : `:${port}`}${path}`;
        expect(refused(url), url).toBeDefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses any IPv6 loopback, link-local, unique-local, multicast or IPv4-embedding address', () => {
    const group = fc.nat(0xffff).map((g) => g.toString(16));
    const prefix = fc.constantFrom('fe80', 'febf', 'fc00', 'fdff', 'ff00', 'ff02', '64:ff9b', '2002');
    fc.assert(
      fc.property(prefix, fc.array(group, { minLength: 1, maxLength: 5 }), (p, rest) => {
        const url = `http://[${p}::${rest.join(':')}]/a.csv`;
        expect(refused(url), url).toBeDefined();
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses every subdomain of localhost and of cluster-internal suffixes, and any trailing dot', () => {
    const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('localhost', 'svc', 'cluster.local', 'internal', 'example.com.'), (labels, suffix) => {
        const url = `https://${labels.join('.')}.${suffix}/a.csv`;
        expect(refused(url), url).toBeDefined();
      }),
    );
  });

  it('applies the same host check to resolved addresses', () => {
    expect(hostProblem('127.0.0.1')).toContain('loopback');
    expect(hostProblem('::ffff:a9fe:a9fe')).toContain('IPv4-mapped');
    expect(hostProblem('93.184.216.34')).toBeUndefined();
  });
});
