// The contract between an endpoint's workflow and the adapter-router sidecar in each of its
// replicas. The workflow writes the endpoint's desired state into one ConfigMap; every replica's
// router reads it, pulls each adapter by digest into the pod's adapter folder, loads it into its
// own vLLM (POST /v1/load_lora_adapter on localhost), then switches its alias table, then unloads
// what is no longer wanted, and reports the generation it has applied. Clients call the router's
// port (the Service's target): it resolves a stable alias to the version it currently serves,
// since vLLM cannot rebind a LoRA name in place. Pure: the workflow, the sidecar, the simulator
// and the tests share it.
import { z } from 'zod';

/** The router's port: the Service's target. vLLM itself listens on localhost only. */
export const routerPort = 8000;
/** vLLM's port inside the pod (KAITO serves vLLM on 5000). */
export const vllmPort = 5000;
/** Where the router unpacks adapters; the vLLM container mounts the same emptyDir. */
export const adapterMountPath = '/mnt/adapters';
/** The router's own routes (the rest is vLLM's OpenAI-compatible API, proxied). */
export const routerPaths = { status: '/_router/status', ready: '/_router/ready', metrics: '/metrics' } as const;

/** The ConfigMap holding an endpoint's desired state, and its one key. */
export const desiredStateConfigMapName = (endpoint: string): string => `${endpoint}-adapters`;
export const desiredStateKey = 'desired.json';

export const desiredStateSchema = z.strictObject({
  /** Raised by the workflow on every change; a router reports the last one it applied. */
  generation: z.int().min(0),
  /** Every adapter every replica must have loaded, each under its version name. */
  adapters: z.array(z.strictObject({ versionName: z.string().min(1), image: z.string().regex(/@sha256:[0-9a-f]{64}$/, 'an image by digest (…@sha256:<64 hex>)') })),
  /** Stable alias → version name it resolves to (a loaded adapter). */
  aliases: z.record(z.string(), z.string()),
});
export type DesiredState = z.infer<typeof desiredStateSchema>;

/** What GET /_router/status answers. */
export interface RouterStatus {
  /** The last generation fully applied: every adapter loaded, the alias table switched, leftovers unloaded. */
  appliedGeneration: number;
  /** The generation read from the ConfigMap (may be ahead of applied while loading). */
  seenGeneration: number;
  /** Version names loaded into this replica's vLLM. */
  loaded: string[];
  /** The alias table in force. */
  aliases: Record<string, string>;
  /** Adapters of the seen generation that failed to pull, check or load, with vLLM's or the registry's message. */
  errors: { versionName: string; message: string }[];
}

/** Ready (GET /_router/ready answers 200, the pod's readiness probe) once it has applied a desired state: a replica that
 * starts or restarts takes no traffic until it serves every adapter the endpoint serves. Generations start at 1. */
export const routerReady = (s: RouterStatus): boolean => s.appliedGeneration >= 1;

/** The desired state in the ConfigMap's text, or an error saying what is wrong with it. */
export function parseDesiredState(text: string | undefined): DesiredState {
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    throw new Error(`${desiredStateKey} is not JSON`);
  }
  const parsed = desiredStateSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${desiredStateKey} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Aliases that resolve to neither a desired adapter nor the base model: switching to them would break the alias. */
export function aliasProblems(desired: DesiredState, baseModel: string): { versionName: string; message: string }[] {
  const served = new Set([baseModel, ...desired.adapters.map((a) => a.versionName)]);
  return Object.entries(desired.aliases)
    .filter(([, target]) => !served.has(target))
    .map(([alias, target]) => ({ versionName: target, message: `alias ${alias} resolves to ${target}, which is not among the desired adapters` }));
}

/** The name vLLM serves for a requested `model`: an alias's version; a version name or the base model passes through. */
export const resolveAlias = (aliases: Record<string, string>, model: string): string => (Object.hasOwn(aliases, model) ? aliases[model]! : model);

/** One line of adapter_router_requests_total. `model` is what the client asked for, `version` what served it. */
export interface RequestCount {
  model: string;
  version: string;
  code: number;
  count: number;
}

const labelValue = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The router's own Prometheus lines (text exposition format 0.0.4). */
export function routerMetrics(counts: RequestCount[], status: RouterStatus): string[] {
  return [
    '# HELP adapter_router_requests_total Requests the adapter-router proxied, by requested model, the version it resolved to, and status code.',
    '# TYPE adapter_router_requests_total counter',
    ...counts.map((c) => `adapter_router_requests_total{model="${labelValue(c.model)}",version="${labelValue(c.version)}",code="${c.code}"} ${c.count}`),
    '# HELP adapter_router_applied_generation The last desired-state generation this replica fully applied.',
    '# TYPE adapter_router_applied_generation gauge',
    `adapter_router_applied_generation ${status.appliedGeneration}`,
  ];
}
