// SIMULATION: what KAITO's trainer leaves in its output folder, made without a GPU: a PEFT
// adapter_config.json, a valid (tiny) adapter_model.safetensors, and the completion sentinel.
// Checked against a real trainer's output (test/fixtures/peft-trainer-output/, recorded on a GPU
// by scripts/gpu-checks/peft-trainer-output.py; test/adapter-fidelity.test.ts): PEFT records the
// folder the base was loaded from, not a model id; LoRA tensors are float32 even on a bfloat16
// base; MLP projections sit under `mlp.`, attention ones under `self_attn.`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LoraSettings {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string[];
}

/** A safetensors file: 8-byte little-endian header length, JSON header, raw tensor bytes. */
export function safetensors(tensors: Record<string, { shape: number[]; values: Float32Array }>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', simulated: 'aks-finetune gpu-simulator' } };
  const buffers: Buffer[] = [];
  let offset = 0;
  for (const [name, { shape, values }] of Object.entries(tensors)) {
    const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes.length] };
    buffers.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the format pads the header to 8 bytes
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, Buffer.from(json), ...buffers]);
}

/**
 * Where KAITO's tuning pod mounts the base weights, the folder its trainer loads them from
 * (activities/kubernetes/tuning-job.ts), and so the `base_model_name_or_path` PEFT writes.
 */
export const trainerWeightsFolder = '/workspace/weights';

/** Llama-style MLP projections; every other target module is an attention projection. */
const mlpModules = new Set(['gate_proj', 'up_proj', 'down_proj', 'gate_up_proj']);

export function writeAdapter(dir: string, lora: LoraSettings): void {
  mkdirSync(dir, { recursive: true });
  const hidden = 16; // a real model's hidden size is thousands; the shape is what matters here
  const tensors: Record<string, { shape: number[]; values: Float32Array }> = {};
  for (const module of lora.targetModules) {
    const prefix = `base_model.model.model.layers.0.${mlpModules.has(module) ? 'mlp' : 'self_attn'}.${module}`;
    tensors[`${prefix}.lora_A.weight`] = { shape: [lora.r, hidden], values: new Float32Array(lora.r * hidden).fill(0.01) };
    tensors[`${prefix}.lora_B.weight`] = { shape: [hidden, lora.r], values: new Float32Array(hidden * lora.r) };
  }
  writeFileSync(
    join(dir, 'adapter_config.json'),
    JSON.stringify(
      {
        base_model_name_or_path: trainerWeightsFolder,
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: lora.r,
        lora_alpha: lora.loraAlpha,
        lora_dropout: lora.loraDropout,
        target_modules: lora.targetModules,
        inference_mode: true,
      },
      null,
      2,
    ),
  );
  writeFileSync(join(dir, 'adapter_model.safetensors'), safetensors(tensors));
  writeFileSync(join(dir, 'fine_tuning_completed.txt'), 'Fine-Tuning completed (simulated)\n');
}

/** The JSON header of a safetensors file: tensor names with dtype, shape and offsets, and `__metadata__`. */
export function safetensorsHeader(file: Buffer): Record<string, unknown> {
  const length = Number(file.readBigUInt64LE(0));
  return JSON.parse(file.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>;
}
