#!/usr/bin/env bash
# Optional GPU check (needs CUDA): the product's trainer entrypoint (trainer/aks_finetune_trainer.py)
# trains with QLoRA as KAITO's qlora template asks (QuantizationConfig: load_in_4bit, nf4,
# bnb_4bit_compute_dtype bfloat16, double quant; bfloat16 weights; bf16 training, SFTConfig's
# default), is killed with SIGKILL after a checkpoint, finds a half-written checkpoint newer than
# its newest complete one, and resumes to the end. What it prints and leaves is written under
# $OUT/qlora-trainer/, to be recorded as a fixture next to test/fixtures/peft-trainer-output/:
#   attempt-1.stdout, attempt-1.stderr   the killed attempt
#   attempt-2.stdout, attempt-2.stderr   the resumed one
#   listing.txt                          every file of the output folder, with its size
#   summary.json                         versions, GPU, the kill and resume steps, the adapter's tensors
# It builds the same tiny Llama-shaped base and dataset as test/real-trainer.test.ts
# (test/fixtures/real-trainer/make_tiny_model.py); nothing is downloaded.
#
# Needs, on the GPU machine (which may have no network):
# - a Python with torch, transformers, peft, trl, accelerate, datasets and bitsandbytes: $PYTHON
#   (default python3), or WHEELS=<folder of wheels> to install trainer/requirements-cpu-test.txt
#   plus bitsandbytes from that folder into a fresh venv (pip install --no-index --find-links);
#   fill the folder elsewhere with `pip download -d <folder> -r trainer/requirements-cpu-test.txt bitsandbytes==0.46.1`
#   (KAITO v0.11.0's image pins bitsandbytes 0.46.1);
# - KAITO's tuning modules (cli.py, parser.py, dataset.py): KAITO_TUNING_DIR, default
#   .tools/kaito-tuning, else Go's module cache at the KAITO release scripts/kaito-render pins. To
#   carry them to a machine without Go:
#   cp -r "$(go env GOMODCACHE)/github.com/kaito-project/kaito@v0.11.0/presets/workspace/tuning/text-generation" .tools/kaito-tuning
#
# Run: OUT=/tmp/out bash scripts/gpu-checks/qlora-trainer.sh   (about a minute on one GPU)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT_DIR="${OUT:?set OUT to the folder the results go to}/qlora-trainer"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/qlora-trainer.XXXXXX")"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
log() { printf '[qlora-trainer] %s\n' "$*"; }

if [ -n "${WHEELS:-}" ]; then
  log "installing from $WHEELS into $WORK/venv"
  "$PY" -m venv "$WORK/venv"
  "$WORK/venv/bin/python" -m pip install -q --no-index --find-links "$WHEELS" -r "$ROOT/trainer/requirements-cpu-test.txt" bitsandbytes
  PY="$WORK/venv/bin/python"
fi

if [ -z "${KAITO_TUNING_DIR:-}" ]; then
  if [ -f "$ROOT/.tools/kaito-tuning/parser.py" ]; then
    KAITO_TUNING_DIR="$ROOT/.tools/kaito-tuning"
  elif command -v go >/dev/null 2>&1; then
    kaito_version="$(sed -n 's#^[[:space:]]*github.com/kaito-project/kaito \(v[^ ]*\).*#\1#p' "$ROOT/scripts/kaito-render/go.mod")"
    KAITO_TUNING_DIR="$(go env GOMODCACHE)/github.com/kaito-project/kaito@$kaito_version/presets/workspace/tuning/text-generation"
  fi
fi
[ -f "${KAITO_TUNING_DIR:-}/parser.py" ] || { log "KAITO's tuning modules not found (KAITO_TUNING_DIR)"; exit 1; }
export KAITO_TUNING_DIR

"$PY" "$ROOT/test/fixtures/real-trainer/make_tiny_model.py" "$WORK/weights" "$WORK/data" >/dev/null

# The driver: writes the config, runs the two attempts, records what they left.
"$PY" - "$ROOT" "$WORK" "$OUT_DIR" <<'PY'
import json, os, signal, subprocess, sys

import yaml

