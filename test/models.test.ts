// The presets a run accepts are exactly those KAITO can tune, with KAITO's weights artifacts.
import { describe, expect, it } from 'vitest';
import { validateFineTuneRequest } from '../domain/fine-tune-request.js';
import { findModelPreset, modelPresetNames, modelWeightsImage } from '../domain/models.js';

// KAITO v0.12.0 presets/workspace/models/transformer_runtime_tuning_parameters.go
// (TransformerTuningParameters; its "mistral-7b-v0.3" entry is the preset mistral-7b).
const kaitoTunablePresets = [
  'phi-4',
  'phi-4-mini-instruct',
  'phi-3-mini-4k-instruct',
  'phi-3-mini-128k-instruct',
  'phi-3-medium-4k-instruct',
  'phi-3-medium-128k-instruct',
  'phi-3.5-mini-instruct',
  'mistral-7b',
  'qwen2.5-coder-7b-instruct',
  'qwen2.5-coder-32b-instruct',
];

describe('model presets', () => {
  it("are KAITO's tunable presets, no more and no fewer", () => {
    expect([...modelPresetNames].sort()).toEqual([...kaitoTunablePresets].sort());
  });

  it("pull KAITO's per-preset weights artifacts (tag 0.2.0 in supported_models.yaml)", () => {
    for (const name of modelPresetNames) {
      expect(modelWeightsImage('mcr.microsoft.com/aks/kaito', findModelPreset(name)!)).toBe(`mcr.microsoft.com/aks/kaito/kaito-${name}:0.2.0`);
    }
  });

  it('refuses a preset KAITO cannot tune, saying why where KAITO knows it, listing those it can', () => {
    const why = {
      'falcon-7b': ': KAITO no longer tunes falcon models: since v0.11.0 its tuning table (presets/workspace/models/transformer_runtime_tuning_parameters.go) has none, though its falcon-7b tuning examples remain',
      'mistral-7b-instruct': ': KAITO serves mistral-7b-instruct but has never tuned it; tune mistral-7b',
      'llama-3.1-8b-instruct': '',
    };
    for (const [model, reason] of Object.entries(why)) {
      const result = validateFineTuneRequest(
        { model, dataset: { urls: ['https://data.example.com/a.jsonl'] }, output: { image: 'myacr.azurecr.io/a:v1' }, gpu: { vmSize: 'Standard_NC24ads_A100_v4' } },
        'run-1',
      );
      expect(result.ok ? [] : result.problems).toEqual([`model "${model}" is not a preset KAITO can tune${reason}; choose one of ${modelPresetNames.join(', ')}`]);
    }
  });
});
