// An inference endpoint: one base model, one VM size, many LoRA adapters. The long-lived endpoint
// workflow carries EndpointState across continue-as-new; every change goes through a pure
// transition here, whose validator (check*) throws and never mutates. vLLM cannot rebind a LoRA
// name in place, so each version is loaded under its own name (`<alias>-v3`) and the product
// resolves the stable alias to it (resolveModelName).
import { z } from 'zod';
import { modelPresetNames } from './models.js';
import { checkInput, dnsLabel, dnsLabelPattern, number, oneOf, strict } from './schema.js';
import { vmSizeNames } from './vm-sizes.js';

export const endpointSpecSchema = strict({
  name: dnsLabel(50, 'endpoint name'),
  baseModel: oneOf(modelPresetNames as [string, ...string[]]),
  vmSize: oneOf(vmSizeNames as [string, ...string[]]),
  replicas: number(1, 16, { integer: true }).default(1),
  maxLoras: number(1, 64, { integer: true }).default(4),
  maxLoraRank: number(1, 512, { integer: true }).default(64),
  /** Seconds without a request before the endpoint scales to zero (seconds, not minutes: tests need short ones). */
  idleGraceSeconds: number(10, 604_800, { integer: true }).default(1_800),
  rollbackWindowMinutes: number(0, 10_080, { integer: true }).default(60),
  watchWindowMinutes: number(0, 1_440, { integer: true }).default(10),
});
export type EndpointSpec = z.infer<typeof endpointSpecSchema>;

export function parseEndpointSpec(input: unknown): EndpointSpec {
  const checked = checkInput(endpointSpecSchema, input ?? {}, 'endpoint');
  if (!checked.ok) throw new Error(checked.problems.join('\n'));
  return checked.value;
}

