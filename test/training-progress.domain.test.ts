// What trainers report, read from their log: the product's progress lines and KAITO's
// transformers output, the log cursor, the bounded loss curve, divergence, ETA and check pacing.
import { describe, expect, it } from 'vitest';
import {
  appendLossHistory,
  formatProgressLine,
  logSinceSeconds,
  type LossPoint,
  lossDivergence,
  maxLossHistory,
  newLogLines,
  parseKaitoLogLine,
  parseProgressLine,
  readTrainerLines,
  trainingCheckIntervalMs,
  trainingEta,
  trainingPercent,
} from '../domain/training-progress.js';

describe("the product trainer's progress lines", () => {
  it('round-trips a report, non-finite numbers as text (JSON has no NaN)', () => {
    const line = formatProgressLine({ event: 'log', step: 7, totalSteps: 20, loss: Number.NaN, gradNorm: Infinity, learningRate: 1e-4 });
    expect(line).toBe('aks-finetune-progress {"event":"log","step":7,"totalSteps":20,"loss":"NaN","gradNorm":"Infinity","learningRate":0.0001}');
    const report = parseProgressLine(line)!;
    expect(report.loss).toBeNaN();
    expect(report).toMatchObject({ event: 'log', step: 7, totalSteps: 20, gradNorm: Infinity, learningRate: 1e-4 });
  });

  it('reads what Python json.dumps writes for a start, and ignores anything else', () => {
    expect(parseProgressLine('aks-finetune-progress {"event":"start","step":40,"totalSteps":100,"resumedFromStep":40,"checkpoint":"checkpoint-40"}')).toEqual({
      event: 'start',
      step: 40,
      totalSteps: 100,
      resumedFromStep: 40,
      checkpoint: 'checkpoint-40',
    });
    for (const garbage of ['', 'aks-finetune-progress {not json', 'aks-finetune-progress 42', 'aks-finetune-progress {"event":"bogus"}', '\u0000\u00ff', '{"event":"log","step":1}']) {
      expect(parseProgressLine(garbage)).toBeUndefined();
    }
  });
});

describe("KAITO's trainer output (transformers' ProgressCallback)", () => {
  it('reads tqdm bars and logs dicts, floats as text (transformers 5) or not', () => {
    expect(parseKaitoLogLine(' 40%|████      | 4/10 [00:02<00:03,  1.9it/s]')).toEqual({ event: 'log', step: 4, totalSteps: 10, stepsPerSecond: 1.9 });
    expect(parseKaitoLogLine('\r  1%|          | 1/100 [00:05<09:00, 5.45s/it]\r  2%|          | 2/100 [00:10<08:10, 5.01s/it]')).toMatchObject({ step: 2, totalSteps: 100 });
    expect(parseKaitoLogLine("{'loss': '6.244', 'grad_norm': '0.1032', 'learning_rate': '4.688e-05', 'epoch': '0.25'}")).toEqual({
      event: 'log',
      loss: 6.244,
      gradNorm: 0.1032,
      learningRate: 4.688e-5,
      epoch: 0.25,
    });
    expect(parseKaitoLogLine("{'loss': 1.734, 'grad_norm': 0.51, 'learning_rate': 0.0002, 'epoch': 0.4}")?.loss).toBe(1.734);
    expect(parseKaitoLogLine("{'eval_loss': '6.2536', 'eval_runtime': '0.0201', 'epoch': '2'}")).toEqual({ event: 'eval', evalLoss: 6.2536, epoch: 2 });
    expect(parseKaitoLogLine("{'train_runtime': '3.894', 'train_loss': '6.253', 'epoch': '2'}")).toEqual({ event: 'done', trainLoss: 6.253 });
    expect(parseKaitoLogLine("{'loss': 'nan', 'epoch': '1'}")?.loss).toBeNaN();
    expect(parseKaitoLogLine('INFO 12-05 10:00:00 fine_tuning.py:80] Model Loaded')).toBeUndefined();
  });

  it('numbers a loss that follows no bar in the same read with the step read before', () => {
    const lines = ["{'loss': '2.5', 'epoch': '0.1'}"].map((text) => ({ at: '2026-12-06T10:00:00Z', text }));
    expect(readTrainerLines('kaito', lines, 17).lossPoints).toEqual([[17, 2.5]]);
  });
});

