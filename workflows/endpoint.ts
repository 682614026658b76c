// endpoint: the long-lived owner of one inference endpoint (one base model, one VM size, many
// LoRA adapters): its GPU pool, its Deployment (vLLM + the adapter-router sidecar), Service and
// desired-state ConfigMap, and the adapters it serves. Changes arrive as Updates; each validator
// refuses what the state does not allow (domain/endpoint.ts check*), then the change runs one at
// a time: the pure transition, a new generation written to the ConfigMap, and a wait until every
// replica's router has applied it. A change a replica cannot apply (an adapter fails to load) is
// undone and the Update fails with the router's message. Idle (no request counted by any replica
// for the spec's grace) → the Deployment goes to 0 and the pool is deleted; a wake (explicit, or
// a loadCandidate) brings both back. Everything the endpoint owns is tagged with its workflow id
// alone, so continue-as-new keeps it; retire or a cancel tears it down.
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  currentUpdateInfo,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  TemporalFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import {
  checkLoadCandidate,
  checkPromote,
  checkRollback,
  checkScale,
  checkUnload,
  describeEndpoint,
  desiredState,
  type EndpointSpec,
  type EndpointState,
  expireRollbackWindow,
  idleCheck,
  loadCandidate,
  newEndpointState,
  parseEndpointInput,
  promote,
  servesAlready,
  rollback,
  scaleToZero,
  setReplicas,
  type TrafficMark,
  unload,
  wake,
  wantedReplicas,
} from '../domain/endpoint.js';
import { failureTypes } from '../domain/failure-types.js';
import { managedPoolTags } from '../domain/pool-tags.js';
import { apiCalls, armOperations, clusterWaits, replicaConvergence } from './activity-options.js';
import {
  type EndpointDescription,
  type EndpointInput,
  describeEndpointQuery,
  loadCandidateUpdate,
  promoteUpdate,
  retireUpdate,
  rollbackUpdate,
  scaleUpdate,
  unloadUpdate,
  type CompletedUpdate,
} from './endpoint-api.js';
import { gpuTaint } from './fine-tune-gpus.js';
import { invalidInput } from './input-checks.js';
import { endpointPoolName } from './naming.js';
import { undoSteps } from './undo-steps.js';

export type { EndpointInput } from './endpoint-api.js';

const arm = proxyActivities<Pick<Activities, 'ensureNodePool' | 'deleteNodePool'>>(armOperations);
const kube = proxyActivities<Pick<Activities, 'ensureNamespace' | 'applyEndpoint' | 'readEndpointTraffic' | 'deleteRunObjects'>>(apiCalls);
const waits = proxyActivities<Pick<Activities, 'waitForPoolNodes'>>(clusterWaits);
const convergence = proxyActivities<Pick<Activities, 'waitForEndpointConvergence'>>(replicaConvergence);

/** An endpoint as its workflow holds it while running. */
interface Endpoint {
  namespace: string;
  owner: { workflowId: string };
  pool: string;
  state: EndpointState;
  /** Raised on every change of the desired state; routers report the last one they applied. */
  generation: number;
  coldStartSeconds: number[];
  /** GPUs per node of the pool, once its nodes were Ready (the Deployment requests them all). */
  gpusPerNode: number;
  /** Nodes the pool has now (0 while scaled to zero). */
  poolNodes: number;
  /** The replicas' request counters last read, and since when they have not moved. */
  traffic?: TrafficMark;
  retired: boolean;
  /** Set before any teardown: no change starts after it (one would bring the pool back). */
  closing: boolean;
  /** The tail of the queue of changes: they run one at a time, in the order they arrived. */
  changes: Promise<unknown>;
  /** The last `rememberedUpdates` Updates that completed, carried across continue-as-new. */
  completedUpdates: CompletedUpdate[];
}

/** Enough for every retry in flight: a promotion sends a handful of Updates, each retried for minutes at most. */
const rememberedUpdates = 200;

