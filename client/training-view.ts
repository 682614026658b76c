// How the CLI shows a run's training: a progress bar with step/total, ETA and the latest loss,
// what resuming saved, and the loss curve as a small terminal chart.
import type { LossPoint } from '../domain/training-progress.js';
import type { TrainingStatus } from '../workflows/training-watch.js';

const bar = (fraction: number, width: number) => {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
};

const number = (n: number) => (Math.abs(n) >= 0.01 || n === 0 ? String(Number(n.toPrecision(4))) : n.toExponential(2));

/** "in 1h 05m", "in 42s": how far `eta` is from `now`. */
export function timeLeft(eta: string, now: number): string {
  const seconds = Math.max(0, Math.round((Date.parse(eta) - now) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes}m` : `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** The lines under a run's steps while (and after) it trains. */
export function trainingLines(t: TrainingStatus, now = Date.now()): string[] {
  const lines: string[] = [];
  const job = `${t.state}, pod ${t.podPhase ?? '-'}, attempts ${t.attempts}, restarts ${t.restarts}`;
  if (t.step !== undefined && t.totalSteps) {
    const eta = t.eta && t.state !== 'succeeded' ? `, ETA ${timeLeft(t.eta, now)}` : '';
    const loss = t.loss !== undefined ? `, loss ${number(t.loss)}` : '';
    const evalLoss = t.evalLoss !== undefined ? `, eval ${number(t.evalLoss)}` : '';
    const pace = t.samplesPerSecond !== undefined ? `, ${number(t.samplesPerSecond)} samples/s` : '';
    lines.push(`  train ${bar(t.step / t.totalSteps, 24)} ${t.step}/${t.totalSteps} steps (${t.percent ?? 0}%)${eta}${loss}${evalLoss}${pace}`);
    lines.push(`  trainer: ${t.trainer}, ${job}${t.epoch !== undefined ? `, epoch ${number(t.epoch)}` : ''}${t.checkpointStep !== undefined ? `, checkpoint at step ${t.checkpointStep}` : ''}`);
  } else {
    lines.push(`  trainer: ${t.trainer}, ${job}${t.reports === 0 && t.state === 'running' ? ', no progress reported yet' : ''}`);
  }
  for (const start of t.starts.filter((s) => s.resumedFromStep > 0)) {
    lines.push(`  resumed: ${start.job} from step ${start.resumedFromStep}${start.checkpoint ? ` (${start.checkpoint})` : ''}, ${start.gpuMinutesSaved} GPU-minutes not paid twice`);
  }
  if (t.skippedCheckpoints.length > 0) lines.push(`  skipped half-written checkpoints: ${t.skippedCheckpoints.join(', ')}`);
  if (t.logUnreadable) lines.push(`  progress unknown: ${t.logUnreadable}`);
  return lines;
}

/**
 * The loss curve as rows of text: `height` rows, one column per point (evenly sampled to `width`),
 * the highest loss on top; the axis shows the range and the first and last step.
 */
export function lossChart(history: LossPoint[], width = 48, height = 6): string[] {
  if (history.length < 2) return [];
  const points = history.length <= width ? history : Array.from({ length: width }, (_, i) => history[Math.round((i * (history.length - 1)) / (width - 1))]!);
  const losses = points.map(([, loss]) => loss);
  const top = Math.max(...losses);
  const bottom = Math.min(...losses);
  const span = top - bottom || 1;
  const rowOf = (loss: number) => Math.round(((top - loss) / span) * (height - 1));
  const rows = Array.from({ length: height }, (_, row) => points.map(([, loss]) => (rowOf(loss) === row ? '•' : ' ')).join(''));
  const label = (row: number) => (row === 0 ? number(top) : row === height - 1 ? number(bottom) : '').padStart(8);
  return [
    '  loss',
    ...rows.map((r, row) => `  ${label(row)} │${r}`),
    `  ${' '.repeat(8)} └${'─'.repeat(points.length)}`,
    `  ${' '.repeat(9)} step ${points[0]![0]}${' '.repeat(Math.max(1, points.length - 10 - String(points[0]![0]).length - String(points.at(-1)![0]).length))}step ${points.at(-1)![0]}`,
  ];
}
