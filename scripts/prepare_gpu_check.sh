#!/usr/bin/env bash
# Run here (not on the GPU machine): gathers what scripts/gpu_check.sh needs there into
# device-data/ (git-ignored), which the device tool's `carry` takes along (64 MiB in all):
#   - the data: the four MNIST .gz files and the CIFAR-10 subset (about 46 MB);
#   - wheels of the packages the GPU image lacks (pydantic and its needs; the image has
#     torch, numpy, click, rich and pytest), for its Python 3.12, in this venv's versions.
# Usage: bash scripts/prepare_gpu_check.sh [SHARED_DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
[ -f "$DATA/cifar10-subset.npz" ] && [ -d "$DATA/MNIST/raw" ] || { echo "no MNIST/raw or cifar10-subset.npz in $DATA" >&2; exit 2; }

rm -rf device-data
mkdir -p device-data/data/MNIST/raw device-data/wheels
cp "$DATA"/MNIST/raw/*.gz device-data/data/MNIST/raw/
cp "$DATA"/cifar10-subset.npz device-data/data/

pins=$("$PY" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in
               ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")))
PY
)
platforms=""
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64; do
  platforms="$platforms --platform $p"
done
# shellcheck disable=SC2086  # word splitting of the lists is meant
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
  -d device-data/wheels $pins

du -sh device-data
echo "next, with the device tool: run(command='bash scripts/gpu_check.sh', carry=['device-data'], timeout_s=590)"