export async function endpoint(input: EndpointInput): Promise<EndpointDescription> {
  const ep = open(input);
  try {
    // Queued like a change: an Update that arrives meanwhile runs once the endpoint exists.
    if (!input.carried) await exclusive(ep, () => create(ep));
    await serve(ep, input);
  } catch (err) {
    // A cancel or a failure tears the endpoint down: nothing it owned keeps billing.
    // Its own failures are logged step by step; the run fails with what ended it.
    if (!ep.retired) await closeDown(ep).catch(() => undefined);
    throw isCancellation(err) || err instanceof TemporalFailure ? err : ApplicationFailure.nonRetryable(`endpoint workflow code failed: ${String(err)}`, failureTypes.workflowCodeError);
  }
  if (ep.retired) return describe(ep);
  // Outside the try: continuing is no failure, and what the endpoint owns stays with the next run.
  return continueAsNew<typeof endpoint>({
    ...input,
    carried: {
      state: ep.state,
      generation: ep.generation,
      coldStartSeconds: ep.coldStartSeconds,
      gpusPerNode: ep.gpusPerNode,
      traffic: ep.traffic,
      poolNodes: ep.poolNodes,
      completedUpdates: ep.completedUpdates,
    },
  });
}

/** Validates the input (a bad one fails before anything is created), then sets up the state, the query and the Updates. */
function open(input: EndpointInput): Endpoint {
  let parsed: { spec: EndpointSpec; namespace: string };
  try {
    parsed = parseEndpointInput(input.spec, input.namespace);
  } catch (err) {
    throw invalidInput('endpoint', (err as Error).message.split('\n'));
  }
  const { workflowId } = workflowInfo();
  const carried = input.carried;
  const ep: Endpoint = {
    namespace: parsed.namespace,
    owner: { workflowId },
    pool: endpointPoolName(workflowId),
    state: carried?.state ?? newEndpointState(parsed.spec, Date.now()),
    generation: carried?.generation ?? 1,
    coldStartSeconds: carried?.coldStartSeconds ?? [],
    gpusPerNode: carried?.gpusPerNode ?? 0,
    traffic: carried?.traffic,
    // Carried: a pool whose release failed before continue-as-new is still released at the next check.
    poolNodes: carried?.poolNodes ?? (carried?.state.scale.state === 'scaled-to-zero' ? 0 : (carried?.state.spec.replicas ?? 0)),
    retired: false,
    closing: false,
    changes: Promise.resolve(),
    completedUpdates: carried?.completedUpdates ?? [],
  };
  setHandlers(ep);
  return ep;
}

/** Runs a change after the ones queued before it: each sees the state the previous one left. */
function exclusive<T>(ep: Endpoint, change: () => Promise<T>): Promise<T> {
  const unlessClosing = () => (ep.closing ? Promise.reject(ApplicationFailure.nonRetryable(closingMessage(ep), failureTypes.invalidRequest)) : change());
  const run = ep.changes.then(unlessClosing, unlessClosing);
  ep.changes = run.catch(() => undefined);
  return run;
}

const closingMessage = (ep: Endpoint) => `endpoint ${ep.state.spec.name} is being retired`;

/** Every validator first: an endpoint being retired takes no more changes. */
function checkOpen(ep: Endpoint): void {
  if (ep.closing) throw new Error(closingMessage(ep));
}

/** Stops taking changes, lets the ones in flight finish (their activities included), then tears down: nothing lands after the teardown. */
async function closeDown(ep: Endpoint): Promise<void> {
  ep.closing = true;
  await CancellationScope.nonCancellable(async () => {
    await ep.changes;
    await tearDown(ep);
  });
}

/** A transition the state no longer allows (an earlier queued change got there first): the Update fails, nothing changes. */
function transitioned(ep: Endpoint, transition: (s: EndpointState) => EndpointState): EndpointState {
  try {
    return transition(ep.state);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, failureTypes.invalidRequest);
  }
}

/**
 * Sets a change's Update handler so that an Update id this endpoint already completed, in this run
 * or one before a continue-as-new, gets its first result again, validator skipped: a retried
 * activity (a promotion's load, say) never changes anything twice. Within one run Temporal does
 * this itself; across runs it cannot.
 */
