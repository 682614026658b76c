# The product's trainer entrypoint. Each run's parameters ConfigMap carries it next to
# training_config.yaml, so it lands in /mnt/config and runs in KAITO's own trainer image
# (kaito-base) under KAITO's launcher: `accelerate launch --num_processes=<GPUs> /mnt/config/aks_finetune_trainer.py`.
#
# It keeps KAITO's contract by using KAITO's own code: the config is parsed by KAITO's parser
# (parse_configs: the sections of training_config.yaml, TrainingArguments as TRL's SFTConfig) and
# the dataset loaded, shuffled and split by KAITO's DatasetManager, both imported from KAITO's
# tuning folder in the image (KAITO_TUNING_DIR, default /workspace/tfs). The flow is that of KAITO's
# fine_tuning.py: the base model (quantized for QLoRA), the LoRA adapter, SFTTrainer, the adapter
# saved at the output root, then fine_tuning_completed.txt.
#
# How it differs from KAITO's fine_tuning.py, and why:
# - Progress: one line per event on stdout, `aks-finetune-progress {json}` (start, log, eval,
#   checkpoint, checkpoint-skipped, done; non-finite numbers as "NaN"/"Infinity" text), which the
#   workflow reads from the pod's log (domain/training-progress.ts). KAITO prints only tqdm.
# - Checkpoints: every AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES (default 15; 0: every step) into
#   <output_dir>/checkpoint-<step>, the newest AKS_FINETUNE_CHECKPOINTS_KEPT kept (default 2), each
#   completed by a marker written last (aks-finetune-checkpoint.json). KAITO saves none
#   (save_strategy "no"), so a lost node starts over from step 0.
# - Resume: from the newest checkpoint with a marker; half-written ones (no marker: the node died
#   while saving) are deleted and reported.
# - The dataset is shuffled with DatasetConfig.shuffle_seed (KAITO: no seed), so a resumed attempt
#   sees the samples in the order the first one did and skips exactly those already trained on.
# - trainer.save_state() after training: trainer_state.json at the output root records every
#   eval_loss, readable without scraping the log.
# - CUDA calls (empty_cache, set_device) only where CUDA is, so the same file trains on CPU in tests.
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import asdict
from datetime import datetime

sys.path.insert(0, os.environ.get("KAITO_TUNING_DIR", "/workspace/tfs"))

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from cli import DatasetConfig, ExtDataCollator, ExtLoraConfig, ModelConfig  # noqa: E402  (KAITO's)
from dataset import DatasetManager  # noqa: E402  (KAITO's)
from parser import load_chat_template, parse_configs  # noqa: E402  (KAITO's)
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

PREFIX = "aks-finetune-progress "
MARKER = "aks-finetune-checkpoint.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

dist_state = PartialState()
main_process = dist_state.is_main_process