/** The spec and the namespace the endpoint lives in, every problem at once. */
export function parseEndpointInput(spec: unknown, namespace: unknown): { spec: EndpointSpec; namespace: string } {
  const problems: string[] = [];
  let parsed: EndpointSpec | undefined;
  try {
    parsed = parseEndpointSpec(spec);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (typeof namespace !== 'string' || !dnsLabelPattern.test(namespace) || namespace.length > 63) {
    problems.push(`endpoint.namespace: a namespace name: a DNS label of at most 63 characters (got ${JSON.stringify(namespace ?? null)})`);
  }
  if (problems.length > 0 || !parsed) throw new Error(problems.join('\n'));
  return { spec: parsed, namespace: namespace as string };
}

/**
 * An adapter loaded under a version name: its image by digest (repo@sha256:...), and that digest.
 * `candidate`: loaded and never promoted, so a promotion may be evaluating it or awaiting its
 * approval; it is never evicted to make room (its promotion unloads it when done).
 */
export interface AdapterVersion { versionName: string; alias: string; image: string; digest: string; candidate?: boolean }

/** An alias becomes part of vLLM model names (`<alias>-v<n>`): a DNS label keeps it a safe name everywhere. */
const aliasPattern = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;
const imageByDigest = /^[^\s@]+@sha256:[0-9a-f]{64}$/;

/** The digest part of an image reference by digest. */
export const digestOf = (image: string): string => image.slice(image.lastIndexOf('@') + 1);
export interface EndpointState {
  spec: EndpointSpec;
  versions: AdapterVersion[];
  /** alias → last version number issued: a name is never reused, since vLLM cannot rebind one. */
  lastVersion: Record<string, number>;
  /** alias → version name clients are served. */
  aliases: Record<string, string>;
  /** alias → the previous version, kept loaded until expiresAtMs. */
  rollbackTargets: Record<string, { versionName: string; expiresAtMs: number }>;
  scale: { state: 'running' | 'scaled-to-zero'; sinceMs: number };
  counters: { promotions: number; rollbacks: number; coldStarts: number; idleMinutesSaved: number };
}

export const newEndpointState = (spec: EndpointSpec, nowMs: number): EndpointState => ({
  spec, versions: [], lastVersion: {}, aliases: {}, rollbackTargets: {},
  scale: { state: 'running', sinceMs: nowMs },
  counters: { promotions: 0, rollbacks: 0, coldStarts: 0, idleMinutesSaved: 0 },
});

const pinned = (s: EndpointState): Set<string> =>
  new Set([...Object.values(s.aliases), ...Object.values(s.rollbackTargets).map((t) => t.versionName)]);

/**
 * How a full endpoint makes room. `keepCandidates` (every run since the patch
 * `keep-candidates-at-max-loras`): a candidate is never evicted, so two promotions on one endpoint
 * cannot unload each other's candidate mid-evaluation. Runs that began before it replay the old rule.
 */
export interface EvictionRule { keepCandidates: boolean }
const keepCandidates: EvictionRule = { keepCandidates: true };

/** The loadCandidate validator: a well-formed alias, an image by digest, and a free (or evictable) slot. */
export function checkLoadCandidate(s: EndpointState, alias: string, image: string): void {
  if (!aliasPattern.test(alias)) throw new Error(`alias ${JSON.stringify(alias)} must be a DNS label of at most 40 characters (lowercase letters, digits, '-')`);
  if (!imageByDigest.test(image)) throw new Error(`image ${JSON.stringify(image)} must be an image by digest (registry/repository@sha256:<64 hex>)`);
  evictionFor(s, keepCandidates);
}

/** The version to evict to make room, or undefined when there is room; refuses, saying what holds each slot, when none may go. */
function evictionFor(s: EndpointState, rule: EvictionRule): AdapterVersion | undefined {
  if (s.versions.length < s.spec.maxLoras) return undefined;
  const held = pinned(s);
  const evictable = s.versions.find((v) => !held.has(v.versionName) && !(rule.keepCandidates && v.candidate));
  if (evictable) return evictable;
  const candidates = s.versions.filter((v) => v.candidate && !held.has(v.versionName)).map((v) => v.versionName);
  throw new Error(
    `endpoint ${s.spec.name} holds maxLoras=${s.spec.maxLoras} adapters, all served or kept for rollback` +
      (candidates.length > 0 && rule.keepCandidates ? ` or candidates a promotion may be evaluating (${candidates.join(', ')}): wait for those promotions, unload a candidate, or create the endpoint with more maxLoras` : ''),
  );
}

/** Loads a candidate (an image by digest) as `<alias>-v<n>`. At maxLoras it evicts the oldest version that no alias
 * or rollback target pins and, by `rule`, that is no candidate; when none may go it refuses. */
export function loadCandidate(s: EndpointState, alias: string, image: string, rule: EvictionRule = keepCandidates): EndpointState {
  const n = (s.lastVersion[alias] ?? 0) + 1;
  const version = { versionName: `${alias}-v${n}`, alias, image, digest: digestOf(image), candidate: true };
  const evicted = evictionFor(s, rule);
  const versions = s.versions.filter((v) => v !== evicted);
  return { ...s, versions: [...versions, version], lastVersion: { ...s.lastVersion, [alias]: n } };
}

export function checkPromote(s: EndpointState, versionName: string): void {
  if (!s.versions.some((v) => v.versionName === versionName)) throw new Error(`version ${versionName} is not loaded`);
}

/** Whether the version is what its alias serves now: promoting it again must change nothing (it would become its own rollback target). */
export const servesAlready = (s: EndpointState, versionName: string): boolean => {
  const alias = s.versions.find((v) => v.versionName === versionName)?.alias;
  return alias !== undefined && s.aliases[alias] === versionName;
};

/** Switches the version's alias to it; the previous version stays loaded until rollbackExpiresAtMs. */
export function promote(s: EndpointState, versionName: string, rollbackExpiresAtMs: number): EndpointState {
  checkPromote(s, versionName);
  const alias = s.versions.find((v) => v.versionName === versionName)!.alias;
  const previous = s.aliases[alias];
  const rollbackTargets = { ...s.rollbackTargets };
  if (previous) rollbackTargets[alias] = { versionName: previous, expiresAtMs: rollbackExpiresAtMs };
  const versions = s.versions.map((v) => (v.versionName === versionName ? { ...v, candidate: false } : v));
  return { ...s, versions, aliases: { ...s.aliases, [alias]: versionName }, rollbackTargets, counters: { ...s.counters, promotions: s.counters.promotions + 1 } };
}

/** Rollback is possible only while the previous version is kept (inside the window). */
export function checkRollback(s: EndpointState, alias: string): void {
  if (!s.rollbackTargets[alias]) throw new Error(`alias ${alias} has no previous version kept for rollback`);
}

export function rollback(s: EndpointState, alias: string): EndpointState {
  checkRollback(s, alias);
  const { [alias]: target, ...rest } = s.rollbackTargets;
  return { ...s, aliases: { ...s.aliases, [alias]: target!.versionName }, rollbackTargets: rest, counters: { ...s.counters, rollbacks: s.counters.rollbacks + 1 } };
}

export function checkUnload(s: EndpointState, versionName: string): void {
  if (pinned(s).has(versionName)) throw new Error(`version ${versionName} is served by an alias or kept for rollback`);
}

export function unload(s: EndpointState, versionName: string): EndpointState {
  checkUnload(s, versionName);
  return { ...s, versions: s.versions.filter((v) => v.versionName !== versionName) };
}

export function expireRollbackWindow(s: EndpointState, nowMs: number): EndpointState {
  const rollbackTargets = Object.fromEntries(Object.entries(s.rollbackTargets).filter(([, t]) => t.expiresAtMs > nowMs));
  const kept = new Set([...Object.values(s.aliases), ...Object.values(rollbackTargets).map((t) => t.versionName)]);
  const dropped = new Set(Object.values(s.rollbackTargets).map((t) => t.versionName).filter((v) => !kept.has(v)));
  return { ...s, rollbackTargets, versions: s.versions.filter((v) => !dropped.has(v.versionName)) };
}

export function resolveModelName(s: EndpointState, requestedModel: string): string {
  return s.aliases[requestedModel] ?? requestedModel;
}

export const desiredAdapters = (s: EndpointState) => s.versions.map(({ versionName, digest }) => ({ versionName, digest }));

/** What every replica's router must serve (domain/adapter-router.ts DesiredState), at a generation. */
export const desiredState = (s: EndpointState, generation: number) => ({
  generation,
  adapters: s.versions.map(({ versionName, image }) => ({ versionName, image })),
  aliases: { ...s.aliases },
});

/** Replicas the Deployment should run: the spec's while running, none while scaled to zero. */
export const wantedReplicas = (s: EndpointState): number => (s.scale.state === 'running' ? s.spec.replicas : 0);

/** The scale validator: a replica count within the spec's bounds, or to zero / wake. */
export function checkScale(s: EndpointState, request: { replicas: number } | { toZero: true } | { wake: true }): void {
  if ('toZero' in request) return checkScaleToZero(s);
  if ('wake' in request) return;
  const { replicas } = request;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) throw new Error(`replicas ${JSON.stringify(replicas)} must be an integer from 1 to 16 (scale to zero with toZero)`);
}

