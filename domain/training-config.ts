// The tuning parameters in KAITO's format: the `training_config.yaml` its trainer reads from
// the parameters ConfigMap. Defaults are KAITO's lora/qlora templates; overrides go on top.
import { fnv1a } from './hash.js';
import type { TuningMethod } from './models.js';

export interface TuningOverrides {
  loraR?: number;
  loraAlpha?: number;
  loraDropout?: number;
  epochs?: number;
  learningRate?: number;
  batchSize?: number;
  gradientAccumulationSteps?: number;
  maxSteps?: number;
  /** Quantization switches: qlora needs exactly one; lora must have neither. */
  loadIn4bit?: boolean;
  loadIn8bit?: boolean;
}

/** A held-out split the trainer evaluates on: its loss (eval_loss) is the run's training-time score. */
export interface EvaluationSplit {
  /** The fraction of the dataset held out, e.g. 0.1. */
  testSplit: number;
}

export type TrainingConfig = { training_config: Record<string, Record<string, unknown>> };

const defined = (entries: Record<string, unknown>) => Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));

/**
 * KAITO's training_config.yaml: KAITO's lora/qlora template, or the sections of the user's own
 * tuning ConfigMap (`base`, already checked: domain/tuning-configmap.ts), with the request's
 * overrides on top. With `evaluation`, DatasetConfig.train_test_split is the TRAIN
 * fraction (KAITO's dataset.py: train_test_split < 1 → datasets' train_test_split(test_size =
 * 1 - value), the test part becomes the Trainer's eval_dataset) and TrainingArguments.eval_strategy
 * "epoch" makes the Trainer evaluate on it after each epoch and print eval_loss. KAITO passes
 * TrainingArguments through to transformers unchecked (api/v1beta1/tuning_config_validation.go
 * checks only output_dir and the sections' names).
 */
export function trainingConfig(method: TuningMethod, o: TuningOverrides = {}, evaluation?: EvaluationSplit, base?: TrainingConfig['training_config']): TrainingConfig {
  // A copy (JSON: workflow code has no structuredClone guarantee): the base stays as the ConfigMap said.
  const sections: TrainingConfig['training_config'] = base ? JSON.parse(JSON.stringify(base)) : kaitoTemplate(method, o);
  const section = (name: string) => (sections[name] ??= {});
  const set = (name: string, values: Record<string, unknown>) => Object.assign(section(name), defined(values));
  if (base) {
    set('QuantizationConfig', { load_in_4bit: o.loadIn4bit, load_in_8bit: o.loadIn8bit });
    if (Object.keys(sections.QuantizationConfig!).length === 0) delete sections.QuantizationConfig;
    set('LoraConfig', { r: o.loraR, lora_alpha: o.loraAlpha, lora_dropout: o.loraDropout });
    set('TrainingArguments', { per_device_train_batch_size: o.batchSize });
  }
  set('TrainingArguments', {
    num_train_epochs: o.epochs,
    learning_rate: o.learningRate,
    gradient_accumulation_steps: o.gradientAccumulationSteps,
    max_steps: o.maxSteps,
    eval_strategy: evaluation ? 'epoch' : undefined,
  });
  // Rounded: 1 - 0.1 is 0.9 in the YAML, not 0.9000000000000000222.
  if (evaluation) set('DatasetConfig', { train_test_split: Number((1 - evaluation.testSplit).toFixed(6)) });
  return { training_config: sections };
}

/** KAITO's own lora/qlora template (charts/kaito/workspace/templates/{lora,qlora}-params.yaml), with the request's LoRA, batch and quantization settings. */
function kaitoTemplate(method: TuningMethod, o: TuningOverrides): TrainingConfig['training_config'] {
  const quantized = method === 'qlora';
  const loadIn8bit = o.loadIn8bit ?? false;
  const loadIn4bit = o.loadIn4bit ?? (quantized && !loadIn8bit);
  return {
    ModelConfig: { torch_dtype: 'bfloat16', local_files_only: true, device_map: 'auto' },
    ...(quantized || loadIn4bit || loadIn8bit
      ? {
          QuantizationConfig: defined({
            load_in_4bit: loadIn4bit,
            load_in_8bit: loadIn8bit,
            ...(loadIn4bit ? { bnb_4bit_quant_type: 'nf4', bnb_4bit_compute_dtype: 'bfloat16', bnb_4bit_use_double_quant: true } : {}),
          }),
        }
      : {}),
    LoraConfig: { r: o.loraR ?? 8, lora_alpha: o.loraAlpha ?? 8, lora_dropout: o.loraDropout ?? 0.0 },
    TrainingArguments: { output_dir: '/mnt/results', ddp_find_unused_parameters: false, save_strategy: 'no', per_device_train_batch_size: o.batchSize ?? 1 },
    DataCollator: { mlm: true },
    DatasetConfig: { shuffle_dataset: true, train_test_split: 1 },
  };
}

/** A value's JSON with object keys sorted: the same value always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]))
        : v;
  return JSON.stringify(canonical(value));
}

/** FNV-1a of a value's canonical JSON: a stable fingerprint for lineage annotations. */
export function fingerprint(value: unknown): string {
  return fnv1a(canonicalJson(value)).toString(16).padStart(8, '0');
}
