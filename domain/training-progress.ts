// What trainers report while they train, read from their log, and what a run makes of it: the
// latest numbers, a bounded loss curve, the ETA, and whether the loss diverged.
//
// Two sources, one shape (TrainerReport):
// - the product's trainer entrypoint (trainer/aks_finetune_trainer.py) prints one line per event,
//   `aks-finetune-progress {json}`, non-finite numbers as the strings "NaN", "Infinity", "-Infinity"
//   (JSON has no NaN); the gpu-simulator prints the same lines (formatProgressLine);
// - KAITO's own fine_tuning.py (tuning.trainer: kaito) prints what transformers' ProgressCallback
//   writes: tqdm bars ("N/M [") and str(logs) dicts ({'loss': '1.23', ...}, floats as text since
//   transformers 5, as floats before).
// Lines that are neither are ignored, so garbage never breaks the watch.

export const progressPrefix = 'aks-finetune-progress ';

export interface TrainerReport {
  event: 'start' | 'log' | 'eval' | 'checkpoint' | 'checkpoint-skipped' | 'done';
  step?: number;
  totalSteps?: number;
  epoch?: number;
  loss?: number;
  learningRate?: number;
  gradNorm?: number;
  samplesPerSecond?: number;
  stepsPerSecond?: number;
  evalLoss?: number;
  trainLoss?: number;
  /** start: the checkpoint step this attempt resumed from (null: from step 0). */
  resumedFromStep?: number | null;
  /** checkpoint, checkpoint-skipped, start: the checkpoint's folder name. */
  checkpoint?: string | null;
  reason?: string;
}

const events = new Set<TrainerReport['event']>(['start', 'log', 'eval', 'checkpoint', 'checkpoint-skipped', 'done']);
const numericFields = ['step', 'totalSteps', 'epoch', 'loss', 'learningRate', 'gradNorm', 'samplesPerSecond', 'stepsPerSecond', 'evalLoss', 'trainLoss'] as const;
const nonFinite: Record<string, number> = { NaN: Number.NaN, nan: Number.NaN, Infinity: Infinity, inf: Infinity, '-Infinity': -Infinity, '-inf': -Infinity };

function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return value in nonFinite ? nonFinite[value] : Number.isNaN(Number(value)) || value.trim() === '' ? undefined : Number(value);
  return undefined;
}

/** One line of the product's progress format, or undefined for any other line. */
export function parseProgressLine(line: string): TrainerReport | undefined {
  const start = line.indexOf(progressPrefix);
  if (start < 0) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(line.slice(start + progressPrefix.length));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const record = raw as Record<string, unknown>;
  if (!events.has(record.event as TrainerReport['event'])) return undefined;
  const report: TrainerReport = { event: record.event as TrainerReport['event'] };
  for (const field of numericFields) {
    const value = asNumber(record[field]);
    if (value !== undefined) report[field] = value;
  }
  if (record.resumedFromStep === null || typeof record.resumedFromStep === 'number') report.resumedFromStep = record.resumedFromStep;
  if (record.checkpoint === null || typeof record.checkpoint === 'string') report.checkpoint = record.checkpoint;
  if (typeof record.reason === 'string') report.reason = record.reason.slice(0, 200);
  return report;
}

/** The line the product's trainer prints for `report` (the gpu-simulator prints it too). */
export function formatProgressLine(report: TrainerReport): string {
  const encode = (_key: string, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value);
  return `${progressPrefix}${JSON.stringify(report, encode)}`;
}

/** transformers' logs dict as ProgressCallback prints it: {'key': value, ...}, values quoted or not. */
function kaitoLogsDict(line: string): Record<string, number> | undefined {
  const body = /\{('[a-z_]+':\s*'?[^,}]*'?(?:,\s*'[a-z_]+':\s*'?[^,}]*'?)*)\}/.exec(line)?.[1];
  if (!body) return undefined;
  const values: Record<string, number> = {};
  for (const [, key, value] of body.matchAll(/'([a-z_]+)':\s*'?([^,'}]*)'?/g)) {
    const n = asNumber(value!.trim());
    if (n !== undefined) values[key!] = n;
  }
  return values;
}