function setChangeHandler<R, A>(ep: Endpoint, update: UpdateDefinition<R, [A], string>, handler: (arg: A) => Promise<R>, validator: (arg: A) => void): void {
  const earlier = () => {
    const id = currentUpdateInfo()?.id;
    return id === undefined ? undefined : ep.completedUpdates.find((u) => u.id === id);
  };
  setHandler(
    update,
    async (arg: A): Promise<R> => {
      const done = earlier();
      if (done?.failure) throw ApplicationFailure.nonRetryable(done.failure.message, done.failure.type);
      if (done) return done.result as R;
      const id = currentUpdateInfo()!.id;
      const remember = (outcome: CompletedUpdate) => (ep.completedUpdates = [...ep.completedUpdates, outcome].slice(-rememberedUpdates));
      try {
        const result = await handler(arg);
        remember({ id, result });
        return result;
      } catch (err) {
        // Only a Temporal failure fails an Update (anything else fails the workflow task): the same one answers a repeat.
        if (err instanceof TemporalFailure) remember({ id, failure: { message: err.message, type: err instanceof ApplicationFailure ? (err.type ?? undefined) : err.name } });
        throw err;
      }
    },
    { validator: (arg: A) => void (earlier() ?? validator(arg)) },
  );
}

function setHandlers(ep: Endpoint): void {
  setHandler(describeEndpointQuery, () => describe(ep));
  setChangeHandler(
    ep,
    loadCandidateUpdate,
    ({ alias, image }) =>
      exclusive(ep, async () => {
        if (ep.state.scale.state === 'scaled-to-zero') await wakeUp(ep);
        // Runs begun before this patch evicted an unpromoted candidate at maxLoras; they replay that rule.
        const keepCandidates = patched('keep-candidates-at-max-loras');
        await change(ep, (s) => loadCandidate(s, alias, image, { keepCandidates }));
        return { versionName: `${alias}-v${ep.state.lastVersion[alias]}` };
      }),
    ({ alias, image }) => (checkOpen(ep), checkLoadCandidate(ep.state, alias, image)),
  );
  setChangeHandler(
    ep,
    promoteUpdate,
    ({ versionName }) =>
      exclusive(ep, async () => {
        const alias = ep.state.versions.find((v) => v.versionName === versionName)?.alias ?? '';
        // Promoting what the alias serves already (a repeated request) changes nothing: no wake, and the rollback target stays.
        // Runs begun before this patch made the version its own rollback target; they replay that.
        if (servesAlready(ep.state, versionName) && patched('promote-served-is-noop')) return { alias, versionName, previous: ep.state.rollbackTargets[alias]?.versionName };
        // An approval can come after the idle grace: the switch serves, and is watched, on a running endpoint.
        if (ep.state.scale.state === 'scaled-to-zero') await wakeUp(ep);
        const previous = ep.state.aliases[alias];
        await change(ep, (s) => promote(s, versionName, Date.now() + s.spec.rollbackWindowMinutes * 60_000));
        return { alias, versionName, previous };
      }),
    ({ versionName }) => (checkOpen(ep), checkPromote(ep.state, versionName)),
  );
  setChangeHandler(
    ep,
    rollbackUpdate,
    ({ alias }) =>
      exclusive(ep, async () => {
        if (ep.state.scale.state === 'scaled-to-zero') await wakeUp(ep);
        await change(ep, (s) => rollback(s, alias));
        return { alias, versionName: ep.state.aliases[alias]! };
      }),
    ({ alias }) => (checkOpen(ep), checkRollback(ep.state, alias)),
  );
  setChangeHandler(
    ep,
    unloadUpdate,
    ({ versionName }) => exclusive(ep, () => change(ep, (s) => unload(s, versionName))),
    ({ versionName }) => {
      checkOpen(ep);
      if (!ep.state.versions.some((v) => v.versionName === versionName)) throw new Error(`version ${versionName} is not loaded`);
      checkUnload(ep.state, versionName);
    },
  );
  setChangeHandler(
    ep,
    scaleUpdate,
    (request) =>
      exclusive(ep, async () => {
        if ('toZero' in request) return scaleDown(ep, 'requested');
        if ('wake' in request) return wakeUp(ep);
        await change(ep, (s) => setReplicas(s, request.replicas));
      }),
    (request) => (checkOpen(ep), checkScale(ep.state, request)),
  );
  setHandler(
    retireUpdate,
    async () => {
      await closeDown(ep);
      ep.retired = true;
    },
    { validator: () => checkOpen(ep) },
  );
}

