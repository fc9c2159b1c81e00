#!/usr/bin/env bash
# Every GPU check of prunelab in one run, for a session lent the GPU machine (one H200):
# the exactness tests on CUDA, then `prunelab bench` figures for the README and the H200 targets.
#   exact         the fast grad_norm/input_grad_norm against a per-sample loop, float64 on CUDA
#   resnet18      bench scores, ResNet18 on CIFAR-10 tiled to 50,000 (grad_norm <= 10 s, >= 50x naive)
#   mnist         bench scores, MNIST cnn, all 60,000
#   train-mnist   bench train, MNIST cnn, against a DataLoader loop
#   train-cifar   bench train, CIFAR-10 ResNet18, bf16 autocast (>= 30,000 images/s, a 50k epoch <= 2 s)
#   train-cifar-compiled   the same with torch.compile
# Each step has its own time limit (together 560 s) and writes $OUT/<step>.json and .log as it
# finishes, so a step that fails or runs out of time still leaves the others'; summary.txt comes last.
#
# Here first: bash scripts/prepare_gpu_check.sh (data and wheels into device-data/), then with
# the device tool: run(command='bash scripts/gpu_check.sh', carry=['device-data'], timeout_s=590).
# PRUNELAB_CHECK_DEVICE=cpu PRUNELAB_CHECK_QUICK=1 runs it in small on a CPU (tests/test_gpu_check.py).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/out/gpu-check}
CARRIED=${PRUNELAB_CHECK_CARRIED:-$ROOT/device-data}
DATA=${PRUNELAB_CHECK_DATA:-$CARRIED/data}
DEVICE=${PRUNELAB_CHECK_DEVICE:-cuda}
QUICK=${PRUNELAB_CHECK_QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if compgen -G "$CARRIED/wheels/*.whl" >/dev/null; then  # packages the GPU image lacks
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/prunelab-site "$CARRIED"/wheels/*.whl || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/prunelab-site
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ -f "$DATA/cifar10-subset.npz" ] || { echo "no data in $DATA: run scripts/prepare_gpu_check.sh here first" >&2; exit 2; }
CIFAR="npz:$DATA/cifar10-subset.npz"

{ date -u; nvidia-smi 2>&1 | head -15; "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
  > "$OUT/machine.txt" 2>&1

# step NAME LIMIT_S COMMAND...: stdout to NAME.json (NAME.log for pytest), stderr to NAME.log
step() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS out="$OUT/$name.json"
  [ "$1" = "-m" ] && [ "$2" = "pytest" ] && out="$OUT/$name.log"
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$PY" "$@" > "$out" 2>> "$OUT/$name.log"
  local rc=$?
  echo "$name rc=$rc in $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
  [ $rc -eq 0 ] || tail -5 "$OUT/$name.log"
}

if [ "$QUICK" = 1 ]; then
  exact_k="match_per_sample_loop and mlp"
  resnet=(--samples 10 --tile-to 20 --batch-size 10 --rounds 1 --no-memory)
  mnist=(--dataset mnist --samples 300 --rounds 1 --no-memory)
  train_mnist=(--samples 512) train_cifar=(--samples 32 --batch-size 16)
else
  exact_k="(match or exact or inplace) and not forgetting"
  resnet=(--tile-to 50000 --rounds 1 --no-memory)  # memory probes: a fresh process each, a minute in all
  mnist=(--rounds 1 --no-memory)
  train_mnist=() train_cifar=(--samples 20000 --batch-size 256)
fi

PRUNELAB_TEST_DEVICE=$DEVICE PRUNELAB_SHARED_DATA=$DATA PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 \
  step exact 80 -m pytest -q -p no:cacheprovider tests/engine/scoring/test_scoring.py -k "$exact_k"
step resnet18 220 -m engine.cli bench scores --dataset "$CIFAR" --model resnet18 --device "$DEVICE" --json "${resnet[@]}"
step mnist 60 -m engine.cli bench scores --data-dir "$DATA" --device "$DEVICE" --json "${mnist[@]}"
step train-mnist 40 -m engine.cli bench train --data-dir "$DATA" --device "$DEVICE" --json "${train_mnist[@]}"
step train-cifar 60 -m engine.cli bench train --dataset "$CIFAR" --device "$DEVICE" --json "${train_cifar[@]}"
step train-cifar-compiled 100 -m engine.cli bench train --dataset "$CIFAR" --device "$DEVICE" --compile --json \
  "${train_cifar[@]}"

"$PY" "$ROOT/scripts/gpu_check_summary.py" "$OUT" | tee "$OUT/summary.txt"