/** One line KAITO's fine_tuning.py prints (through transformers), or undefined. */
export function parseKaitoLogLine(line: string): TrainerReport | undefined {
  const dict = kaitoLogsDict(line);
  if (dict?.loss !== undefined) return { event: 'log', loss: dict.loss, learningRate: dict.learning_rate, gradNorm: dict.grad_norm, epoch: dict.epoch };
  if (dict?.eval_loss !== undefined) return { event: 'eval', evalLoss: dict.eval_loss, epoch: dict.epoch };
  if (dict?.train_loss !== undefined) return { event: 'done', trainLoss: dict.train_loss };
  // tqdm redraws its bar with \r: the last one on the line is the newest.
  const bar = [...line.matchAll(/\b(\d+)\/(\d+)\s*\[[^\]]*?(?:([0-9.]+)it\/s|([0-9.]+)s\/it)?\]/g)].at(-1);
  if (!bar) return undefined;
  const stepsPerSecond = bar[3] ? Number(bar[3]) : bar[4] ? 1 / Number(bar[4]) : undefined;
  return { event: 'log', step: Number(bar[1]), totalSteps: Number(bar[2]), ...(stepsPerSecond ? { stepsPerSecond } : {}) };
}

export const trainerKinds = ['aks-finetune', 'kaito'] as const;
export type TrainerKind = (typeof trainerKinds)[number];

export const parseTrainerLine = (trainer: TrainerKind, line: string) => (trainer === 'kaito' ? parseKaitoLogLine(line) : parseProgressLine(line));

/** A point of the loss curve: [step, loss]. */
export type LossPoint = [number, number];

/** The most points a run keeps of its loss curve (status, history): a long run thins it out. */
export const maxLossHistory = 60;

/**
 * Adds points to a loss curve kept to at most `max` points: when full, every other older point
 * goes (the first and the newest always stay), so the curve covers the whole run at a coarser
 * step. Points at or before the curve's last step are dropped (a resumed attempt repeats steps).
 */
export function appendLossHistory(history: LossPoint[], points: LossPoint[], max = maxLossHistory): LossPoint[] {
  let curve = [...history];
  for (const point of points) {
    if (!Number.isFinite(point[1]) || (curve.length > 0 && point[0] <= curve.at(-1)![0])) continue;
    curve.push(point);
    if (curve.length > max) curve = curve.filter((_, i) => i === 0 || i === curve.length - 1 || i % 2 === 0);
  }
  return curve;
}

/** At most `max` points of `points`, evenly spread, the last one kept. */
export function samplePoints(points: LossPoint[], max: number): LossPoint[] {
  if (points.length <= max) return points;
  const stride = points.length / max;
  return Array.from({ length: max }, (_, i) => points[Math.min(points.length - 1, Math.floor(points.length - 1 - (max - 1 - i) * stride))]!);
}

/** A loss this many times the first one reported is exploding, not a noisy step. */
export const explodingLossFactor = 10;

/**
 * Why training should stop now, or undefined: a NaN or infinite loss never recovers (every later
 * step is NaN too), and a loss ten times the first one reported means the optimizer diverged.
 */
export function lossDivergence(firstLoss: number | undefined, worst: { step?: number; loss: string } | undefined): string | undefined {
  if (!worst) return undefined;
  const loss = Number(worst.loss);
  const at = worst.step === undefined ? '' : ` at step ${worst.step}`;
  if (!Number.isFinite(loss)) return `the training loss is ${loss}${at}`;
  if (firstLoss !== undefined && firstLoss > 0 && loss > explodingLossFactor * firstLoss) {
    return `the training loss exploded to ${loss}${at} (${explodingLossFactor}x its first value, ${firstLoss})`;
  }
  return undefined;
}

