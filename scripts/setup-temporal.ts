// `npm run setup:temporal`: prepares a Temporal namespace for the worker. Idempotent.
//  - registers the project's search attributes (self-hosted servers; on Temporal Cloud add them
//    in the namespace settings instead; the local stack's dev server gets them at start-up);
//  - creates or updates the Schedule that runs the idle-GPU reaper (REAPER_INTERVAL_SECONDS,
//    default 60; REAPER_GRACE_MINUTES, default 5).
import { Client, Connection, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import proto from '@temporalio/proto';
import { loadTemporalSettings } from '../client/temporal-connection.js';
import { reaperScheduleId } from '../workflows/ids.js';
import { projectSearchAttributes } from '../workflows/search-attributes.js';

export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<{ added: string[]; present: string[] }> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const present = projectSearchAttributes.filter((key) => customAttributes?.[key.name] !== undefined).map((k) => k.name);
  const missing = projectSearchAttributes.filter((key) => !present.includes(key.name));
  if (missing.length > 0) {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((key) => [key.name, proto.temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}`]])),
    });
  }
  return { added: missing.map((k) => k.name), present };
}

/** Creates the reaper's Schedule, or brings an existing one to these settings (scheduleId: tests use their own). */
export async function ensureReaperSchedule(
  client: Client,
  options: { taskQueue: string; intervalSeconds: number; graceMinutes: number; scheduleId?: string },
): Promise<'created' | 'updated'> {
  const scheduleId = options.scheduleId ?? reaperScheduleId;
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'reapIdleGpuPools',
    workflowId: scheduleId, // each run: the Schedule's id and its scheduled time
    taskQueue: options.taskQueue,
    args: [{ defaultGraceMinutes: options.graceMinutes }],
    workflowRunTimeout: '10 minutes',
  };
  const spec = { intervals: [{ every: `${options.intervalSeconds} seconds` }] };
  // SKIP: a slow reaper run is never overlapped by the next one.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
    return 'updated';
  }
}

function numberFromEnv(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${process.env[name]} must be a positive number`);
  return value;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const settings = loadTemporalSettings();
  const { address } = settings.connection;
  const { namespace } = settings;
  const connection = await Connection.connect(settings.connection);
  try {
    const { added, present } = await registerSearchAttributes(connection, namespace);
    console.log(`Search attributes on ${address} (${namespace}): added [${added.join(', ')}], already present [${present.join(', ')}]`);
    const schedule = await ensureReaperSchedule(new Client({ connection, namespace }), {
      taskQueue: settings.taskQueue,
      intervalSeconds: numberFromEnv('REAPER_INTERVAL_SECONDS', 60),
      graceMinutes: numberFromEnv('REAPER_GRACE_MINUTES', 5),
    });
    console.log(`Schedule ${reaperScheduleId}: ${schedule}`);
  } finally {
    await connection.close();
  }
}
