// How an endpoint's vLLM server is started, and whether an adapter fits it. Runtime LoRA
// updating (POST /v1/load_lora_adapter, /v1/unload_lora_adapter) exists only when the server runs
// with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vLLM docs/features/lora.md,
// "Dynamically serving LoRA Adapters"). --max-loras is how many adapters one batch can use;
// --max-lora-rank the highest rank a loaded adapter may have (vllm/engine/arg_utils.py).

export interface VllmServerSpec {
  /** The base model's name in the API (--served-model-name). */
  servedModelName: string;
  /** Where the base model's weights are inside the pod. */
  weightsPath: string;
  port: number;
  maxLoras: number;
  maxLoraRank: number;
}

export function vllmServerCommand(spec: VllmServerSpec): { args: string[]; env: { name: string; value: string }[] } {
  return {
    args: [
      '--model', spec.weightsPath,
      '--served-model-name', spec.servedModelName,
      '--port', String(spec.port),
      '--enable-lora',
      '--max-loras', String(spec.maxLoras),
      '--max-lora-rank', String(spec.maxLoraRank),
    ],
    env: [{ name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' }],
  };
}

/** vLLM's accepted --max-lora-rank values (vllm/config.py LoRAConfig.possible_max_ranks). */
export const possibleMaxLoraRanks = [8, 16, 32, 64, 128, 256, 320, 512] as const;

/**
 * Why an adapter image cannot be served by an endpoint, or [] when it can. The base model comes
 * from the image's `sh.kaito.model.name` annotation: PEFT's base_model_name_or_path records the
 * folder the trainer loaded the weights from (/workspace/weights in KAITO's tuning pod), not a
 * model id. vLLM checks the rank itself at load time, but not the base model: a mismatched
 * adapter would load and answer nonsense, so the product checks both before asking vLLM.
 */
export function adapterProblems(
  adapter: { baseModel: string | undefined; config: unknown },
  endpoint: { baseModel: string; maxLoraRank: number },
): string[] {
  const problems: string[] = [];
  if (adapter.baseModel !== endpoint.baseModel) {
    problems.push(`base model ${JSON.stringify(adapter.baseModel ?? null)} is not the endpoint's ${JSON.stringify(endpoint.baseModel)}`);
  }
  if (typeof adapter.config !== 'object' || adapter.config === null || Array.isArray(adapter.config)) {
    return [...problems, 'adapter_config.json is not a JSON object'];
  }
  const { r, peft_type: peftType } = adapter.config as Record<string, unknown>;
  if (peftType !== undefined && peftType !== 'LORA') problems.push(`peft_type is ${String(peftType)}, only LORA adapters are served`);
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) problems.push(`rank r ${JSON.stringify(r)} is not a positive integer`);
  else if (r > endpoint.maxLoraRank) problems.push(`rank ${r} exceeds the endpoint's max-lora-rank ${endpoint.maxLoraRank}`);
  return problems;
}
