// The gpu-simulator's stand-in adapter against a real one: test/fixtures/peft-trainer-output/
// was written by PEFT 0.21.0 / transformers 5.17.0 on an NVIDIA H200, by
// scripts/gpu-checks/peft-trainer-output.py (KAITO's LoraConfig defaults and target modules, the
// base loaded from a local folder as KAITO's trainer loads /workspace/weights). Whatever reads an
// adapter (the pusher, the inference servers) meets in the local stack what it meets on AKS.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { safetensorsHeader, writeAdapter } from '../scripts/stack/gpu-simulator/adapter-files.js';

const fixture = join(import.meta.dirname, 'fixtures', 'peft-trainer-output');
const readJson = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
const kaitoTargetModules = ['k_proj', 'q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj'];

interface TensorEntry {
  dtype: string;
  shape: number[];
}

function tensors(dir: string): Record<string, TensorEntry> {
  const entries = Object.entries(safetensorsHeader(readFileSync(join(dir, 'adapter_model.safetensors'))));
  return Object.fromEntries(entries.filter(([name]) => name !== '__metadata__')) as Record<string, TensorEntry>;
}

/** Where each module's LoRA weights sit in the state dict: `self_attn.q_proj`, `mlp.down_proj`… */
function modulePaths(names: string[]): string[] {
  return [...new Set(names.map((n) => /^base_model\.model\.model\.layers\.\d+\.(\w+\.\w+)\.lora_[AB]\.weight$/.exec(n)?.[1] ?? `unexpected: ${n}`))].sort();
}

describe("the simulator's adapter, against a real trainer's", () => {
  const simulated = mkdtempSync(join(tmpdir(), 'adapter-'));
  writeAdapter(simulated, { r: 8, loraAlpha: 8, loraDropout: 0, targetModules: kaitoTargetModules });

  it('writes every config field it sets with the value type PEFT writes, and a local weights folder as the base', () => {
    const real = readJson(fixture, 'adapter_config.json');
    const ours = readJson(simulated, 'adapter_config.json');
    for (const [key, value] of Object.entries(ours)) {
      expect(real, key).toHaveProperty(key);
      expect(Array.isArray(value) ? 'array' : typeof value, key).toBe(Array.isArray(real[key]) ? 'array' : typeof real[key]);
    }
    expect(ours).toMatchObject({ peft_type: real.peft_type, task_type: real.task_type, r: real.r, lora_alpha: real.lora_alpha });
    // PEFT records the folder the base was loaded from: an absolute path, never a model id.
    expect(real.base_model_name_or_path).toMatch(/^\/.+\/weights$/);
    expect(ours.base_model_name_or_path).toBe('/workspace/weights');
    expect([...(ours.target_modules as string[])].sort()).toEqual([...(real.target_modules as string[])].sort());
  });

  it('names, shapes and types its LoRA tensors as PEFT does', () => {
    const real = tensors(fixture);
    const ours = tensors(simulated);
    expect(modulePaths(Object.keys(ours))).toEqual(modulePaths(Object.keys(real)));
    expect(new Set(Object.values(ours).map((t) => t.dtype))).toEqual(new Set(Object.values(real).map((t) => t.dtype)));
    for (const t of [real, ours]) {
      for (const [name, { shape }] of Object.entries(t)) {
        // lora_A is [r, in_features], lora_B is [out_features, r].
        expect(name.endsWith('lora_A.weight') ? shape[0] : shape[1], name).toBe(8);
      }
    }
  });
});
