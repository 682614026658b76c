# The product's trainer entrypoint. Each run's parameters ConfigMap carries it next to
# training_config.yaml, so it lands in /mnt/config and runs in KAITO's own trainer image
# (kaito-base) under KAITO's launcher: `accelerate launch --num_processes=<GPUs> /mnt/config/aks_finetune_trainer.py`.
#
# It keeps KAITO's contract by using KAITO's own code: training_config.yaml (YAML_FILE_PATH, default
# /mnt/config/training_config.yaml) is parsed by KAITO's parser (parse_configs: its sections,
# TrainingArguments as TRL's SFTConfig), and the dataset is loaded, shuffled and split by KAITO's
# DatasetManager (/mnt/data, or DATASET_FOLDER_PATH), both imported from KAITO's tuning folder in
# the image (KAITO_TUNING_DIR, default /workspace/tfs). The flow is that of KAITO's fine_tuning.py:
# the base model (quantized for QLoRA), the LoRA adapter, SFTTrainer, the adapter saved at the
# output root, then fine_tuning_completed.txt. test/real-trainer.test.ts runs it on CPU.
#
# How it differs from KAITO's fine_tuning.py, and why:
# - Progress: one line per event on stdout, `aks-finetune-progress {json}` (start, log, eval,
#   checkpoint, checkpoint-skipped, done; non-finite numbers as the strings "NaN", "Infinity",
#   "-Infinity", since JSON has no NaN), read by the workflow from the pod's log
#   (domain/training-progress.ts). KAITO prints only what transformers prints. A NaN loss is only
#   reported: the workflow decides to stop the run and release the GPUs.
# - logging_nan_inf_filter is turned off: transformers' default logs a NaN or infinite step loss as
#   the mean of the window's other steps (0 when all are NaN), which hides a diverged run from the
#   workflow. It changes what is logged, not what is trained.
# - Checkpoints: every AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES (default 15; 0: every step) of
#   training, transformers' own checkpoint-<step> folders in output_dir, the newest
#   AKS_FINETUNE_CHECKPOINTS_KEPT kept (save_total_limit, default 2: with 1, transformers deletes
#   the previous checkpoint before the new one has its marker). Once transformers has written one,
#   its files are fsynced and the marker aks-finetune-checkpoint.json ({"step": N}) is written
#   last, atomically. KAITO saves none (save_strategy "no"), so a lost node starts over at step 0.
# - Resume: from the newest checkpoint whose marker parses and names its step; the others were
#   half-written when the node died, and are deleted and reported (checkpoint-skipped).
# - The dataset is shuffled with DatasetConfig.shuffle_seed (KAITO's shuffle_dataset() uses no
#   seed), so a resumed attempt sees the samples in the first one's order and skips exactly those
#   already trained on.
# - The `labels` column TRL's SFTTrainer adds (TRL 1.x: seen in 1.7.0 and 1.16.0) is dropped
#   before KAITO's collator (DataCollatorForLanguageModeling), which derives labels from input_ids
#   anyway: the tokenizer's pad() pads input_ids but not labels, so with them any batch of samples
#   of different lengths fails ("Unable to create tensor"). Batch size 1, KAITO's default, is
#   unaffected.
# - done's trainLoss is the mean loss of the steps this process trained (transformers' train_loss
#   divides this process's loss sum by the global step, too low after a resume).
# - trainer.save_state() after training: trainer_state.json at the output root records every
#   eval_loss, readable without scraping the log.
# - CUDA calls (empty_cache, set_device) only where CUDA is, so the same file trains on CPU in tests.
# Not a difference: logging_steps is the config's; TRL's SFTConfig defaults it to 10 (not
# transformers' 500), so by default a log line comes every 10 steps without forcing it.
import json
import logging
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

logger = logging.getLogger(__name__)
logging.basicConfig(
    level=logging.DEBUG if os.environ.get("DEBUG_MODE", "false").lower() == "true" else logging.INFO,
    format="%(levelname)s %(asctime)s %(filename)s:%(lineno)d] %(message)s",
    datefmt="%m-%d %H:%M:%S",
)

