// The trainer's log, as transformers prints it, read into progress and the held-out split's loss.
import { describe, expect, it } from 'vitest';
import { parseTrainerLog } from '../domain/trainer-log.js';

describe("the trainer's log", () => {
  it('reads step and loss from the logs dicts transformers < 4.5x prints (floats)', () => {
    const log = " 40%|████      | 4/10 [00:02<00:03,  1.9it/s]\n{'loss': 1.734, 'grad_norm': 0.51, 'learning_rate': 0.0002, 'epoch': 0.4}\n 50%|█████     | 5/10 [00:03<00:02,  1.9it/s]";
    expect(parseTrainerLog(log)).toEqual({ step: 5, loss: 1.734 });
    expect(parseTrainerLog('')).toEqual({ step: undefined, loss: undefined });
  });

  it('reads the last eval_loss, with floats printed as text (transformers 5: f"{v:.4g}")', () => {
    // The shape of the recorded run in test/fixtures/peft-trainer-output/trainer_state.json, as ProgressCallback writes it.
    const log = [
      "{'loss': '6.244', 'grad_norm': '0.1032', 'learning_rate': '4.688e-05', 'epoch': '0.25'}",
      " 50%|█████     | 8/16 [00:01<00:01,  5.1it/s]",
      "{'eval_loss': '6.254', 'eval_runtime': '0.7784', 'eval_samples_per_second': '20.56', 'eval_steps_per_second': '2.569', 'epoch': '1'}",
      "{'loss': '6.25', 'grad_norm': '0.09925', 'learning_rate': '3.125e-06', 'epoch': '2'}",
      "{'eval_loss': '6.2536', 'eval_runtime': '0.0201', 'eval_samples_per_second': '796.1', 'eval_steps_per_second': '99.51', 'epoch': '2'}",
      "{'train_runtime': '3.894', 'train_samples_per_second': '32.87', 'train_steps_per_second': '4.109', 'train_loss': '6.253', 'epoch': '2'}",
      '100%|██████████| 16/16 [00:03<00:00,  4.11it/s]',
    ].join('\n');
    expect(parseTrainerLog(log)).toEqual({ step: 16, loss: 6.25, evalLoss: 6.2536 });
  });

  it('reads exponents and ignores a nan loss (a diverged evaluation is no score)', () => {
    expect(parseTrainerLog("{'eval_loss': 1.5e-03, 'epoch': 1.0}").evalLoss).toBe(0.0015);
    expect(parseTrainerLog("{'eval_loss': 'nan', 'epoch': '1'}").evalLoss).toBeUndefined();
    // 'train_loss' and 'eval_loss' are not 'loss'.
    expect(parseTrainerLog("{'train_loss': '6.253'}\n{'eval_loss': '2'}").loss).toBeUndefined();
  });
});
