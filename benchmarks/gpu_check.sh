#!/usr/bin/env bash
# The GPU check (see benchmarks/gpu_check.py): run it first on any machine with a
# CUDA GPU. It uses that machine's own Python (set PYTHON to choose another), which
# must have torch, torchvision, triton, lightning, timm and pytest; it installs
# nothing and needs no network. With $OUT set (a folder), the results file is
# copied there too. Extra arguments go to gpu_check.py (--budget SECONDS, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
if [[ -n "${OUT:-}" ]]; then
  args+=(--out "${OUT}")
fi
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "${args[@]}"