PREFIX = "aks-finetune-progress "
MARKER = "aks-finetune-checkpoint.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def number(value):
    """A float for a progress line: non-finite as text (JSON has no NaN); None stays None."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def report(event, **fields):
    """Prints one progress line. Fields that are None are left out (start keeps its nulls)."""
    keep_null = {"resumedFromStep", "checkpoint"} if event == "start" else set()
    body = {"event": event, **{k: v for k, v in fields.items() if v is not None or k in keep_null}}
    print(PREFIX + json.dumps(body, separators=(",", ":"), allow_nan=False), flush=True)


def marker_step(folder):
    """The step a checkpoint's marker names, or None when it has none (or one that does not parse)."""
    try:
        with open(os.path.join(folder, MARKER)) as f:
            step = json.load(f).get("step")
        return step if isinstance(step, int) else None
    except (OSError, ValueError, AttributeError):
        return None


def checkpoints(output_dir):
    """(complete, incomplete) checkpoint folders of output_dir, each as (step, name), oldest first."""
    complete, incomplete = [], []
    names = os.listdir(output_dir) if os.path.isdir(output_dir) else []
    for name in names:
        match = CHECKPOINT.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            step = int(match.group(1))
            ok = marker_step(os.path.join(output_dir, name)) == step
            (complete if ok else incomplete).append((step, name))
    return sorted(complete), sorted(incomplete)


def fsync_tree(folder):
    """Flushes a folder's files and the folder itself to disk: a lost node keeps what was synced."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_marker(folder, step):
    tmp = os.path.join(folder, MARKER + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"step": step}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, MARKER))
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WithoutLabels:
    """KAITO's collator, given the samples without TRL's labels column (it derives labels itself)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features):
        return self.collator([{k: v for k, v in f.items() if k != "labels"} for f in features])


