#!/usr/bin/env bash
# Installs the Python venv that test/real-trainer.test.ts runs the product's trainer entrypoint
# (trainer/aks_finetune_trainer.py) with, on CPU: .tools/trainer-venv, from PyPI only, the pinned
# versions in trainer/requirements-cpu-test.txt. Downloads go through a pip cache in
# .tools/pip-cache, so a rebuild on the same machine installs without the network.
# Idempotent: skipped when the venv's stamp holds the sha256 of the requirements file's
# requirement lines (comments and blank lines left out); a changed requirement rebuilds the venv
# from scratch.
#
# triton (about 640 MB) is uninstalled after the install: only torch.compile and GPU kernels use
# it, and the test trains on CPU in eager mode. The check after the uninstall imports every library
# and runs a LoRA training step on CPU; if that fails, triton is put back (and this says so).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS_DIR:-.tools}"
case "$TOOLS" in /*) ;; *) TOOLS="$ROOT/$TOOLS" ;; esac
VENV="$TOOLS/trainer-venv"
PIP_CACHE="$TOOLS/pip-cache"
LOGS="$TOOLS/logs"
REQUIREMENTS="$ROOT/trainer/requirements-cpu-test.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"
mkdir -p "$LOGS"

log() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Runs a step with its output in a log; on failure prints the log's tail.
run_logged() {
  local name="$1"; shift
  local logfile="$LOGS/setup-$name.log"
  local started=$SECONDS
  if ! "$@" >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    fail "$name failed (full log: $logfile)"
  fi
  log "$name done in $((SECONDS - started))s"
}

command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON is required: install Python >= 3.10 (with its venv module)"
[ -f "$REQUIREMENTS" ] || fail "$REQUIREMENTS is missing"
wanted="$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  log "trainer venv cached ($VENV)"
  exit 0
fi

started_all=$SECONDS
rm -rf "$VENV"
run_logged trainer-venv "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check --no-input "$@"; }
run_logged trainer-pip-install pip install --cache-dir "$PIP_CACHE" -r "$REQUIREMENTS"

# Imports what the entrypoint and KAITO's modules import, then one LoRA step of a tiny Llama on CPU.
check_cpu_training() {
  "$VENV/bin/python" - <<'PY'
import accelerate, datasets, peft, torch, transformers, trl, yaml  # noqa: F401
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     num_key_value_heads=2, vocab_size=64, max_position_embeddings=32))
model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
ids = torch.randint(0, 64, (2, 16))
loss = model(input_ids=ids, labels=ids).loss
loss.backward()
optimizer.step()
assert torch.isfinite(loss), loss
print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, trl {trl.__version__}: a CPU LoRA step, loss {loss.item():.3f}")
PY
}

triton_version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("triton"))' 2>/dev/null || true)"
if [ -n "$triton_version" ]; then
  run_logged trainer-uninstall-triton pip uninstall -y triton
  if check_cpu_training >"$LOGS/setup-trainer-check.log" 2>&1; then
    log "without triton: $(tail -n 1 "$LOGS/setup-trainer-check.log")"
  else
    tail -n 20 "$LOGS/setup-trainer-check.log" >&2
    log "a CPU training step failed without triton: putting triton $triton_version back"
    run_logged trainer-reinstall-triton pip install --cache-dir "$PIP_CACHE" "triton==$triton_version"
    run_logged trainer-check check_cpu_training
  fi
else
  run_logged trainer-check check_cpu_training
fi

echo "$wanted" > "$STAMP"
log "trainer venv ready in $((SECONDS - started_all))s ($VENV, $(du -sh "$VENV" | cut -f1))"
