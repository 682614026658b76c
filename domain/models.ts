// Base models that can be fine-tuned: KAITO's tuning presets, with what it takes to train them.
// Names and image tags follow KAITO's presets (supported_models.yaml) so a KAITO Workspace
// translates one to one and KAITO's weight images can be pulled unchanged.

export interface ModelPreset {
  name: string;
  /** Parameters, in billions. */
  parametersB: number;
  /** Tag of KAITO's weights image kaito-<name>:<tag>. */
  weightsTag: string;
  /** Phi-3 family presets set DEFAULT_TARGET_MODULES for LoRA in KAITO's trainer. */
  targetModules?: string;
}

const phi3Modules = 'k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj';

const presets: ModelPreset[] = [
  { name: 'phi-3-mini-4k-instruct', parametersB: 3.8, weightsTag: '0.1.1', targetModules: phi3Modules },
  { name: 'phi-3-mini-128k-instruct', parametersB: 3.8, weightsTag: '0.1.1', targetModules: phi3Modules },
  { name: 'phi-3-medium-4k-instruct', parametersB: 14, weightsTag: '0.1.1', targetModules: phi3Modules },
  { name: 'phi-3-medium-128k-instruct', parametersB: 14, weightsTag: '0.1.1', targetModules: phi3Modules },
  { name: 'phi-3.5-mini-instruct', parametersB: 3.8, weightsTag: '0.1.1', targetModules: phi3Modules },
  { name: 'phi-4', parametersB: 14.7, weightsTag: '0.1.1' },
  { name: 'phi-4-mini-instruct', parametersB: 3.8, weightsTag: '0.1.1' },
  { name: 'mistral-7b', parametersB: 7.25, weightsTag: '0.1.1' },
  { name: 'mistral-7b-instruct', parametersB: 7.25, weightsTag: '0.1.1' },
  { name: 'qwen2.5-coder-7b-instruct', parametersB: 7.6, weightsTag: '0.1.1' },
  { name: 'qwen2.5-coder-32b-instruct', parametersB: 32.5, weightsTag: '0.1.1' },
  { name: 'falcon-7b', parametersB: 7, weightsTag: '0.1.1' },
  { name: 'falcon-7b-instruct', parametersB: 7, weightsTag: '0.1.1' },
];

export const modelPresetNames: readonly string[] = presets.map((p) => p.name);

export function findModelPreset(name: string): ModelPreset | undefined {
  return presets.find((p) => p.name === name);
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