describe('the log cursor (reads with timestamps=true, since a whole second)', () => {
  const log = (lines: [string, string][], complete = true) => lines.map(([at, text]) => `${at} ${text}`).join('\n') + (complete ? '\n' : '');

  it('drops the lines a repeated read returns, even several with the same time', () => {
    const first = newLogLines(log([['2026-12-06T10:00:00.5Z', 'a'], ['2026-12-06T10:00:01.25Z', 'b'], ['2026-12-06T10:00:01.25Z', 'c']]), 'p', undefined, false);
    expect(first.lines.map((l) => l.text)).toEqual(['a', 'b', 'c']);
    expect(first.cursor).toEqual({ pod: 'p', at: '2026-12-06T10:00:01.25Z', seen: 2 });
    // The next read starts at the whole second (inclusive): b and c come again, then one more at the same time, then d.
    const again = log([['2026-12-06T10:00:01.25Z', 'b'], ['2026-12-06T10:00:01.25Z', 'c'], ['2026-12-06T10:00:01.25Z', 'c2'], ['2026-12-06T10:00:01.3Z', 'd']]);
    const second = newLogLines(again, 'p', first.cursor, false);
    expect(second.lines.map((l) => l.text)).toEqual(['c2', 'd']);
    expect(second.cursor).toEqual({ pod: 'p', at: '2026-12-06T10:00:01.3Z', seen: 1 });
  });

  it('compares fractions by value, not as text (RFC 3339 drops trailing zeros)', () => {
    const cursor = { pod: 'p', at: '2026-12-06T10:00:01.25Z', seen: 1 };
    expect(newLogLines(log([['2026-12-06T10:00:01.3Z', 'later'], ['2026-12-06T10:00:01.1Z', 'earlier']]), 'p', cursor, false).lines.map((l) => l.text)).toEqual(['later']);
  });

  it('leaves an unfinished last line for the next read, but takes a fragment cut at the byte limit', () => {
    const partial = log([['2026-12-06T10:00:00Z', 'whole'], ['2026-12-06T10:00:01Z', 'half of a li']], false);
    expect(newLogLines(partial, 'p', undefined, false).lines.map((l) => l.text)).toEqual(['whole']);
    expect(newLogLines(partial, 'p', undefined, true).cursor?.at).toBe('2026-12-06T10:00:01Z');
  });

  it('after a read cut at its byte limit, reads from the next second on, so a huge line cannot fill every read', () => {
    const huge = newLogLines('2026-12-06T10:00:05.2Z xxxxxxxx', 'p', undefined, true);
    expect(huge.cursor).toEqual({ pod: 'p', at: '2026-12-06T10:00:05.2Z', seen: 1, pastSecond: true });
    expect(logSinceSeconds(huge.cursor, Date.parse('2026-12-06T10:00:09.5Z'))).toBe(3); // from 10:00:06.5 on
    expect(logSinceSeconds(huge.cursor, Date.parse('2026-12-06T10:00:06.5Z'))).toBe(0); // not yet past that second
    const normal = newLogLines('2026-12-06T10:00:05.2Z ok\n', 'p', undefined, false).cursor;
    expect(normal).toEqual({ pod: 'p', at: '2026-12-06T10:00:05.2Z', seen: 1 });
    expect(logSinceSeconds(normal, Date.parse('2026-12-06T10:00:09.5Z'))).toBe(65);
    expect(logSinceSeconds(undefined, 0)).toBeUndefined();
  });

  it('starts over for another pod, and skips lines without a time', () => {
    const cursor = { pod: 'old', at: '2026-12-06T11:00:00Z', seen: 5 };
    expect(newLogLines('garbage without time\n2026-12-06T10:00:00Z x\n', 'new', cursor, false).lines).toEqual([{ at: '2026-12-06T10:00:00Z', text: 'x' }]);
  });
});

