// The worker's logs and metrics. One Temporal Runtime per process: its logger receives the
// SDK's own logs, the workflow logger's and the activity logger's (each with its run context:
// workflow id, workflow and activity type), and it writes them as JSON lines or, for
// development, in the SDK's readable form. With a metrics address, the Runtime serves
// Temporal's SDK metrics and the product's own (workflows/metrics.ts, workers/arm-metrics.ts)
// on one Prometheus endpoint. docs/operations.md, "Logs and metrics".
import { DefaultLogger, type LogEntry, type LogLevel, type RuntimeOptions } from '@temporalio/worker';

export type LogFormat = 'json' | 'pretty';
export const logFormats: LogFormat[] = ['json', 'pretty'];
export const logLevels: LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

export interface TelemetryConfig {
  logFormat: LogFormat;
  logLevel: LogLevel;
  /** host:port the Prometheus endpoint binds to (GET /metrics); no endpoint when absent. */
  metricsAddress?: string;
}

/** Errors keep their message (JSON.stringify would write {}), bigints their digits. */
function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return typeof value === 'bigint' ? value.toString() : value;
}

/** One log entry as one JSON object: time, level, message, then its context (workflowId, activityType, step, pool...). */
export function jsonLogLine({ level, message, meta, timestampNanos }: LogEntry): string {
  const time = new Date(Number(timestampNanos / 1_000_000n)).toISOString();
  return JSON.stringify({ time, level, message, ...meta }, jsonValue);
}

/** The Runtime's options for this configuration; JSON lines go to `write` (stdout by default). */
export function runtimeOptions(config: TelemetryConfig, write: (line: string) => void = (line) => void process.stdout.write(`${line}\n`)): RuntimeOptions {
  const logger = config.logFormat === 'json' ? new DefaultLogger(config.logLevel, (entry) => write(jsonLogLine(entry))) : new DefaultLogger(config.logLevel);
  return {
    logger,
    telemetryOptions: {
      // The SDK core's own (native) logs go through the same logger, so they are JSON lines too.
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      ...(config.metricsAddress ? { metrics: { prometheus: { bindAddress: config.metricsAddress } } } : {}),
    },
  };
}
