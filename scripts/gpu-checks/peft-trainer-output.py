# Optional GPU check (needs CUDA, torch, transformers, peft): what a KAITO-style trainer really
# leaves in its output folder, so the gpu-simulator's stand-in adapter can be compared with it
# (test/fixtures/peft-trainer-output/, test/adapter-fidelity.test.ts).
# It loads a tiny random Llama-shaped base from a local folder the way KAITO's fine_tuning.py
# loads /workspace/weights (local_files_only, bfloat16, device_map auto), applies KAITO's default
# LoraConfig (r 8, alpha 8, dropout 0, DEFAULT_TARGET_MODULES of the phi-3 presets), trains with
# transformers' Trainer on a held-out split, and writes under $OUT/peft-trainer-output/.
# Run: OUT=/tmp/out python3 scripts/gpu-checks/peft-trainer-output.py
import json, os
import peft, safetensors, torch, transformers
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from torch.utils.data import Dataset
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

weights = "/tmp/workspace/weights"
out = os.path.join(os.environ["OUT"], "peft-trainer-output")
LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=4, vocab_size=512, max_position_embeddings=128)).save_pretrained(weights)
model = AutoModelForCausalLM.from_pretrained(weights, local_files_only=True, dtype=torch.bfloat16, device_map="auto")
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                                         target_modules=["k_proj", "q_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]))


class Tokens(Dataset):
    def __init__(self, n, seed):
        self.x = torch.randint(0, 512, (n, 32), generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


args = TrainingArguments(output_dir=out, num_train_epochs=2, per_device_train_batch_size=8, eval_strategy="epoch",
                         save_strategy="no", logging_steps=2, report_to=[], bf16=True)
trainer = Trainer(model=model, args=args, train_dataset=Tokens(64, 1), eval_dataset=Tokens(16, 2))
trainer.train()
trainer.save_model(out)
trainer.save_state()
with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f:
    tensors = {k: {"shape": list(f.get_slice(k).get_shape()), "dtype": str(f.get_tensor(k).dtype)} for k in f.keys()}
summary = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                        "safetensors": safetensors.__version__},
           "device": torch.cuda.get_device_name(0), "files": sorted(os.listdir(out)), "tensors": tensors}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in summary.items() if k != "tensors"}))