root, work, out = sys.argv[1:4]
results = os.path.join(work, "results")
max_steps, kill_after = 30, 10
config = {"training_config": {
    # KAITO's qlora template (domain/training-config.ts), with the tiny base's paths and modules.
    "ModelConfig": {"pretrained_model_name_or_path": os.path.join(work, "weights"), "torch_dtype": "bfloat16",
                    "local_files_only": True, "device_map": "auto"},
    "QuantizationConfig": {"load_in_4bit": True, "load_in_8bit": False, "bnb_4bit_quant_type": "nf4",
                           "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_use_double_quant": True},
    "LoraConfig": {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    "TrainingArguments": {"output_dir": results, "ddp_find_unused_parameters": False, "save_strategy": "no",
                          "per_device_train_batch_size": 2, "max_steps": max_steps, "eval_strategy": "epoch",
                          "logging_steps": 1, "report_to": "none"},
    "DataCollator": {"mlm": True},
    "DatasetConfig": {"shuffle_dataset": True, "shuffle_seed": 7, "train_test_split": 0.8},
}}
config_path = os.path.join(work, "training_config.yaml")
with open(config_path, "w") as f:
    yaml.safe_dump(config, f)  # quotes "no", which YAML 1.1 would read as False
env = {**os.environ, "YAML_FILE_PATH": config_path, "DATASET_FOLDER_PATH": os.path.join(work, "data"),
       "HF_HOME": os.path.join(work, "hf-home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "AKS_FINETUNE_CHECKPOINT_EVERY_MINUTES": "0", "AKS_FINETUNE_CHECKPOINTS_KEPT": "2"}
entrypoint = os.path.join(root, "trainer", "aks_finetune_trainer.py")
prefix = "aks-finetune-progress "


def attempt(n, kill=False):
    """Runs the entrypoint; with kill, SIGKILLs it at the first log line after a checkpoint at kill_after or later."""
    reports = []
    with open(os.path.join(out, f"attempt-{n}.stdout"), "w") as stdout, open(os.path.join(out, f"attempt-{n}.stderr"), "w") as stderr:
        proc = subprocess.Popen([sys.executable, entrypoint], cwd=work, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        armed = False
        for line in proc.stdout:
            stdout.write(line)
            if line.startswith(prefix):
                report = json.loads(line[len(prefix):])
                reports.append(report)
                if kill and report["event"] == "checkpoint" and report["step"] >= kill_after:
                    armed = True
                elif kill and armed and report["event"] == "log":
                    proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode, reports


def complete_checkpoints():
    steps = []
    for name in os.listdir(results):
        if name.startswith("checkpoint-"):
            try:
                with open(os.path.join(results, name, "aks-finetune-checkpoint.json")) as f:
                    if json.load(f)["step"] == int(name.split("-")[1]):
                        steps.append(int(name.split("-")[1]))
            except (OSError, ValueError, KeyError):
                pass
    return sorted(steps)


code1, first = attempt(1, kill=True)
newest = complete_checkpoints()[-1]
fake = f"checkpoint-{max(int(n.split('-')[1]) for n in os.listdir(results) if n.startswith('checkpoint-')) + 1}"
os.makedirs(os.path.join(results, fake))
with open(os.path.join(results, fake, "adapter_model.safetensors"), "wb") as f:
    f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # half-written: no marker
code2, second = attempt(2)

with open(os.path.join(out, "listing.txt"), "w") as f:
    for dirpath, _, files in sorted(os.walk(results)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            f.write(f"{os.path.relpath(path, results)} {os.path.getsize(path)}\n")

import bitsandbytes, peft, torch, transformers, trl  # noqa: E402
from safetensors import safe_open  # noqa: E402

tensors = {}
adapter = os.path.join(results, "adapter_model.safetensors")
if os.path.exists(adapter):
    with safe_open(adapter, "pt") as f:
        tensors = {k: {"shape": list(f.get_slice(k).get_shape()), "dtype": str(f.get_tensor(k).dtype)} for k in f.keys()}
logs = lambda reports: [r["step"] for r in reports if r["event"] == "log"]  # noqa: E731
summary = {
    "versions": {m.__name__: m.__version__ for m in (torch, transformers, peft, trl, bitsandbytes)},
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "attempt1": {"returncode": code1, "lastLogStep": (logs(first) or [None])[-1], "newestCompleteCheckpoint": newest},
    "attempt2": {"returncode": code2, "start": next((r for r in second if r["event"] == "start"), None),
                 "skipped": [r for r in second if r["event"] == "checkpoint-skipped"], "fakeCheckpoint": fake,
                 "firstLogStep": (logs(second) or [None])[0], "done": next((r for r in second if r["event"] == "done"), None)},
    "qloraEnabled": "QLoRA Enabled" in open(os.path.join(out, "attempt-2.stderr")).read(),
    "files": sorted(os.listdir(results)),
    "adapterConfig": json.load(open(os.path.join(results, "adapter_config.json"))) if os.path.exists(os.path.join(results, "adapter_config.json")) else None,
    "tensors": tensors,
}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps({k: summary[k] for k in ("versions", "device", "attempt1", "attempt2", "qloraEnabled")}))
ok = (code1 == -signal.SIGKILL and code2 == 0 and summary["qloraEnabled"]
      and summary["attempt2"]["start"]["resumedFromStep"] == newest
      and any(s["checkpoint"] == fake for s in summary["attempt2"]["skipped"])
      and summary["attempt2"]["firstLogStep"] == newest + 1 and summary["attempt2"]["done"]["step"] == max_steps)
print("qlora-trainer:", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