/** The first run: the namespace checked (before anything is paid for), then the pool, its nodes, the objects at generation 1 (no adapters yet). */
async function create(ep: Endpoint): Promise<void> {
  await kube.ensureNamespace(ep.namespace);
  await provisionReplicas(ep);
}

/**
 * The pool at the replica count (one node per replica), the objects applied, every replica
 * converged. A pool grows before the Deployment does, and shrinks after it did, so no serving
 * replica loses its node.
 */
async function provisionReplicas(ep: Endpoint): Promise<void> {
  const nodes = wantedReplicas(ep.state);
  if (nodes > ep.poolNodes) await resizePool(ep, nodes);
  await apply(ep);
  if (nodes < ep.poolNodes) await resizePool(ep, nodes);
}

async function resizePool(ep: Endpoint, nodes: number): Promise<void> {
  await arm.ensureNodePool({
    name: ep.pool,
    vmSize: ep.state.spec.vmSize,
    count: nodes,
    spot: false,
    taints: [gpuTaint],
    labels: { 'aks-finetune.io/purpose': 'inference' },
    // The workflow id alone: every run of this endpoint (continue-as-new) owns the pool.
    tags: managedPoolTags(ep.owner, { policy: 'delete' }),
  });
  ep.poolNodes = nodes;
  if (nodes > 0) ep.gpusPerNode = (await waits.waitForPoolNodes(ep.pool, nodes)).gpusPerNode;
}

/** Writes the desired state and the replica count, then waits until every replica has applied the generation. */
async function apply(ep: Endpoint): Promise<void> {
  const replicas = wantedReplicas(ep.state);
  await kube.applyEndpoint({
    spec: ep.state.spec,
    namespace: ep.namespace,
    owner: ep.owner,
    pool: ep.pool,
    taints: [gpuTaint],
    gpus: ep.gpusPerNode,
    replicas,
    desired: desiredState(ep.state, ep.generation),
  });
  if (replicas > 0) await convergence.waitForEndpointConvergence({ namespace: ep.namespace, name: ep.state.spec.name, owner: ep.owner, generation: ep.generation, replicas });
}

/**
 * One change: the transition, a new generation, applied on every replica. When a replica cannot
 * apply it, the previous state is applied again (as a newer generation, so routers move back)
 * and the change fails with the router's message.
 */
async function change(ep: Endpoint, transition: (s: EndpointState) => EndpointState): Promise<void> {
  const previous = ep.state;
  ep.state = transitioned(ep, transition);
  ep.generation += 1;
  try {
    await provisionReplicas(ep);
  } catch (err) {
    log.warn('endpoint change failed; restoring the previous state', { generation: ep.generation, error: String(err) });
    ep.state = previous;
    ep.generation += 1;
    await provisionReplicas(ep);
    throw changeFailure(err);
  }
}

/** What the Update's caller reads: the router's (or ARM's, Kubernetes') own message, not "Activity task failed". */
function changeFailure(err: unknown): unknown {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return err;
  return ApplicationFailure.create({ message: err.cause.message, type: err.cause.type ?? undefined, nonRetryable: true, cause: err });
}

/** No traffic for the grace period (or asked to): the Deployment to 0, then the pool deleted. */
async function scaleDown(ep: Endpoint, why: string): Promise<void> {
  ep.state = transitioned(ep, (s) => scaleToZero(s, Date.now()));
  log.info('endpoint scales to zero', { endpoint: ep.state.spec.name, why });
  ep.traffic = undefined;
  await apply(ep);
  await releasePool(ep);
}

/** Deletes the pool while its tags still name this endpoint; a failure leaves poolNodes set, so the next check tries again. */
async function releasePool(ep: Endpoint): Promise<void> {
  await arm.deleteNodePool(ep.pool, { ownedBy: ep.owner });
  ep.poolNodes = 0;
}

/**
 * Brings a scaled-to-zero endpoint back (pool, nodes, replicas serving every adapter) and records
 * the cold start. When it cannot (no capacity, an adapter that no longer loads), the endpoint goes
 * back to zero (no replicas, no pool) and the caller's Update fails with why.
 */
async function wakeUp(ep: Endpoint): Promise<void> {
  if (ep.state.scale.state === 'running') return;
  const asleep = ep.state;
  const startedMs = Date.now();
  ep.state = wake(ep.state, startedMs);
  try {
    await provisionReplicas(ep);
  } catch (err) {
    ep.state = asleep;
    await apply(ep);
    await releasePool(ep);
    throw changeFailure(err);
  }
  ep.coldStartSeconds.push((Date.now() - startedMs) / 1000);
}