/** Sets the replica count of a running endpoint (a scaled-to-zero one keeps it for its wake). */
export function setReplicas(s: EndpointState, replicas: number): EndpointState {
  checkScale(s, { replicas });
  return { ...s, spec: { ...s.spec, replicas } };
}

export function reconcilePlan<T extends { versionName: string }>(desired: T[], loadedOnReplica: string[]) {
  const want = new Set(desired.map((d) => d.versionName));
  return { load: desired.filter((d) => !loadedOnReplica.includes(d.versionName)), unload: loadedOnReplica.filter((n) => !want.has(n)) };
}

export function checkScaleToZero(s: EndpointState): void {
  if (s.scale.state === 'scaled-to-zero') throw new Error(`endpoint ${s.spec.name} is already scaled to zero`);
}

export function scaleToZero(s: EndpointState, nowMs: number): EndpointState {
  checkScaleToZero(s);
  return { ...s, scale: { state: 'scaled-to-zero', sinceMs: nowMs } };
}

/** Brings a scaled-to-zero endpoint back; the idle minutes count as saved. Waking a running one changes nothing. */
export function wake(s: EndpointState, nowMs: number): EndpointState {
  if (s.scale.state === 'running') return s;
  // Fractional: an idle grace is seconds long in tests, and saved GPU time adds up across many short idle spells.
  const idleMinutes = Math.max(0, (nowMs - s.scale.sinceMs) / 60_000);
  return { ...s, scale: { state: 'running', sinceMs: nowMs }, counters: { ...s.counters, coldStarts: s.counters.coldStarts + 1, idleMinutesSaved: s.counters.idleMinutesSaved + idleMinutes } };
}

/** A plain view for the describe query and the CLI. */
export function describeEndpoint(s: EndpointState) {
  const versionOf = (name: string) => {
    const v = s.versions.find((version) => version.versionName === name);
    return { digest: v?.digest, image: v?.image };
  };
  return {
    name: s.spec.name, baseModel: s.spec.baseModel, scale: s.scale.state, counters: s.counters,
    aliases: Object.entries(s.aliases).map(([alias, versionName]) => ({ alias, versionName, ...versionOf(versionName), rollbackTo: s.rollbackTargets[alias]?.versionName })),
    loaded: s.versions.map((v) => v.versionName),
    /** Loaded, never promoted, served by nothing: each holds a slot until promoted or unloaded. */
    candidates: s.versions.filter((v) => v.candidate && !pinned(s).has(v.versionName)).map((v) => v.versionName),
  };
}

/** The counters that move with every client request: vLLM's own (docs.vllm.ai, "Production Metrics") and the router's. */
export const requestCounters = ['vllm:request_success_total', 'adapter_router_requests_total'];

/** The sum of every sample of the request counters in one Prometheus text exposition (a replica's /metrics). */
export function requestCount(metrics: string): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match && requestCounters.includes(match[1]!)) total += Number(match[3]) || 0;
  }
  return total;
}

/** The replicas' counters last read, and since when they have not moved. */
export interface TrafficMark { fingerprint: string; sinceMs: number }

/**
 * Whether the endpoint is idle: any change of a replica's count, or of the set of replicas (a
 * new pod, a restart), is traffic and starts the grace again; counts unchanged for the whole
 * grace mean idle.
 */
export function idleCheck(previous: TrafficMark | undefined, replicas: { uid: string; requests: number }[], nowMs: number, graceSeconds: number): { mark: TrafficMark; idle: boolean } {
  const fingerprint = replicas.map((r) => `${r.uid}=${r.requests}`).sort().join(',');
  if (previous?.fingerprint !== fingerprint) return { mark: { fingerprint, sinceMs: nowMs }, idle: false };
  return { mark: previous, idle: nowMs - previous.sinceMs >= graceSeconds * 1000 };
}
