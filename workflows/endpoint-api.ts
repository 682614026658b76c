// The endpoint workflow's interface: its Updates (each with a validator that refuses, before
// anything is recorded, what the endpoint's state does not allow) and its query. Shared by the
// workflow, the client, the CLI and the promotion workflow's activities.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { EndpointSpec, EndpointState, TrafficMark } from '../domain/endpoint.js';

export interface EndpointInput {
  /** The endpoint's spec (domain/endpoint.ts endpointSpecSchema), plus the namespace it lives in. */
  spec: Partial<EndpointSpec> & { name: string; baseModel: string; vmSize: string };
  namespace: string;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: {
    state: EndpointState;
    generation: number;
    coldStartSeconds?: number[];
    gpusPerNode?: number;
    /** The replicas' request counters last read, and since when unchanged: idleness spans runs. */
    traffic?: TrafficMark;
    /** Nodes the pool has (0 while scaled to zero), so a release that failed is tried again after continue-as-new. */
    poolNodes?: number;
    /** The last Updates that completed, by Update id: Temporal answers a repeated id only within one run. */
    completedUpdates?: CompletedUpdate[];
  };
  /** Continue-as-new after this many history events (default: when Temporal suggests it). Tests set it low. */
  continueAsNewAfterEvents?: number;
}

/** An Update the endpoint completed: a retry that sends the same id again gets this outcome, not a second change. */
export interface CompletedUpdate {
  id: string;
  result?: unknown;
  /** Set when the Update failed: a repeat fails the same way. */
  failure?: { message: string; type?: string };
}

export interface LoadCandidateRequest {
  /** The stable alias the candidate may later serve under. */
  alias: string;
  /** The adapter image, by digest. */
  image: string;
}

/** Loads an adapter on every replica under a new version name (`<alias>-v<n>`), waking the endpoint if needed. Returns the version name once every replica serves it. */
export const loadCandidateUpdate = defineUpdate<{ versionName: string }, [LoadCandidateRequest]>('loadCandidate');
/** Points the version's alias at it on every replica; the previous version stays loaded for the rollback window. */
export const promoteUpdate = defineUpdate<{ alias: string; versionName: string; previous?: string }, [{ versionName: string }]>('promote');
/** Points the alias back at the version it served before the last promotion. */
export const rollbackUpdate = defineUpdate<{ alias: string; versionName: string }, [{ alias: string }]>('rollback');
/** Unloads a version no alias serves and no rollback keeps. */
export const unloadUpdate = defineUpdate<void, [{ versionName: string }]>('unload');
/** Scales the endpoint: to a number of replicas, or to zero (pool released), or wakes it. */
export type ScaleRequest = { replicas: number } | { toZero: true } | { wake: true };
export const scaleUpdate = defineUpdate<void, [ScaleRequest]>('scale');
/** Tears the endpoint down (Deployment, Service, ConfigMap, pool) and ends its workflow. */
export const retireUpdate = defineUpdate<void, []>('retire');

export interface EndpointDescription {
  name: string;
  namespace: string;
  baseModel: string;
  vmSize: string;
  /** The highest adapter rank its vLLM accepts (--max-lora-rank): a promotion checks an adapter against it before loading. */
  maxLoraRank: number;
  /** How long a promotion watches the alias after a switch, unless the promotion says otherwise. */
  watchWindowMinutes: number;
  /** How long a promoted alias's previous version stays loaded for a rollback. */
  rollbackWindowMinutes: number;
  scale: 'running' | 'scaled-to-zero';
  replicas: number;
  pool: string;
  aliases: { alias: string; versionName: string; digest?: string; image?: string; rollbackTo?: string; promotedBy?: string }[];
  loaded: string[];
  /** Loaded, never promoted, served by nothing: each holds a maxLoras slot until promoted or unloaded. */
  candidates: string[];
  counters: EndpointState['counters'];
  /** Seconds from wake to serving, most recent last. */
  coldStartSeconds: number[];
  /** GPU-minutes not billed while scaled to zero (idle minutes × nodes). */
  gpuMinutesSaved: number;
  generation: number;
}
export const describeEndpointQuery = defineQuery<EndpointDescription>('describe');
