// A KAITO tuning ConfigMap's training_config: checked as KAITO's webhook checks it and key by key
// against the dataclasses its trainer parses into; the request's inline parameters win over it.
import { describe, expect, it } from 'vitest';
import { trainingConfig } from '../domain/training-config.js';
import { checkTuningConfig } from '../domain/tuning-configmap.js';

const yaml = (sections: string) => `training_config:\n${sections}`;

describe('a tuning ConfigMap', () => {
  it("holds the quantization switches to the method, as KAITO's validateMethodViaConfigMap does", () => {
    const quantized = yaml('  QuantizationConfig:\n    load_in_4bit: true\n');
    expect(checkTuningConfig(quantized, 'qlora', 'ConfigMap p').ok).toBe(true);
    expect(checkTuningConfig(quantized, 'lora', 'ConfigMap p')).toEqual({ ok: false, problems: [expect.stringContaining('ConfigMap p: method lora trains a full-precision base')] });
    expect(checkTuningConfig(yaml('  LoraConfig:\n    r: 4\n'), 'qlora', 'ConfigMap p')).toEqual({ ok: false, problems: ['ConfigMap p: method qlora needs QuantizationConfig with load_in_4bit or load_in_8bit true'] });
    expect(checkTuningConfig(yaml('  QuantizationConfig:\n    load_in_4bit: true\n    load_in_8bit: true\n'), undefined, 'ConfigMap p')).toEqual({ ok: false, problems: ['ConfigMap p: QuantizationConfig sets both load_in_4bit and load_in_8bit; set one'] });
  });

  it('holds the keys a request may set inline to the same rules, and refuses what no trainer reads', () => {
    const checked = checkTuningConfig(yaml('  LoraConfig:\n    r: 0.5\n  TrainingArguments:\n    learning_rate: 3\n  Callbacks: {}\n'), 'lora', 'ConfigMap p');
    expect(checked).toEqual({
      ok: false,
      problems: [
        'ConfigMap p: training_config.LoraConfig.r must be an integer from 1 to 1024, not 0.5',
        'ConfigMap p: training_config.TrainingArguments.learning_rate must be a number from 1e-9 to 1, not 3',
        'ConfigMap p: training_config.Callbacks is not a known field; known fields here: ModelConfig, QuantizationConfig, LoraConfig, TrainingArguments, DatasetConfig, DataCollator',
      ],
    });
    expect(checkTuningConfig('training_config: [', 'lora', 'ConfigMap p')).toEqual({ ok: false, problems: [expect.stringMatching(/^ConfigMap p: training_config.yaml is not YAML/)] });
  });

  it("replaces KAITO's template, with the request's inline parameters and evaluation on top", () => {
    const base = { LoraConfig: { r: 16, target_modules: ['q_proj'] }, TrainingArguments: { output_dir: '/mnt/results', save_strategy: 'epoch' } };
    expect(trainingConfig('lora', { loraR: 4, epochs: 2 }, { testSplit: 0.1 }, base).training_config).toEqual({
      LoraConfig: { r: 4, target_modules: ['q_proj'] },
      TrainingArguments: { output_dir: '/mnt/results', save_strategy: 'epoch', num_train_epochs: 2, eval_strategy: 'epoch' },
      DatasetConfig: { train_test_split: 0.9 },
    });
    expect(base.LoraConfig.r).toBe(16); // the ConfigMap's sections are not changed
  });
});
