// A KAITO tuning ConfigMap (a Workspace's tuning.config, a request's tuning.configMap): key
// training_config.yaml, a top-level training_config holding KAITO's six sections. Checked as KAITO's
// webhook checks it (api/v1beta1/tuning_config_validation.go: the sections' names, output_dir,
// the quantization switches against the method) and, beyond it, key by key against the dataclass
// KAITO's trainer parses each section into (domain/kaito-config-fields.ts): KAITO's trainer fails
// on an unknown key only on the GPU node. The keys a request may also set inline are held to the
// inline fields' rules. Pure code.
import { parse } from 'yaml';
import { z } from 'zod';
import { trainingParameterFields as inline } from './fine-tune-request.js';
import { type KaitoConfigSection, kaitoConfigFields } from './kaito-config-fields.js';
import type { TuningMethod } from './models.js';
import { checkInput, strict, text } from './schema.js';
import type { TrainingConfig } from './training-config.js';

export const tuningConfigKey = 'training_config.yaml';

/** Where the product mounts the results volume (checkpoints, and the adapter the pusher reads). */
const resultsDir = '/mnt/results';

/** The inline field's rule for the ConfigMap keys a request may also set. */
const sameRules: Partial<Record<KaitoConfigSection, Record<string, z.ZodType>>> = {
  QuantizationConfig: { load_in_4bit: inline.loadIn4bit, load_in_8bit: inline.loadIn8bit },
  LoraConfig: { r: inline.loraR, lora_alpha: inline.loraAlpha, lora_dropout: inline.loraDropout },
  TrainingArguments: {
    num_train_epochs: inline.epochs,
    learning_rate: inline.learningRate,
    per_device_train_batch_size: inline.batchSize,
    gradient_accumulation_steps: inline.gradientAccumulationSteps,
    max_steps: inline.maxSteps,
    output_dir: text(`"${resultsDir}": the run mounts its results volume (checkpoints, the adapter the pusher reads) there`, { pattern: /^\/mnt\/results\/?$/ }),
  },
};

const section = (name: KaitoConfigSection) =>
  strict(Object.fromEntries(kaitoConfigFields[name].map((key) => [key, (sameRules[name]?.[key] ?? z.unknown()).optional()])), `a mapping of ${name} fields`).optional();

export const tuningConfigSchema = strict(
  {
    training_config: strict(
      Object.fromEntries((Object.keys(kaitoConfigFields) as KaitoConfigSection[]).map((name) => [name, section(name)])) as Record<KaitoConfigSection, ReturnType<typeof section>>,
      `a mapping of KAITO's sections: ${Object.keys(kaitoConfigFields).join(', ')}`,
    ),
  },
  'a mapping with training_config',
);

export type TuningConfigSections = TrainingConfig['training_config'];

/**
 * The sections of a ConfigMap's training_config.yaml text, or every problem with it (each named
 * with `source`, e.g. "ConfigMap my-params"), for a run of `method` (undefined: either method).
 */
export function checkTuningConfig(yamlText: string, method: TuningMethod | undefined, source: string): { ok: true; sections: TuningConfigSections } | { ok: false; problems: string[] } {
  let value: unknown;
  try {
    value = parse(yamlText, { maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problems: [`${source}: ${tuningConfigKey} is not YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  const checked = checkInput(tuningConfigSchema, value ?? {}, tuningConfigKey);
  if (!checked.ok) return { ok: false, problems: checked.problems.map((p) => `${source}: ${p}`) };
  const sections = Object.fromEntries(Object.entries(checked.value.training_config).filter(([, v]) => v !== undefined)) as TuningConfigSections;
  const quantization = sections.QuantizationConfig ?? {};
  const [in4, in8] = [quantization.load_in_4bit === true, quantization.load_in_8bit === true];
  // KAITO's validateMethodViaConfigMap, word for word in effect.
  const problems: string[] = [];
  if (in4 && in8) problems.push(`${source}: QuantizationConfig sets both load_in_4bit and load_in_8bit; set one`);
  else if (method === 'lora' && (in4 || in8)) problems.push(`${source}: method lora trains a full-precision base: QuantizationConfig's load_in_4bit and load_in_8bit must not be true (use method qlora)`);
  else if (method === 'qlora' && !in4 && !in8) problems.push(`${source}: method qlora needs QuantizationConfig with load_in_4bit or load_in_8bit true`);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, sections };
}