/** When training should end at the current pace: `reportedAt` plus the steps left at `stepsPerSecond`. */
export function trainingEta(reportedAt: string, step: number | undefined, totalSteps: number | undefined, stepsPerSecond: number | undefined): string | undefined {
  if (step === undefined || !totalSteps || !stepsPerSecond || stepsPerSecond <= 0) return undefined;
  return new Date(Date.parse(reportedAt) + (Math.max(0, totalSteps - step) / stepsPerSecond) * 1000).toISOString();
}

/** Whole percent of the planned steps done (0 to 100), or undefined before the total is known. */
export const trainingPercent = (step: number | undefined, totalSteps: number | undefined) =>
  step === undefined || !totalSteps ? undefined : Math.min(100, Math.floor((100 * step) / totalSteps));

/** A line of a container log read with timestamps=true: the kubelet's RFC 3339 time, then the line. */
export interface LogLine {
  at: string;
  text: string;
}

/** Where the last read of a trainer pod's log ended: the time of its last line and how many lines had exactly that time. */
export interface LogCursor {
  pod: string;
  at: string;
  seen: number;
  /** The last read hit its byte limit (a huge line): the next one starts after this second, or the same huge line would fill it again. */
  pastSecond?: boolean;
}

/**
 * The sinceSeconds of the next read from `cursor` at `nowMs`: whole seconds back to the cursor's
 * line and a minute more for clocks that disagree (lines read twice are dropped), or, after a
 * read cut at its byte limit, back to the second after the cursor's only. Undefined: read from
 * the start; 0: nothing to read yet (that second has not passed).
 */
export function logSinceSeconds(cursor: LogCursor | undefined, nowMs: number, skewMarginSeconds = 60): number | undefined {
  if (!cursor) return undefined;
  const atMs = Date.parse(cursor.at);
  if (!cursor.pastSecond) return Math.max(1, Math.ceil((nowMs - atMs) / 1000) + skewMarginSeconds);
  return Math.max(0, Math.floor((nowMs - (Math.floor(atMs / 1000) * 1000 + 1000)) / 1000));
}

/** An RFC 3339 time with its fraction padded to nanoseconds: such keys sort as the times do. */
const timeKey = (at: string) => {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(at);
  return m ? `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}` : at;
};

/**
 * The complete lines of a log read (timestamps=true) that come after `cursor`, and the cursor
 * after them. The kubelet's since-filter is whole seconds and inclusive, so a read repeats lines:
 * those at or before the cursor are dropped. A last line without its newline is left for the next
 * read, unless the read was cut at its byte limit: then that fragment is taken (as garbage), so
 * one huge line cannot stall the reader.
 */
export function newLogLines(log: string, pod: string, cursor: LogCursor | undefined, truncated: boolean): { lines: LogLine[]; cursor: LogCursor | undefined } {
  const from = cursor?.pod === pod ? cursor : undefined;
  const raw = log.split('\n');
  const complete = truncated ? raw.filter((l) => l !== '') : raw.slice(0, -1);
  const lines: LogLine[] = [];
  let next = from;
  let seenAtFrom = 0;
  for (const entry of complete) {
    const space = entry.indexOf(' ');
    const at = space > 0 ? entry.slice(0, space) : '';
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(at)) continue;
    if (from) {
      const order = timeKey(at).localeCompare(timeKey(from.at));
      if (order < 0) continue;
      if (order === 0 && ++seenAtFrom <= from.seen) continue;
    }
    lines.push({ at, text: entry.slice(space + 1) });
    next = next && next.pod === pod && next.at === at ? { pod, at, seen: next.seen + 1 } : { pod, at, seen: 1 };
  }
  return { lines, cursor: next && truncated ? { ...next, pastSecond: true } : next && { pod: next.pod, at: next.at, seen: next.seen } };
}