class ProgressAndCheckpoints(TrainerCallback):
    """Prints progress lines (main process only) and asks the Trainer for a checkpoint every `every_minutes`."""

    def __init__(self, every_minutes, resumed_from):
        self.every_seconds = every_minutes * 60
        self.resumed_from = resumed_from
        self.started = False
        self.start_step = 0
        self.last_save = time.monotonic()
        self.last_log = (time.monotonic(), 0)

    def _start(self, state):
        # Reported once the Trainer has restored global_step from the checkpoint: transformers 5.6
        # calls on_train_begin before it loads the checkpoint's state, 5.17 after.
        if self.started:
            return
        self.started = True
        self.start_step = state.global_step
        now = time.monotonic()
        self.last_save = now
        self.last_log = (now, state.global_step)
        if state.is_world_process_zero:
            report("start", step=state.global_step, totalSteps=state.max_steps, resumedFromStep=self.resumed_from,
                   checkpoint=f"checkpoint-{self.resumed_from}" if self.resumed_from is not None else None)

    def on_step_begin(self, args, state, control, **kwargs):
        self._start(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._start(state)  # a resumed attempt with no step left to train

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # KAITO's EmptyCacheCallback
        # Not at the last step: the adapter is saved at the output root right after.
        if time.monotonic() - self.last_save >= self.every_seconds and state.global_step < state.max_steps:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        # Called once transformers has written checkpoint-<step> and rotated the old ones.
        self.last_save = time.monotonic()
        name = f"checkpoint-{state.global_step}"
        folder = os.path.join(args.output_dir, name)
        if state.is_world_process_zero and os.path.isdir(folder):
            fsync_tree(folder)
            write_marker(folder, state.global_step)
            report("checkpoint", step=state.global_step, checkpoint=name)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero:
            return
        common = {"step": state.global_step, "totalSteps": state.max_steps, "epoch": number(logs.get("epoch", state.epoch))}
        if "loss" in logs:
            now, (then, then_step) = time.monotonic(), self.last_log
            self.last_log = (now, state.global_step)
            steps, seconds = state.global_step - then_step, now - then
            steps_per_second = steps / seconds if steps > 0 and seconds > 0 else None
            samples_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
            report("log", **common, loss=number(logs["loss"]), learningRate=number(logs.get("learning_rate")),
                   gradNorm=number(logs.get("grad_norm")),
                   samplesPerSecond=steps_per_second * samples_per_step if steps_per_second else None,
                   stepsPerSecond=steps_per_second)
        if "eval_loss" in logs:
            report("eval", **common, evalLoss=number(logs["eval_loss"]))


def main():
    parsed_configs = parse_configs(os.environ.get("YAML_FILE_PATH", "/mnt/config/training_config.yaml"))
    model_config: ModelConfig = parsed_configs.get("ModelConfig")
    bnb_config: BitsAndBytesConfig = parsed_configs.get("QuantizationConfig")
    ext_lora_config: ExtLoraConfig = parsed_configs.get("LoraConfig")
    ta_args: SFTConfig = parsed_configs.get("TrainingArguments")
    ds_config: DatasetConfig = parsed_configs.get("DatasetConfig")
    dc_args: ExtDataCollator = parsed_configs.get("DataCollator")

    # PartialState, not Accelerator(): the Trainer creates its own (see KAITO's fine_tuning.py).
    dist_state = PartialState()
    model_args = model_config.get_model_args()
    if dist_state.distributed_type != "NO":
        model_args["device_map"] = {"": dist_state.process_index}

    bnb_config = BitsAndBytesConfig(**asdict(bnb_config))
    enable_qlora = bnb_config.is_quantizable()

    tokenizer = AutoTokenizer.from_pretrained(**model_config.get_tokenizer_args())
    if not tokenizer.pad_token:
        tokenizer.pad_token = tokenizer.eos_token
    chat_template = load_chat_template(model_config.chat_template)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if dc_args.mlm and tokenizer.mask_token is None:
        logger.warning("This tokenizer has no mask token, which masked language modeling needs: setting mlm=False")
        dc_args.mlm = False
    dc_args.tokenizer = tokenizer

    model = AutoModelForCausalLM.from_pretrained(**model_args, quantization_config=bnb_config if enable_qlora else None)
    logger.info("Model Loaded")
    if enable_qlora:
        model = prepare_model_for_kbit_training(model)
        logger.info("QLoRA Enabled")
    if not ext_lora_config:
        raise ValueError("LoraConfig must be specified")
    model = get_peft_model(model, LoraConfig(**asdict(ext_lora_config)))
    model.config.use_cache = False  # the cache is only for generation
    model.print_trainable_parameters()

    dm = DatasetManager(ds_config)
    dm.load_data()
    if not dm.get_dataset():
        raise ValueError("Unable to load the dataset.")
    if ds_config.shuffle_dataset:
        dm.shuffle_dataset(seed=ds_config.shuffle_seed)
    train_dataset, eval_dataset = dm.split_dataset()
    ta_args.dataset_text_field = dm.dataset_text_field
    ta_args.save_total_limit = int(os.environ.get("AKS_FINETUNE_CHECKPOINTS_KEPT", "2"))
    ta_args.logging_nan_inf_filter = False  # a NaN loss is logged as NaN

    complete, incomplete = checkpoints(ta_args.output_dir)
    if dist_state.is_main_process:
        for _, name in incomplete:
            shutil.rmtree(os.path.join(ta_args.output_dir, name), ignore_errors=True)
            report("checkpoint-skipped", checkpoint=name, reason="incomplete")
    dist_state.wait_for_everyone()
    resumed_from = complete[-1][0] if complete else None
    callback = ProgressAndCheckpoints(float(os.environ.get("AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES", "15")), resumed_from)

    if torch.cuda.is_available():
        torch.cuda.set_device(dist_state.process_index)
        torch.cuda.empty_cache()
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        args=ta_args,
        data_collator=WithoutLabels(dc_args),
        callbacks=[callback],
    )
    result = trainer.train(
        resume_from_checkpoint=os.path.join(ta_args.output_dir, f"checkpoint-{resumed_from}") if resumed_from is not None else None
    )
    # transformers' train_loss is this process's loss sum over the global step, too low after a
    # resume: the mean over the steps this process trained.
    train_loss, trained = result.metrics.get("train_loss", result.training_loss), trainer.state.global_step - callback.start_step
    if train_loss is not None and trained > 0:
        train_loss = train_loss * trainer.state.global_step / trained
    if dist_state.is_main_process:
        report("done", step=trainer.state.global_step, totalSteps=trainer.state.max_steps, trainLoss=number(train_loss))

    os.makedirs(ta_args.output_dir, exist_ok=True)
    trainer.model.save_pretrained(ta_args.output_dir)  # only the adapter weights, at the output root, as KAITO
    trainer.save_state()  # trainer_state.json (the main process writes it)

    # Written last, as KAITO writes it: the sign that fine-tuning completed.
    timestamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    logger.info("Fine-Tuning completed\n")
    with open(os.path.join(ta_args.output_dir, "fine_tuning_completed.txt"), "w") as f:
        f.write(f"Fine-Tuning completed at {timestamp}\n")


if __name__ == "__main__":
    main()