describe('what a check reads out of new lines', () => {
  const at = (i: number) => `2026-12-06T10:00:${String(i % 60).padStart(2, '0')}Z`;
  const lines = (reports: Parameters<typeof formatProgressLine>[0][]) => reports.map((r, i) => ({ at: at(i), text: formatProgressLine(r) }));

  it('keeps the newest numbers, starts, checkpoints and a bounded sample of the loss curve', () => {
    const reports = [
      { event: 'checkpoint-skipped' as const, checkpoint: 'checkpoint-90', reason: 'incomplete' },
      { event: 'start' as const, step: 60, totalSteps: 100, resumedFromStep: 60, checkpoint: 'checkpoint-60' },
      ...Array.from({ length: 40 }, (_, i) => ({ event: 'log' as const, step: 61 + i, totalSteps: 100, loss: 2 - i / 100, stepsPerSecond: 2 })),
      { event: 'eval' as const, step: 100, evalLoss: 1.5 },
      { event: 'checkpoint' as const, step: 80, checkpoint: 'checkpoint-80' },
    ];
    const readout = readTrainerLines('aks-finetune', lines(reports));
    expect(readout.reports).toBe(reports.length);
    expect(readout.starts).toEqual([{ at: at(1), resumedFromStep: 60, checkpoint: 'checkpoint-60' }]);
    expect(readout.skippedCheckpoints).toEqual(['checkpoint-90']);
    expect(readout.checkpointStep).toBe(80);
    expect(readout.latest).toMatchObject({ step: 100, totalSteps: 100, evalLoss: 1.5, stepsPerSecond: 2 });
    expect(readout.latest?.loss).toBeCloseTo(1.61);
    expect(readout.lossPoints.length).toBe(20);
    expect(readout.lossPoints.at(-1)![0]).toBe(100);
    expect(readout.firstLoss).toBe(2);
  });

  it('keeps a NaN as the worst loss, as text, and never in the status numbers', () => {
    const readout = readTrainerLines('aks-finetune', lines([{ event: 'log', step: 1, loss: 2 }, { event: 'log', step: 2, loss: Number.NaN }, { event: 'log', step: 3, loss: 3 }]));
    expect(readout.worst).toEqual({ step: 2, loss: 'NaN' });
    expect(readout.latest?.loss).toBe(3);
    expect(JSON.parse(JSON.stringify(readout)).worst.loss).toBe('NaN');
  });
});

describe('the loss curve kept in the status', () => {
  it('never holds more than its bound, keeps the first and newest points, and covers the whole run', () => {
    let curve: LossPoint[] = [];
    for (let step = 1; step <= 10_000; step += 7) curve = appendLossHistory(curve, [[step, 1 / step]]);
    expect(curve.length).toBeLessThanOrEqual(maxLossHistory);
    expect(curve[0]).toEqual([1, 1]);
    expect(curve.at(-1)![0]).toBe(9997);
    expect(curve.map(([s]) => s)).toEqual([...curve.map(([s]) => s)].sort((a, b) => a - b));
  });

  it('drops steps a resumed attempt trains again, and non-finite losses', () => {
    expect(appendLossHistory([[10, 1]], [[8, 2], [10, 2], [11, Number.NaN], [12, 0.9]])).toEqual([[10, 1], [12, 0.9]]);
  });
});

describe('divergence, ETA, percent and check pacing', () => {
  it('calls NaN, infinity and a tenfold loss diverged, a noisy step not', () => {
    expect(lossDivergence(2, { step: 5, loss: 'NaN' })).toBe('the training loss is NaN at step 5');
    expect(lossDivergence(undefined, { loss: 'Infinity' })).toBe('the training loss is Infinity');
    expect(lossDivergence(2, { step: 9, loss: '25' })).toMatch(/exploded to 25 at step 9 \(10x its first value, 2\)/);
    expect(lossDivergence(2, { step: 9, loss: '3.5' })).toBeUndefined();
    expect(lossDivergence(2, undefined)).toBeUndefined();
  });

  it('derives the ETA from the pace and the steps left', () => {
    expect(trainingEta('2026-12-06T10:00:00.000Z', 40, 100, 2)).toBe('2026-12-06T10:00:30.000Z');
    expect(trainingEta('2026-12-06T10:00:00.000Z', 40, undefined, 2)).toBeUndefined();
    expect(trainingPercent(333, 1000)).toBe(33);
    expect(trainingPercent(5, undefined)).toBeUndefined();
  });

  it('checks at the poll interval at first, then at a hundredth of the run, capped', () => {
    expect(trainingCheckIntervalMs(60_000, 30_000, 600_000)).toBe(30_000);
    expect(trainingCheckIntervalMs(3 * 3600_000, 30_000, 600_000)).toBe(108_000);
    expect(trainingCheckIntervalMs(48 * 3600_000, 30_000, 600_000)).toBe(600_000);
  });
});
