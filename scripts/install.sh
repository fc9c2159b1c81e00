#!/usr/bin/env bash
# Install prunelab into a virtual environment with the PyTorch build that fits this machine:
#   - an NVIDIA GPU (nvidia-smi lists one, or the driver is loaded): a CUDA build, from the default index when the
#     driver runs CUDA 13 (the default torch wheels are CUDA 13 builds), else from PyTorch's index for the newest
#     CUDA the driver runs (cu128, cu126);
#   - no NVIDIA GPU: the CPU-only build from PyTorch's CPU index, so no CUDA wheels (gigabytes) are pulled.
# PyTorch's index is probed first (a few seconds at most); when it cannot be reached, a machine without a GPU takes
# the newest CPU build that pip's configured indexes hold (a mirror: `pip index versions torch` lists "+cpu"
# versions), and otherwise the default index is used; pip gets --timeout/--retries so that no unreachable index
# stalls the install for minutes.
#
# Usage: bash scripts/install.sh [--dev] [--venv DIR] [--cpu | --gpu] [--index URL] [--dry-run]
#   --dev       also the test tools (`.[dev]`), as .ci/run installs them
#   --venv DIR  where the virtual environment goes (default: .venv)
#   --cpu/--gpu skip the detection; --index URL: take torch and torchvision from this index
#   --dry-run   print what it would run (after detecting and probing), and run nothing
# Environment (for tests and mirrors): PYTHON (default python3), PRUNELAB_TORCH_INDEX_BASE (default
# https://download.pytorch.org/whl), PRUNELAB_NVIDIA_PROC (default /proc/driver/nvidia/version),
# PRUNELAB_PROBE_SECONDS (default 5), PRUNELAB_PIP_TIMEOUT (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
base=${PRUNELAB_TORCH_INDEX_BASE:-https://download.pytorch.org/whl}
proc=${PRUNELAB_NVIDIA_PROC:-/proc/driver/nvidia/version}
probe_seconds=${PRUNELAB_PROBE_SECONDS:-5}
pip_timeout=${PRUNELAB_PIP_TIMEOUT:-15}
venv=.venv extras="" mode=auto index="" dry=0
torch_spec=$(sed -n 's/^ *"\(torch[>=<,.0-9]*\)",.*/\1/p' pyproject.toml | head -1)
vision_spec=$(sed -n 's/^ *"\(torchvision[>=<,.0-9]*\)",.*/\1/p' pyproject.toml | head -1)

while [ $# -gt 0 ]; do
    case $1 in
        --dev) extras="[dev]" ;;
        --venv) venv=$2; shift ;;
        --cpu) mode=cpu ;;
        --gpu) mode=gpu ;;
        --index) index=$2; shift ;;
        --dry-run) dry=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "prunelab install: $*" >&2; }
run() {  # print the command; run it unless --dry-run
    echo "+ $*"
    if [ "$dry" = 0 ]; then "$@"; fi
}

# The CUDA version the driver runs ("13.0"), empty without an NVIDIA GPU.
driver_cuda() {
    local out
    if out=$(nvidia-smi 2>/dev/null) && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' <<<"$out" | head -1
        return
    fi
    if [ -r "$proc" ]; then
        echo "unknown"  # the driver is loaded, nvidia-smi is not on PATH: take the default (CUDA) build
    fi
}

# The index for a driver's CUDA version: "" is the default index (CUDA 13 builds).
cuda_index() {
    local major minor
    [ "$1" = unknown ] && return
    major=${1%%.*} minor=${1#*.}
    if [ "$major" -ge 13 ]; then echo ""
    elif [ "$major" -eq 12 ] && [ "$minor" -ge 8 ]; then echo "$base/cu128"
    elif [ "$major" -eq 12 ] && [ "$minor" -ge 6 ]; then echo "$base/cu126"
    else echo "$base/cpu"  # a driver older than CUDA 12.6 runs none of these builds: the CPU build works everywhere
    fi
}

# Whether an index answers within the probe's seconds (curl, else Python).
reachable() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time "$probe_seconds" -o /dev/null "$1/torch/" 2>/dev/null
    else
        "$python" - "$1/torch/" "$probe_seconds" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()
PY
    fi
}

if [ -z "$index" ]; then
    case $mode in
        cpu) cuda="" ;;
        gpu) cuda=$(driver_cuda); cuda=${cuda:-unknown} ;;
        *) cuda=$(driver_cuda) ;;
    esac
    if [ -z "$cuda" ]; then
        index="$base/cpu"
        say "no NVIDIA GPU found: the CPU-only PyTorch build, from $index"
    else
        index=$(cuda_index "$cuda")
        say "NVIDIA GPU found (driver CUDA $cuda): a CUDA PyTorch build, from ${index:-the default index}"
    fi
fi
# The newest CPU build of torch (e.g. "2.13.0+cpu") within the project's range among the indexes pip is already
# configured with (a mirror, find-links), for a machine without a GPU that cannot reach PyTorch's CPU index.
configured_cpu_torch() {
    "$python" -m pip index versions torch --timeout "$pip_timeout" --retries 1 2>/dev/null \
        | sed -n 's/^Available versions: //p' | "$python" -c '
import re, sys
found = [v.strip() for v in sys.stdin.read().split(",") if v.strip().endswith("+cpu")]
def key(v):
    return tuple(int(n) for n in re.findall(r"\d+", v.split("+")[0])[:3])
fits = [v for v in found if (2, 4) <= key(v)[:2] and key(v) <= (2, 14, 1)]
print(max(fits, key=key) if fits else "")'
}

torch_pins=""
if [ -n "$index" ] && ! reachable "$index"; then
    if [ "$index" = "$base/cpu" ] && cpu=$(configured_cpu_torch) && [ -n "$cpu" ]; then
        minor=$(cut -d. -f2 <<<"$cpu")
        torch_pins="torch==$cpu torchvision==0.$((minor + 15)).*"  # torchvision 0.(m+15) goes with torch 2.m
        say "$index did not answer within ${probe_seconds} s: the CPU build torch $cpu that pip's configured" \
            "indexes hold instead"
    else
        say "$index did not answer within ${probe_seconds} s: PyTorch from the default index instead" \
            "(on a machine without a GPU that is a CUDA build of several GB)"
    fi
    index=""
fi

run "$python" -m venv "$venv"
if [ -n "$torch_pins" ]; then
    # shellcheck disable=SC2086  # two requirements, split on purpose
    run "$venv/bin/pip" install --timeout "$pip_timeout" --retries 1 $torch_pins \
        || say "torch ${torch_pins%% *} failed to install: the default index's build comes with the package instead"
elif [ -n "$index" ]; then
    run "$venv/bin/pip" install --index-url "$index" --timeout "$pip_timeout" --retries 1 "$torch_spec" "$vision_spec" \
        || say "PyTorch from $index failed: the default index's build comes with the package instead"
fi
run "$venv/bin/pip" install -e ".$extras"
if [ "$dry" = 0 ]; then
    "$venv/bin/python" -c 'import torch; print("prunelab install: torch", torch.__version__, "CUDA available:",
                                              torch.cuda.is_available())' >&2
fi