def number(value):
    """A float for JSON: non-finite as text (JSON has no NaN)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def report(event, **fields):
    if not main_process:
        return
    body = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
    print(PREFIX + json.dumps(body, separators=(",", ":")), flush=True)


def newest_complete_checkpoint(output_dir):
    """The newest checkpoint folder with its marker; half-written ones are deleted and reported."""
    complete = []
    for name in os.listdir(output_dir) if os.path.isdir(output_dir) else []:
        match = CHECKPOINT.match(name)
        if not match:
            continue
        try:
            with open(os.path.join(output_dir, name, MARKER)) as f:
                if json.load(f).get("step") == int(match.group(1)):
                    complete.append(int(match.group(1)))
                    continue
        except (OSError, ValueError):
            pass
        if main_process:
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
            report("checkpoint-skipped", checkpoint=name, reason="incomplete")
    return max(complete) if complete else None


class ProgressAndCheckpoints(TrainerCallback):
    """Prints progress lines, and asks the Trainer for a checkpoint every `every_minutes`."""

    def __init__(self, every_minutes, samples_per_step, resumed_from):
        self.every_seconds = every_minutes * 60
        self.samples_per_step = samples_per_step
        self.resumed_from = resumed_from
        self.last_save = time.monotonic()
        self.last_log = (time.monotonic(), None)
        self.started = False

    def on_step_begin(self, args, state, control, **kwargs):
        # The Trainer has restored global_step from the checkpoint by the first step.
        if not self.started:
            self.started = True
            self.last_log = (time.monotonic(), state.global_step)
            report("start", step=state.global_step, totalSteps=state.max_steps, resumedFromStep=self.resumed_from,
                   checkpoint=f"checkpoint-{self.resumed_from}" if self.resumed_from else None)

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # as KAITO's EmptyCacheCallback
        if time.monotonic() - self.last_save >= self.every_seconds and state.global_step < state.max_steps:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
            tmp = os.path.join(folder, MARKER + ".tmp")
            with open(tmp, "w") as f:
                json.dump({"step": state.global_step}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(folder, MARKER))
            report("checkpoint", step=state.global_step, checkpoint=f"checkpoint-{state.global_step}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        common = {"step": state.global_step, "totalSteps": state.max_steps, "epoch": number(state.epoch or 0)}
        if "loss" in logs:
            now, previous_step = time.monotonic(), self.last_log[1]
            steps = state.global_step - (previous_step if previous_step is not None else state.global_step)
            seconds = now - self.last_log[0]
            self.last_log = (now, state.global_step)
            pace = steps / seconds if steps > 0 and seconds > 0 else None
            report("log", **common, loss=number(logs["loss"]),
                   learningRate=number(logs["learning_rate"]) if "learning_rate" in logs else None,
                   gradNorm=number(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                   stepsPerSecond=pace, samplesPerSecond=pace * self.samples_per_step if pace else None)
        if "eval_loss" in logs:
            report("eval", **common, evalLoss=number(logs["eval_loss"]))


def main():
    parsed = parse_configs(os.environ.get("YAML_FILE_PATH", "/mnt/config/training_config.yaml"))
    model_config: ModelConfig = parsed.get("ModelConfig")
    bnb_config = BitsAndBytesConfig(**asdict(parsed.get("QuantizationConfig")))
    ext_lora_config: ExtLoraConfig = parsed.get("LoraConfig")
    ta_args: SFTConfig = parsed.get("TrainingArguments")
    ds_config: DatasetConfig = parsed.get("DatasetConfig")
    dc_args: ExtDataCollator = parsed.get("DataCollator")

    model_args = model_config.get_model_args()
    if dist_state.distributed_type != "NO":
        model_args["device_map"] = {"": dist_state.process_index}
    enable_qlora = bnb_config.is_quantizable()

    tokenizer = AutoTokenizer.from_pretrained(**model_config.get_tokenizer_args())
    if not tokenizer.pad_token:
        tokenizer.pad_token = tokenizer.eos_token
    chat_template = load_chat_template(model_config.chat_template)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if dc_args.mlm and tokenizer.mask_token is None:
        dc_args.mlm = False  # as KAITO: causal language modelling when the tokenizer has no mask token
    dc_args.tokenizer = tokenizer

    model = AutoModelForCausalLM.from_pretrained(**model_args, quantization_config=bnb_config if enable_qlora else None)
    if enable_qlora:
        model = prepare_model_for_kbit_training(model)
    if not ext_lora_config:
        raise ValueError("LoraConfig must be specified")
    model = get_peft_model(model, LoraConfig(**asdict(ext_lora_config)))
    model.config.use_cache = False

    dm = DatasetManager(ds_config)
    dm.load_data()
    if not dm.get_dataset():
        raise ValueError("Unable to load the dataset.")
    if ds_config.shuffle_dataset:
        dm.shuffle_dataset(seed=ds_config.shuffle_seed)
    train_dataset, eval_dataset = dm.split_dataset()
    ta_args.dataset_text_field = dm.dataset_text_field
    ta_args.save_total_limit = int(os.environ.get("AKS_FINETUNE_CHECKPOINTS_KEPT", "2"))

    resumed_from = newest_complete_checkpoint(ta_args.output_dir)
    samples_per_step = ta_args.per_device_train_batch_size * ta_args.gradient_accumulation_steps * max(1, dist_state.num_processes)
    callback = ProgressAndCheckpoints(float(os.environ.get("AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES", "15")), samples_per_step, resumed_from)

    if torch.cuda.is_available():
        torch.cuda.set_device(dist_state.process_index)
        torch.cuda.empty_cache()
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         args=ta_args, data_collator=dc_args, callbacks=[callback])
    result = trainer.train(resume_from_checkpoint=os.path.join(ta_args.output_dir, f"checkpoint-{resumed_from}") if resumed_from else None)
    report("done", step=trainer.state.global_step, totalSteps=trainer.state.max_steps, trainLoss=number(result.training_loss))

    os.makedirs(ta_args.output_dir, exist_ok=True)
    trainer.model.save_pretrained(ta_args.output_dir)  # only the adapter, at the output root, as KAITO
    trainer.save_state()
    if main_process:
        with open(os.path.join(ta_args.output_dir, "fine_tuning_completed.txt"), "w") as f:
            f.write(f"Fine-Tuning completed at {datetime.now().strftime('%Y-%m-%d-%H-%M-%S')}\n")
        print("Fine-Tuning completed", flush=True)


if __name__ == "__main__":
    main()
