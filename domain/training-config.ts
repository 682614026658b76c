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

export type TrainingConfig = { training_config: Record<string, Record<string, unknown>> };

const defined = (entries: Record<string, unknown>) => Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));

export function trainingConfig(method: TuningMethod, o: TuningOverrides = {}): TrainingConfig {
  const quantized = method === 'qlora';
  const loadIn8bit = o.loadIn8bit ?? false;
  const loadIn4bit = o.loadIn4bit ?? (quantized && !loadIn8bit);
  return {
    training_config: {
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
      TrainingArguments: defined({
        output_dir: '/mnt/results',
        ddp_find_unused_parameters: false,
        save_strategy: 'no',
        per_device_train_batch_size: o.batchSize ?? 1,
        num_train_epochs: o.epochs,
        learning_rate: o.learningRate,
        gradient_accumulation_steps: o.gradientAccumulationSteps,
        max_steps: o.maxSteps,
      }),
      DataCollator: { mlm: true },
      DatasetConfig: { shuffle_dataset: true, train_test_split: 1 },
    },
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
