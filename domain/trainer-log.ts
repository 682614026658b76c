// What the Hugging Face Trainer prints while KAITO's fine_tuning.py runs: tqdm bars ("step N/M [")
// and, at each logging step, its logs dict: {'loss': ...} while training, {'eval_loss': ...} after
// each evaluation on the held-out split, {'train_loss': ...} at the end. transformers' ProgressCallback
// (trainer_callback.py) writes str(logs); since transformers 4.5x it formats floats as text
// (f"{v:.4g}", so {'eval_loss': '1.234'}), older versions print the float ({'eval_loss': 1.234}):
// both are read. KAITO's trainer saves only the adapter (save_model, no trainer_state.json), so
// this log is the one place eval_loss is written.

export interface TrainerLogProgress {
  step?: number;
  loss?: number;
  /** The latest evaluation's loss on the held-out split: the last one printed is the final model's. */
  evalLoss?: number;
}

/** The last value of `key` in the log's dicts, quoted or not. */
function lastValue(log: string, key: string): number | undefined {
  const found = [...log.matchAll(new RegExp(`'${key}':\\s*'?(-?[0-9.]+(?:[eE][+-]?[0-9]+)?|nan|inf)'?`, 'g'))].at(-1)?.[1];
  const value = found === undefined ? undefined : Number(found);
  return value === undefined || Number.isNaN(value) ? undefined : value;
}

export function parseTrainerLog(log: string): TrainerLogProgress {
  const step = [...log.matchAll(/\b(\d+)\/(\d+)\s*\[/g)].at(-1)?.[1];
  const progress: TrainerLogProgress = { step: step ? Number(step) : undefined, loss: lastValue(log, 'loss') };
  const evalLoss = lastValue(log, 'eval_loss');
  return evalLoss === undefined ? progress : { ...progress, evalLoss };
}
