// `aks-finetune <command>` (scripts/aks-finetune.js; also `npm run cli -- <command>`): start, follow, list, cancel and plan fineTune runs; retrain schedules; endpoints.
// Connects through Temporal's environment configuration, like the worker (client/temporal-connection.ts; docs/operations.md, "Configuration").
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import {
  cancelFineTune,
  checkTuningConfigMapFile,
  FineTuneRequestError,
  getFineTuneStatus,
  listFineTunes,
  planFineTune,
  readFineTuneSpec,
  type RunStatus,
  startFineTune,
} from '../client/fine-tune-client.js';
import {
  createRetrainSchedule,
  deleteRetrainSchedule,
  describeRetrainSchedule,
  describeWhen,
  listRetrainSchedules,
  pauseRetrainSchedule,
  type RetrainScheduleOptions,
  triggerRetrainSchedule,
  unpauseRetrainSchedule,
  updateRetrainSchedule,
} from '../client/retrain-schedules.js';
import {
  createEndpoint,
  describeEndpoint,
  renderEndpoint,
  retireEndpoint,
  rollbackEndpointAlias,
  scaleEndpoint,
  unloadEndpointVersion,
} from '../client/endpoints.js';
import { decidePromotion, getPromotionStatus, PromotionRequestError, startPromotion } from '../client/promotion-client.js';
import { runDoctor } from '../client/doctor.js';
import { describeRunFailure } from '../client/run-failure.js';
import { connectClient, loadTemporalSettings } from '../client/temporal-connection.js';
import { readEvaluationLineage } from '../activities/registry/evaluation-artifacts.js';
import { createAzureCredential } from '../workers/clients.js';
import { readAdapterLineage } from '../client/adapter-lineage.js';
import { lineageSummary } from '../domain/lineage.js';
import { lossChart, trainingLines } from '../client/training-view.js';
import { attemptQuotaText, readAttemptQuota } from '../client/gpu-quota.js';
import { estimateCost } from '../domain/prices.js';
import { quotaSummary } from '../domain/gpu-candidates.js';
import { adapterDestination, adapterImageOf, type FineTuneInput } from '../domain/fine-tune-request.js';
import type { PromotionRequest } from '../domain/promotion.js';
import type { PromotionStatus } from '../workflows/promotion-api.js';
import { usage } from './cli-usage.js';

const usageHead = usage.slice(0, usage.indexOf('\n\n'));
const usageTail = usage.slice(usage.indexOf('\n\nEnvironment:'));

/** One command's lines of the usage (each `start`, `schedule create|update`... entry and its continuation lines). */
function helpFor(command: string | undefined): string {
  if (!command || command === 'help') return usage;
  const lines = usage.slice(0, usage.indexOf('\n\nEnvironment:')).split('\n');
  const picked: string[] = [];
  let inEntry = false;
  for (const line of lines) {
    const entry = /^ {2}(\S+)/.exec(line);
    if (entry) inEntry = entry[1]!.split('|').includes(command);
    else if (!/^ {3,}\S/.test(line)) inEntry = false;
    if (inEntry) picked.push(line);
  }
  if (!picked.length) throw new UsageError(`unknown command "${command}"`);
  return `${usageHead}\n\n${picked.join('\n')}${usageTail}`;
}

class UsageError extends Error {}

/** Where a command's result goes: text for people, or with --json one JSON document for scripts. */
class Output {
  constructor(readonly json: boolean) {}

  result(value: unknown, text: () => string): void {
    console.log(this.json ? JSON.stringify(value, null, 2) : text());
  }

  /** One state of something followed: a JSON line, or its text. */
  line(value: unknown, text: string): void {
    console.log(this.json ? JSON.stringify(value) : text);
  }
}

/**
 * A request file, or a KAITO Workspace file (kind: Workspace), YAML or JSON; --image, --push-secret,
 * --output-volume and --vm-size replace the file's output.image, output.pushSecret, output.volume and
 * gpu.vmSize (request fields win over a Workspace's), so KAITO's files run unchanged.
 */
