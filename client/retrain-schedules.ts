// Retraining schedules: Temporal Schedules whose action is the retrain workflow.
import { type Client, type ScheduleDescription, ScheduleOverlapPolicy, type ScheduleSummary } from '@temporalio/client';
import { type FineTuneInput, validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { scheduleIdPattern } from '../domain/workflow-inputs.js';
import { defaultTaskQueue, retrainWorkflowId } from '../workflows/ids.js';
import { retrain } from '../workflows/retrain.js';
import { FineTuneRequestError, withParsedWorkspace } from './fine-tune-client.js';

export interface RetrainScheduleOptions {
  /** Cron expression (e.g. "0 3 * * 1"), or */
  cron?: string;
  /** an interval (e.g. "24h", "30 minutes"). */
  every?: string;
  /** IANA time zone for cron, e.g. Europe/Paris (default UTC). */
  timezone?: string;
  /** What to do when a run is still going at the next time (default skip). */
  overlap?: keyof typeof overlapPolicies;
  /** How far back missed times are caught up after an outage (default 1 minute). */
  catchupWindow?: string;
  /** Random delay added to each time, to spread load (e.g. "5m"). */
  jitter?: string;
  taskQueue?: string;
}

export const overlapPolicies = {
  skip: ScheduleOverlapPolicy.SKIP,
  'buffer-one': ScheduleOverlapPolicy.BUFFER_ONE,
  'buffer-all': ScheduleOverlapPolicy.BUFFER_ALL,
  'cancel-other': ScheduleOverlapPolicy.CANCEL_OTHER,
  'terminate-other': ScheduleOverlapPolicy.TERMINATE_OTHER,
  'allow-all': ScheduleOverlapPolicy.ALLOW_ALL,
} as const;

function scheduleParts(id: string, input: FineTuneInput, o: RetrainScheduleOptions) {
  const request = withParsedWorkspace(input);
  const problems: string[] = [];
  if (!scheduleIdPattern.test(id)) problems.push(`schedule id "${id}" must be 1-40 lowercase letters, digits and '-'`);
  if (!o.cron === !o.every) problems.push('give exactly one of cron and every');
  if (o.overlap && !(o.overlap in overlapPolicies)) problems.push(`overlap must be one of ${Object.keys(overlapPolicies).join(', ')}`);
  const validation = validateFineTuneRequest(request, retrainWorkflowId(id));
  if (!validation.ok) problems.push(...validation.problems);
  if (problems.length) throw new FineTuneRequestError(problems);
  return {
    spec: {
      ...(o.cron ? { cronExpressions: [o.cron] } : { intervals: [{ every: o.every! }] }),
      timezone: o.timezone,
      jitter: o.jitter,
    },
    action: {
      type: 'startWorkflow' as const,
      workflowType: retrain,
      workflowId: retrainWorkflowId(id),
      taskQueue: o.taskQueue ?? defaultTaskQueue,
      args: [{ schedule: id, request }] as [{ schedule: string; request: FineTuneInput }],
    },
    policies: { overlap: overlapPolicies[o.overlap ?? 'skip'], catchupWindow: o.catchupWindow ?? '1 minute' },
  };
}

/** A schedule's times in words: Temporal describes a cron expression as calendar ranges. */
export function describeWhen(spec: ScheduleDescription['spec']): string {
  const ranges = (rs: { start: number | string; end: number | string; step?: number }[]) =>
    rs.map((r) => (r.start === r.end ? String(r.start) : `${r.start}-${r.end}${r.step && r.step > 1 ? `/${r.step}` : ''}`)).join(',') || '*';
  const calendars = (spec.calendars ?? []).map(
    (c) => `minute ${ranges(c.minute)} hour ${ranges(c.hour)} day ${ranges(c.dayOfMonth)} month ${ranges(c.month)} weekday ${ranges(c.dayOfWeek)}`,
  );
  const intervals = (spec.intervals ?? []).map((i) => `every ${Number(i.every) / 1000} s`);
  return [...calendars, ...intervals].join('; ') + (spec.timezone ? ` (${spec.timezone})` : '');
}

export async function createRetrainSchedule(client: Client, id: string, request: FineTuneInput, options: RetrainScheduleOptions): Promise<void> {
  await client.schedule.create({ scheduleId: id, ...scheduleParts(id, request, options) });
}

export async function updateRetrainSchedule(client: Client, id: string, request: FineTuneInput, options: RetrainScheduleOptions): Promise<void> {
  const parts = scheduleParts(id, request, options);
  await client.schedule.getHandle(id).update((previous) => ({ ...previous, ...parts }));
}

export const describeRetrainSchedule = (client: Client, id: string): Promise<ScheduleDescription> => client.schedule.getHandle(id).describe();

export async function listRetrainSchedules(client: Client): Promise<ScheduleSummary[]> {
  const schedules: ScheduleSummary[] = [];
  for await (const s of client.schedule.list()) if (s.action?.type === 'startWorkflow' && s.action.workflowType === 'retrain') schedules.push(s);
  return schedules;
}

export const pauseRetrainSchedule = (client: Client, id: string, note?: string) => client.schedule.getHandle(id).pause(note);
export const unpauseRetrainSchedule = (client: Client, id: string, note?: string) => client.schedule.getHandle(id).unpause(note);
/** Runs the schedule's action now (the overlap policy still applies). */
export const triggerRetrainSchedule = (client: Client, id: string) => client.schedule.getHandle(id).trigger();
export const deleteRetrainSchedule = (client: Client, id: string) => client.schedule.getHandle(id).delete();