/** Between changes: expire rollback windows, look for idleness; returns when retired, or when the history is long enough to continue-as-new (no handler running). */
async function serve(ep: Endpoint, input: EndpointInput): Promise<void> {
  const historyLong = () =>
    workflowInfo().continueAsNewSuggested || (input.continueAsNewAfterEvents !== undefined && workflowInfo().historyLength >= input.continueAsNewAfterEvents);
  for (;;) {
    const nextExpiry = Math.min(...Object.values(ep.state.rollbackTargets).map((t) => t.expiresAtMs));
    const wakeInMs = Math.max(1_000, Math.min(idleCheckIntervalMs(ep.state.spec), nextExpiry - Date.now()));
    await condition(() => ep.retired || historyLong(), wakeInMs);
    if (ep.retired || historyLong()) break;
    if (ep.closing) continue; // retire is tearing down
    try {
      await exclusive(ep, async () => {
        if (Object.values(ep.state.rollbackTargets).some((t) => t.expiresAtMs <= Date.now())) await change(ep, (s) => expireRollbackWindow(s, Date.now()));
        if (ep.state.scale.state === 'running') await checkIdle(ep);
        else if (ep.poolNodes > 0) await releasePool(ep); // a release that failed before
      });
    } catch (err) {
      // Housekeeping that failed (its activity out of retries) is tried again next time; the endpoint keeps serving.
      if (isCancellation(err)) throw err;
      log.warn('endpoint housekeeping failed; trying again at the next check', { error: String(err) });
    }
  }
  await condition(allHandlersFinished);
}

/** A quarter of the grace, between 2 s and a minute: idleness is noticed within about 1.25 × the grace. */
const idleCheckIntervalMs = (spec: EndpointSpec) => Math.min(60_000, Math.max(2_000, (spec.idleGraceSeconds * 1000) / 4));

/** Any change of a replica's counters, or of the set of replicas, is traffic; none for the grace → scale to zero. */
async function checkIdle(ep: Endpoint): Promise<void> {
  const replicas = await kube.readEndpointTraffic({ namespace: ep.namespace, name: ep.state.spec.name, owner: ep.owner });
  const { mark, idle } = idleCheck(ep.traffic, replicas, Date.now(), ep.state.spec.idleGraceSeconds);
  ep.traffic = mark;
  if (idle) await scaleDown(ep, `no requests for ${ep.state.spec.idleGraceSeconds}s`);
}

/**
 * Deletes the endpoint's Deployment, Service and ConfigMap, then its pool: only what carries its
 * workflow id. Each step runs on its own: objects that cannot be deleted never keep the pool
 * billing (the reaper's sweep removes them once this run has ended). Fails with every step's error.
 */
async function tearDown(ep: Endpoint): Promise<void> {
  const { attempt, failed } = undoSteps('endpoint teardown');
  await attempt('delete objects', () => kube.deleteRunObjects(ep.namespace, ep.owner, { includeInference: true }));
  await attempt('delete pool', () => releasePool(ep));
  if (failed.length > 0) throw ApplicationFailure.nonRetryable(`endpoint teardown incomplete: ${failed.join('; ')}`, failureTypes.teardownIncomplete);
}

function describe(ep: Endpoint): EndpointDescription {
  const view = describeEndpoint(ep.state);
  return {
    ...view,
    namespace: ep.namespace,
    vmSize: ep.state.spec.vmSize,
    maxLoraRank: ep.state.spec.maxLoraRank,
    watchWindowMinutes: ep.state.spec.watchWindowMinutes,
    rollbackWindowMinutes: ep.state.spec.rollbackWindowMinutes,
    replicas: wantedReplicas(ep.state),
    pool: ep.pool,
    coldStartSeconds: ep.coldStartSeconds,
    // One node per replica: each idle minute saved that many nodes' GPUs.
    gpuMinutesSaved: ep.state.counters.idleMinutesSaved * ep.state.spec.replicas * Math.max(ep.gpusPerNode, 1),
    generation: ep.generation,
  };
}