/** What one check learned from the trainer's new log lines: bounded, whatever the log holds. */
export interface TrainingReadout {
  /** The newest numbers, each field from the latest report that had it, and the time of that report. */
  latest?: Omit<TrainerReport, 'event'> & { at: string };
  /** Each attempt (trainer process) that started since the last check: the step it resumed from. */
  starts: { at: string; resumedFromStep: number; checkpoint?: string }[];
  /** The newest checkpoint the trainer completed. */
  checkpointStep?: number;
  /** Checkpoints the trainer found half-written and skipped. */
  skippedCheckpoints: string[];
  /** Some of the new loss points, evenly spread. */
  lossPoints: LossPoint[];
  /**
   * The first training loss of these lines, and their worst (NaN and infinity are worst), as text:
   * it crosses a JSON payload, where NaN would become null.
   */
  firstLoss?: number;
  worst?: { step?: number; loss: string };
  /** How many progress reports these lines held. */
  reports: number;
  trainLoss?: number;
}

const worse = (a: number, b: number) => Number.isNaN(a) || a > b;
const readoutFields = ['step', 'totalSteps', 'epoch', 'loss', 'learningRate', 'gradNorm', 'samplesPerSecond', 'stepsPerSecond', 'evalLoss'] as const;

/** Reads a trainer's log lines into what the run shows; `lastStep` numbers a KAITO loss line that follows no tqdm bar in these lines. */
export function readTrainerLines(trainer: TrainerKind, lines: LogLine[], lastStep?: number, maxPoints = 20): TrainingReadout {
  const readout: TrainingReadout = { starts: [], skippedCheckpoints: [], lossPoints: [], reports: 0 };
  const points: LossPoint[] = [];
  let step = lastStep;
  for (const { at, text } of lines) {
    const report = parseTrainerLine(trainer, text);
    if (!report) continue;
    readout.reports += 1;
    if (report.event === 'checkpoint' || report.event === 'checkpoint-skipped') {
      if (report.event === 'checkpoint' && report.step !== undefined) readout.checkpointStep = report.step;
      if (report.event === 'checkpoint-skipped' && report.checkpoint && readout.skippedCheckpoints.length < 10) readout.skippedCheckpoints.push(report.checkpoint);
      continue; // a checkpoint's step is not the training's
    }
    if (report.step !== undefined) step = report.step;
    const latest: NonNullable<TrainingReadout['latest']> = { ...readout.latest, at };
    for (const field of readoutFields) if (report[field] !== undefined) latest[field] = report[field];
    if (step !== undefined) latest.step = step;
    readout.latest = latest;
    if (report.event === 'start') readout.starts.push({ at, resumedFromStep: report.resumedFromStep ?? 0, ...(report.checkpoint ? { checkpoint: report.checkpoint } : {}) });
    if (report.event === 'done' && report.trainLoss !== undefined) readout.trainLoss = report.trainLoss;
    if (report.event !== 'log' || report.loss === undefined) continue;
    readout.firstLoss ??= report.loss;
    if (!readout.worst || worse(report.loss, Number(readout.worst.loss))) readout.worst = { step, loss: String(report.loss) };
    if (step !== undefined) points.push([step, report.loss]);
  }
  readout.lossPoints = samplePoints(points, maxPoints);
  // A status is JSON: NaN would become null. The worst loss keeps it, as text, for the divergence check.
  if (readout.latest?.loss !== undefined && !Number.isFinite(readout.latest.loss)) delete readout.latest.loss;
  return readout;
}

/**
 * How long a training watch waits between checks: the plan's poll interval at first, then a
 * hundredth of the time trained so far, up to `maxMs`. A run's checks (and its history) grow with
 * the log of its length, and the status is never older than 1 % of the run.
 */
export const trainingCheckIntervalMs = (trainingMs: number, pollMs: number, maxMs: number) => Math.min(Math.max(pollMs, trainingMs / 100), maxMs);
