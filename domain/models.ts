// Base models that can be fine-tuned: exactly the presets KAITO can tune, with what it takes to
// train them. Read from KAITO v0.12.0 (and identical at v0.11.0, the release scripts/kaito-render
// builds): presets/workspace/models/transformer_runtime_tuning_parameters.go
// (TransformerTuningParameters, the tuning table) and presets/workspace/models/supported_models.yaml
// (each preset's weights tag). Names follow KAITO's presets so a KAITO Workspace translates one to
// one. Presets KAITO can serve but not tune (mistral-7b-instruct, falcon-*, ...) are refused.

export interface ModelPreset {
  name: string;
  /** Parameters, in billions. */
  parametersB: number;
  /**
   * Tag of KAITO's weights artifact kaito-<name>:<tag>. Since tag 0.2.0 KAITO publishes each
   * preset's weights as an OCI artifact that `oras pull` unpacks (pkg/workspace/manifests/
   * manifests.go, GenerateModelPullerContainer); 0.1.1 dates from KAITO 0.4.x.
   */
  weightsTag: string;
  /** Phi-3 family presets set DEFAULT_TARGET_MODULES for LoRA in KAITO's trainer. */
  targetModules?: string;
}

const phi3Modules = 'k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj';
/** supported_models.yaml gives every tunable preset tag 0.2.0 (KAITO v0.11.0 and v0.12.0). */
const weightsTag = '0.2.0';

const presets: ModelPreset[] = [
  { name: 'phi-3-mini-4k-instruct', parametersB: 3.8, weightsTag, targetModules: phi3Modules },
  { name: 'phi-3-mini-128k-instruct', parametersB: 3.8, weightsTag, targetModules: phi3Modules },
  { name: 'phi-3-medium-4k-instruct', parametersB: 14, weightsTag, targetModules: phi3Modules },
  { name: 'phi-3-medium-128k-instruct', parametersB: 14, weightsTag, targetModules: phi3Modules },
  { name: 'phi-3.5-mini-instruct', parametersB: 3.8, weightsTag, targetModules: phi3Modules },
  { name: 'phi-4', parametersB: 14.7, weightsTag },
  { name: 'phi-4-mini-instruct', parametersB: 3.8, weightsTag },
  // KAITO's tuning table keys it "mistral-7b-v0.3" (Mistral-7B-v0.3 weights, the preset mistral-7b).
  { name: 'mistral-7b', parametersB: 7.25, weightsTag },
  { name: 'qwen2.5-coder-7b-instruct', parametersB: 7.6, weightsTag },
  { name: 'qwen2.5-coder-32b-instruct', parametersB: 32.5, weightsTag },
];

export const modelPresetNames: readonly string[] = presets.map((p) => p.name);

/**
 * Presets a KAITO file may still name that KAITO no longer tunes, and why: KAITO v0.12.0's
 * examples/fine-tuning/ and tuning docs still show falcon-7b, which its tuning table lost when the
 * presets moved to the model catalog (KAITO #1977, v0.11.0).
 */
const untunable: Record<string, string> = Object.fromEntries(
  ['falcon-7b', 'falcon-7b-instruct', 'falcon-40b', 'falcon-40b-instruct'].map((name) => [
    name,
    `KAITO no longer tunes falcon models: since v0.11.0 its tuning table (presets/workspace/models/transformer_runtime_tuning_parameters.go) has none, though its falcon-7b tuning examples remain`,
  ]),
);
untunable['mistral-7b-instruct'] = 'KAITO serves mistral-7b-instruct but has never tuned it; tune mistral-7b';

/** Why KAITO cannot tune a preset it knows (falcon, instruct variants); undefined for presets it tunes or never had. */
export const untunableReason = (name: string): string | undefined => untunable[name];

export function findModelPreset(name: string): ModelPreset | undefined {
  return presets.find((p) => p.name === name);
}

/** KAITO's weights artifact for a preset: <registry>/kaito-<name>:<tag> (pkg/utils/common_preset.go, GetPresetImageName). */
export function modelWeightsImage(registry: string, model: ModelPreset): string {
  return `${registry}/kaito-${model.name}:${model.weightsTag}`;
}

export type TuningMethod = 'lora' | 'qlora';

/**
 * GPU memory one GPU needs to fine-tune the model, in GiB. KAITO's trainer runs one process
 * per GPU (accelerate, data parallel), so every GPU holds the whole base model: bf16 weights
 * (2 bytes per parameter) for LoRA, 4-bit (0.5 bytes) for QLoRA, 30% on top for activations
 * and buffers, adapter weights with their gradients and Adam state (~1% of the parameters at
 * 16 bytes each), and 3 GiB for the CUDA context. An estimate for a sanity check, not a promise.
 */
export function estimateTrainingMemoryGiB(model: ModelPreset, method: TuningMethod): number {
  const bytesPerParameter = method === 'lora' ? 2 : 0.5;
  const bytes = model.parametersB * 1e9 * (bytesPerParameter * 1.3 + 0.16);
  return Math.round((bytes / 2 ** 30 + 3) * 10) / 10;
}