function readRequest(file: string | undefined, values: Record<string, string | boolean | undefined> = {}): FineTuneInput {
  if (!file) throw new UsageError('a spec file is required');
  const request = readFineTuneSpec(file);
  const image = values.image as string | undefined;
  const pushSecret = values['push-secret'] as string | undefined;
  const volume = values['output-volume'] as string | undefined;
  const vmSize = values['vm-size'] as string | undefined;
  if (image === undefined && pushSecret === undefined && volume === undefined && vmSize === undefined) return request;
  return {
    ...request,
    output: { ...request.output, ...(image !== undefined ? { image } : {}), ...(pushSecret !== undefined ? { pushSecret } : {}), ...(volume !== undefined ? { volume } : {}) },
    gpu: { ...request.gpu, ...(vmSize !== undefined ? { vmSize } : {}) },
  };
}

const seconds = (from?: string, to?: string) => (from ? (((to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1000).toFixed(1) : '-');
const pipeline = ['GPU capacity', 'wait for GPU nodes', 'tuning inputs', 'train', 'push adapter image', 'release GPUs'];

function render({ workflowId, execution, status, failure }: RunStatus, options: { chart: boolean }): string {
  const lines = [`${workflowId}: ${execution}${status ? `, phase ${status.phase}` : ''}`];
  if (status) {
    const done = status.steps.filter((s) => s.endedAt).length;
    const total = Math.max(pipeline.length, status.steps.length);
    const width = 24;
    const filled = Math.round((done / total) * width);
    lines.push(`  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} steps${status.currentStep ? `, now: ${status.currentStep}` : ''}`);
    for (const step of status.steps) lines.push(`  ${step.endedAt ? '✓' : '…'} ${step.name.padEnd(20)} ${seconds(step.startedAt, step.endedAt).padStart(7)}s  ${step.detail ?? ''}`);
    const t = status.training;
    if (t && (status.phase === 'training' || t.step !== undefined)) {
      lines.push(...trainingLines(t));
      if (options.chart) lines.push(...lossChart(t.lossHistory));
    }
    if (status.gpu) {
      const g = status.gpu;
      lines.push(`  GPUs: pool ${g.pool} (${g.vmSize}${g.spot ? ', spot' : ''}), ${g.gpuMinutes} GPU-minutes, about ${g.estimatedCost?.toFixed(2) ?? '?'} ${g.currency} (prices as of ${g.pricesAsOf})`);
    }
    if (status.adapter?.digest) lines.push(`  adapter: ${status.adapter.reference}`);
    if (status.adapter?.contentDigest) lines.push(`  adapter: ${status.adapter.files?.join(', ')} on PersistentVolumeClaim ${status.adapter.volume} (${status.adapter.contentDigest})`);
    if (status.inference) lines.push(`  serving: ${status.inference.models.join(', ')} (Service ${status.inference.service})`);
    if (status.released.length) lines.push(`  released: ${status.released.join(', ')}`);
  }
  // The root cause with its type (the ARM or Kubernetes message and the advice); a run still going has no failure yet.
  const error = failure ? describeRunFailure(failure) : status?.error;
  if (error) lines.push(`  error: ${error}`);
  return lines.join('\n');
}

async function follow(client: Client, workflowId: string, out: Output): Promise<number> {
  const redraw = process.stdout.isTTY && !out.json;
  let previous = '';
  for (;;) {
    const status = await getFineTuneStatus(client, workflowId);
    const text = render(status, { chart: false });
    if (text !== previous) {
      if (redraw && previous) process.stdout.write(`\x1b[${previous.split('\n').length}A\x1b[J`);
      out.line(status, text);
      previous = text;
    }
    if (status.execution !== 'RUNNING') return status.execution === 'COMPLETED' ? 0 : 1;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function scheduleCommand(client: Client, taskQueue: string, [sub, id, spec]: string[], values: Record<string, string | boolean | undefined>, out: Output): Promise<number> {
  if (sub === 'list') {
    const schedules = (await listRetrainSchedules(client)).map((s) => ({ scheduleId: s.scheduleId, paused: s.state.paused, nextActionTime: s.info?.nextActionTimes?.[0]?.toISOString() }));
    out.result(schedules, () => schedules.map((s) => `${s.scheduleId.padEnd(32)} ${s.paused ? 'paused ' : 'active '} next ${s.nextActionTime ?? '-'}`).join('\n'));
    return 0;
  }
  if (!id) throw new UsageError('a schedule id is required');
  const str = (key: string) => values[key] as string | undefined;
  switch (sub) {
    case 'create':
    case 'update': {
      const options = {
        cron: str('cron'),
        every: str('every'),
        timezone: str('timezone'),
        overlap: str('overlap') as RetrainScheduleOptions['overlap'],
        catchupWindow: str('catchup-window'),
        jitter: str('jitter'),
        taskQueue,
      };
      await (sub === 'create' ? createRetrainSchedule : updateRetrainSchedule)(client, id, readRequest(spec), options);
      const done = sub === 'create' ? 'created' : 'updated';
      out.result({ scheduleId: id, [done]: true }, () => `Schedule ${id} ${done}`);
      return 0;
    }
    case 'describe': {
      const d = await describeRetrainSchedule(client, id);
      const recent = d.info.recentActions.slice(-5).map((a) => ({ takenAt: a.takenAt.toISOString(), workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : undefined }));
      const described = { scheduleId: id, paused: d.state.paused, note: d.state.note, spec: d.spec, policies: d.policies, nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()), recentActions: recent };
      out.result(described, () =>
        [
          `${id}: ${d.state.paused ? 'paused' : 'active'}${d.state.note ? ` (${d.state.note})` : ''}`,
          `  when      ${describeWhen(d.spec)}${d.spec.jitter ? `, jitter ${Number(d.spec.jitter) / 1000} s` : ''}`,
          `  overlap   ${d.policies.overlap}, catch-up window ${Number(d.policies.catchupWindow) / 1000} s`,
          `  next      ${described.nextActionTimes.slice(0, 3).join(', ') || '-'}`,
          ...recent.map((a) => `  ran       ${a.takenAt} ${a.workflowId ?? ''}`),
        ].join('\n'),
      );
      return 0;
    }
    case 'pause':
    case 'unpause':
      await (sub === 'pause' ? pauseRetrainSchedule : unpauseRetrainSchedule)(client, id);
      out.result({ scheduleId: id, paused: sub === 'pause' }, () => `Schedule ${id} ${sub}d`);
      return 0;
    case 'trigger':
      await triggerRetrainSchedule(client, id);
      out.result({ scheduleId: id, triggered: true }, () => `Schedule ${id} triggered`);
      return 0;
    case 'delete':
      await deleteRetrainSchedule(client, id);
      out.result({ scheduleId: id, deleted: true }, () => `Schedule ${id} deleted`);
      return 0;
    default:
      throw new UsageError(`unknown schedule command "${sub ?? ''}"`);
  }
}

function renderPromotion(workflowId: string, execution: string, s: PromotionStatus): string {
  const rate = (r?: { passed: number; total: number }) => (r ? `${r.passed}/${r.total}` : '-');
  const lines = [
    `${workflowId}: ${execution}, ${s.phase}: ${s.alias} on endpoint ${s.endpoint}${s.versionName ? `, candidate ${s.versionName}` : ''}${s.previousVersion ? `, previous ${s.previousVersion}` : ''}`,
  ];
  if (s.scores) lines.push(`  scores: candidate ${rate(s.scores.candidate)}, production ${rate(s.scores.production)}${s.scores.evalLoss !== undefined ? `, eval loss ${s.scores.evalLoss}` : ''}`);
  if (s.gate) lines.push(`  gate: ${s.gate.promote ? 'passed' : 'failed'}: ${s.gate.reasons.join('; ')}`);
  for (const d of s.decisions) lines.push(`  ${d.at} ${d.decision}${d.by ? ` by ${d.by}` : ''}${d.reason ? `: ${d.reason}` : ''}`);
  if (s.watch) lines.push(`  watch: ${s.watch.reasons.join('; ')}`);
  if (s.error) lines.push(`  error: ${s.error}`);
  return lines.join('\n');
}

async function followPromotion(client: Client, id: string, out: Output): Promise<number> {
  let previous = '';
  for (;;) {
    const { workflowId, execution, status } = await getPromotionStatus(client, id);
    const text = renderPromotion(workflowId, execution, status);
    if (text !== previous) out.line({ workflowId, execution, status }, (previous = text));
    if (execution !== 'RUNNING') return execution === 'COMPLETED' ? 0 : 1;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function endpointCommand(client: Client, taskQueue: string, [sub, name, arg]: string[], values: Record<string, string | boolean | undefined>, out: Output): Promise<number> {
  if (!name) throw new UsageError('an endpoint name is required');
  const str = (key: string) => values[key] as string | undefined;
  const int = (key: string) => (str(key) === undefined ? undefined : Number(str(key)));
  switch (sub) {
    case 'create': {
      const spec = {
        name,
        baseModel: str('model') ?? '',
        vmSize: str('vm-size') ?? '',
        replicas: int('replicas'),
        maxLoras: int('max-loras'),
        maxLoraRank: int('max-lora-rank'),
        idleGraceSeconds: int('idle-grace-seconds'),
        rollbackWindowMinutes: int('rollback-window-minutes'),
      };
      const definedSpec = Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as typeof spec;
      const { handle, created } = await createEndpoint(client, { spec: definedSpec, namespace: str('namespace') ?? '' }, { taskQueue });
      out.result({ endpoint: name, workflowId: handle.workflowId, created }, () => `${created ? 'Created' : 'Exists:'} endpoint ${name} (workflow ${handle.workflowId})`);
      return 0;
    }
    case 'describe': {
      // "Which adapter serves this alias, trained on what, scoring what": the endpoint's state, then each served image's lineage from the registry.
      const described = await describeEndpoint(client, name);
      const credential = createAzureCredential(process.env.AZURE_STATIC_TOKEN || undefined);
      const lineage = Object.fromEntries(
        await Promise.all(
          described.aliases.map(async (a) => {
            if (!a.image) return [a.alias, []];
            const read = await readAdapterLineage(a.image, credential).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
            return [a.alias, read instanceof Error ? [`lineage not readable: ${read.message}`] : lineageSummary(read.annotations, read.evaluations, { endpoint: name, versionName: a.versionName })];
          }),
        ),
      ) as Record<string, string[]>;
      out.result({ ...described, lineage }, () => renderEndpoint(described, lineage));
      return 0;
    }
    case 'scale': {
      if (!arg) throw new UsageError('a replica count, zero or wake is required');
      await scaleEndpoint(client, name, arg === 'zero' || arg === 'wake' ? arg : Number(arg));
      const described = await describeEndpoint(client, name);
      out.result(described, () => renderEndpoint(described));
      return 0;
    }
    case 'rollback': {
      if (!arg) throw new UsageError('an alias is required');
      const { versionName } = await rollbackEndpointAlias(client, name, arg);
      out.result({ endpoint: name, alias: arg, versionName }, () => `${arg} → ${versionName} on ${name}`);
      return 0;
    }
    case 'unload':
      if (!arg) throw new UsageError('a version name is required');
      await unloadEndpointVersion(client, name, arg);
      out.result({ endpoint: name, version: arg, unloaded: true }, () => `${arg} unloaded from ${name}`);
      return 0;
    case 'retire':
      await retireEndpoint(client, name);
      out.result({ endpoint: name, retired: true }, () => `Endpoint ${name} retired: its Deployment, Service, ConfigMap and pool are gone`);
      return 0;
    default:
      throw new UsageError(`unknown endpoint command "${sub ?? ''}"`);
  }
}

/** What plan prints for people: the plan, the GPU attempts with their prices and quota, the estimate. */
function planText({ plan, nodePool, kubernetesObjects, estimate }: ReturnType<typeof planFineTune>, quota: Awaited<ReturnType<typeof readAttemptQuota>> | undefined): string {
  const lines = [
    `Plan for ${plan.model.name} (${plan.method}), run ${plan.runName}: valid`,
    `  node pool  ${nodePool.action} ${nodePool.name}: 1 x ${nodePool.vmSize}${nodePool.spot ? ' (spot)' : ''}, ${nodePool.gpusPerNode} GPU(s)`,
    `  memory     about ${plan.memoryNeededGiB} GiB per GPU needed, ${plan.vmSize.gpu?.memoryGiB} GiB available`,
  ];
  if (!plan.existingPool) {
    lines.push(`  capacity   ${plan.gpuAttempts.length} attempt(s) in this order, for up to ${plan.capacityWaitMinutes} min:`);
    plan.gpuAttempts.forEach((a, i) => {
      const price = estimateCost(plan.prices, a.vmSize, a.spot, 1, 60);
      lines.push(
        `    ${i + 1}. ${a.vmSize}${a.spot ? ' Spot' : ''}${a.zone ? ` zone ${a.zone}` : ''}${a.cluster ? ` in cluster ${a.cluster}` : ''}${a.afterMinutes ? ` after ${a.afterMinutes} min` : ''} ` +
          `(${a.source}${price !== undefined ? `, ${price} ${plan.prices.currency}/h` : ''})${attemptQuotaText(a, quota)}`,
      );
    });
    const quotaLines = [...(quota ?? new Map()).entries()].map(
      ([cluster, q]) => `${cluster ? `${cluster}, ` : ''}${q.unreadable ?? `${q.location}: ${quotaSummary(plan.gpuAttempts.filter((a) => a.cluster === cluster), q.usages).join('; ')}`}`,
    );
    lines.push(`  quota      ${quota ? quotaLines.join('\n             ') : 'not read (plan --quota reads it from ARM: GETs only)'}`);
  }
  const { trainer } = plan;
  lines.push(
    `  objects    ${kubernetesObjects.join(', ')}`,
    plan.output.kind === 'image'
      ? `  adapter    ${adapterImageOf(plan.output)}, pushed with ${plan.pushSecret ? `the docker-config Secret ${plan.namespace}/${plan.pushSecret} (checked before GPUs are asked for)` : "the pusher's workload identity (AcrPush)"}`
      : `  adapter    files copied to the root of ${adapterDestination(plan.output, plan.namespace)} (checked before GPUs are asked for; never deleted)`,
    `  parameters ${plan.configMap ? `ConfigMap ${plan.namespace}/${plan.configMap}, read and checked when the run starts (inline tuning fields win over it)` : "KAITO's " + plan.method + ' template, with the inline tuning fields'}`,
    `  estimate   ${estimate.gpuHours} GPU-hours for ${estimate.trainingHours} h of training, about ${estimate.cost?.toFixed(2) ?? '?'} ${estimate.currency} (prices as of ${estimate.pricesAsOf})`,
    trainer.checkpoint
      ? `  trainer    aks-finetune: progress in status, a checkpoint every ${trainer.checkpoint.everyMinutes} min (last ${trainer.checkpoint.kept} kept), resumes after a lost node`
      : "  trainer    kaito: KAITO's fine_tuning.py unchanged; progress from its log, no checkpoints: a lost node restarts training from step 0",
    `  divergence ${trainer.stopOnDivergence ? 'a NaN, infinite or exploding loss fails the run and releases the GPUs' : 'reported, training goes on (tuning.stopOnDivergence false)'}`,
    `  release    ${plan.deploy ? 'kept for inference' : `${plan.release.policy} after ${plan.release.idleGraceMinutes} min`}`,
  );
  if (plan.budget) {
    lines.push(`  budget     ${[plan.budget.maxGpuHours && `${plan.budget.maxGpuHours} GPU-hours`, plan.budget.maxCost && `${plan.budget.maxCost} ${estimate.currency}`].filter(Boolean).join(', ')}: training stops when spent`);
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const helpAsked = command === 'help' || command === '--help' || command === '-h' || rest.includes('--help') || rest.includes('-h');
  if (helpAsked) {
    console.log(helpFor(command === 'help' ? rest[0] : command?.startsWith('-') ? undefined : command));
    return 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      id: { type: 'string' },
      follow: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      output: { type: 'string', default: 'text' },
      quota: { type: 'boolean', default: false },
      model: { type: 'string' },
      method: { type: 'string' },
      phase: { type: 'string' },
      repository: { type: 'string' },
      limit: { type: 'string', default: '20' },
      hours: { type: 'string', default: '1' },
      cron: { type: 'string' },
      every: { type: 'string' },
      timezone: { type: 'string' },
      overlap: { type: 'string' },
      'catchup-window': { type: 'string' },
      jitter: { type: 'string' },
      'vm-size': { type: 'string' },
      image: { type: 'string' },
      'push-secret': { type: 'string' },
      'output-volume': { type: 'string' },
      namespace: { type: 'string' },
      replicas: { type: 'string' },
      'max-loras': { type: 'string' },
      'max-lora-rank': { type: 'string' },
      'idle-grace-seconds': { type: 'string' },
      'rollback-window-minutes': { type: 'string' },
      by: { type: 'string' },
      reason: { type: 'string' },
    },
  });
  if (values.output !== 'text' && values.output !== 'json') throw new UsageError(`--output must be text or json, not "${values.output}"`);
  const out = new Output(values.json || values.output === 'json');
  if (command === 'plan') {
    const configMap = positionals[0] ? checkTuningConfigMapFile(positionals[0]) : undefined;
    if (configMap) {
      if (configMap.problems.length > 0) throw new FineTuneRequestError(configMap.problems);
      out.result(
        { configMap: configMap.name, valid: true },
        () => `ConfigMap ${configMap.name}: valid tuning parameters; apply it in the run's namespace and name it in a Workspace's tuning.config (or a request's tuning.configMap)`,
      );
      return 0;
    }
    const dryRun = planFineTune(readRequest(positionals[0], values), { workflowId: values.id, trainingHours: Number(values.hours) });
    const quota = values.quota && !dryRun.plan.existingPool ? await readAttemptQuota(dryRun.plan.gpuAttempts) : undefined;
    out.result({ ...dryRun, ...(quota ? { quota: Object.fromEntries([...quota].map(([cluster, q]) => [cluster ?? 'home', q])) } : {}) }, () => planText(dryRun, quota));
    return 0;
  }
  if (command === 'doctor') {
    const list = (value: string | undefined) => value?.split(',').map((v) => v.trim()).filter(Boolean);
    const checks = await runDoctor({ namespaces: list(values.namespace), vmSizes: list(values['vm-size']) });
    out.result(checks, () =>
      checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}${c.ok || !c.fix ? '' : `\n    fix: ${c.fix}`}`).concat(checks.every((c) => c.ok) ? 'Ready for runs.' : `${checks.filter((c) => !c.ok).length} of ${checks.length} checks failed.`).join('\n'),
    );
    return checks.every((c) => c.ok) ? 0 : 1;
  }
  if (command === 'lineage') {
    if (!positionals[0]) throw new UsageError('an adapter image by digest is required (registry/repository@sha256:...)');
    const artifacts = await readEvaluationLineage(positionals[0], createAzureCredential(process.env.AZURE_STATIC_TOKEN || undefined));
    out.result(artifacts, () => (artifacts.length === 0 ? `No evaluation recorded for ${positionals[0]}` : artifacts.map((a) => `${a.digest}\n${JSON.stringify(a.evaluation, null, 2)}`).join('\n')));
    return 0;
  }
  if (!['start', 'status', 'list', 'cancel', 'schedule', 'endpoint', 'promote', 'promotion', 'approve', 'reject'].includes(command ?? '')) throw new UsageError(command ? `unknown command "${command}"` : 'a command is required');

  const temporal = loadTemporalSettings();
  const client = await connectClient(temporal);
  try {
    switch (command) {
      case 'start': {
        const handle = await startFineTune(client, readRequest(positionals[0], values), { workflowId: values.id, taskQueue: temporal.taskQueue });
        // Followed as JSON: only the status lines, so that every line of stdout parses.
        if (!(values.follow && out.json)) out.result({ workflowId: handle.workflowId }, () => `Started ${handle.workflowId}`);
        return values.follow ? await follow(client, handle.workflowId, out) : 0;
      }
      case 'status': {
        if (!positionals[0]) throw new UsageError('a workflow id is required');
        if (values.follow) return await follow(client, positionals[0], out);
        const status = await getFineTuneStatus(client, positionals[0]);
        out.result(status, () => render(status, { chart: true }));
        return 0;
      }
      case 'schedule':
        return await scheduleCommand(client, temporal.taskQueue, positionals, values, out);
      case 'endpoint':
        return await endpointCommand(client, temporal.taskQueue, positionals, values, out);
      case 'promote': {
        const workflowId = await startPromotion(client, readRequest(positionals[0]) as unknown as PromotionRequest, { name: values.id, taskQueue: temporal.taskQueue });
        if (!(values.follow && out.json)) out.result({ workflowId }, () => `Started ${workflowId}`);
        return values.follow ? await followPromotion(client, workflowId, out) : 0;
      }
      case 'promotion': {
        if (!positionals[0]) throw new UsageError('a promotion id is required');
        if (values.follow) return await followPromotion(client, positionals[0], out);
        const { workflowId, execution, status } = await getPromotionStatus(client, positionals[0]);
        out.result({ workflowId, execution, status }, () => renderPromotion(workflowId, execution, status));
        return 0;
      }
      case 'approve':
      case 'reject': {
        if (!positionals[0]) throw new UsageError('a promotion id (or the fineTune run id that started it) is required');
        const workflowId = await decidePromotion(client, positionals[0], command === 'approve', { by: values.by, reason: values.reason });
        out.result({ workflowId, decision: command === 'approve' ? 'approved' : 'rejected' }, () => `${command === 'approve' ? 'Approved' : 'Rejected'} ${workflowId}`);
        return 0;
      }
      case 'list': {
        const runs = await listFineTunes(client, values, Number(values.limit));
        out.result(runs, () =>
          [
            `${'WORKFLOW ID'.padEnd(48)} ${'STATUS'.padEnd(10)} ${'PHASE'.padEnd(14)} ${'MODEL'.padEnd(28)} METHOD  STARTED`,
            ...runs.map((r) => `${r.workflowId.padEnd(48)} ${r.execution.padEnd(10)} ${(r.phase ?? '-').padEnd(14)} ${(r.model ?? '-').padEnd(28)} ${(r.method ?? '-').padEnd(7)} ${r.startTime.toISOString()}`),
          ].join('\n'),
        );
        return 0;
      }
      default: {
        if (!positionals[0]) throw new UsageError('a workflow id is required');
        await cancelFineTune(client, positionals[0]);
        out.result({ workflowId: positionals[0], cancelRequested: true }, () => `Cancellation requested for ${positionals[0]}: the run removes what it created, then ends`);
        return 0;
      }
    }
  } finally {
    await client.connection.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) console.error(`${err.message}\n\n${usage}`);
    else if (err instanceof FineTuneRequestError || err instanceof PromotionRequestError) console.error(err.message);
    else console.error(err instanceof Error ? err.message : err);
    process.exit(err instanceof UsageError || err instanceof FineTuneRequestError || err instanceof PromotionRequestError ? 2 : 1);
  },
);
