#!/usr/bin/env bash
# The workbook's main job, on the built-in sample set (no download needed):
# build a RedNet and print its size table, then train and test RedNet-26 on the
# sample set. Installs what it needs into ./.venv on first use.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
.venv/bin/python -m involution demo
.venv/bin/python -m involution fit --config configs/quick_sample.yaml
run=$(ls -td runs/quick_sample/*/ | head -n 1)
.venv/bin/python -m involution test --config configs/quick_sample.yaml --ckpt_path "${run}checkpoints/best.ckpt"
echo "Results of the sample-set run (NOT Caltech-256): ${run}results.json"
