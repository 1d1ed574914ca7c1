#!/usr/bin/env bash
# The workbook's main job, on the built-in sample set (no download needed):
# build a RedNet and print its size table, then execute the four notebooks in
# order, in place (normal mode): they explain involution, visualise a trained
# RedNet's kernels, train and test RedNet-26 and ResNet-26 (notebook 03, the
# sample-set training run), write the slide figures and data into slides/ and
# build slides/deck.html. About a quarter of an hour on a laptop CPU.
# Installs what it needs into ./.venv on first use.
#
# INVOLUTION_DATA_ROOT=auto ./run.sh  uses Caltech-256 instead when it is in
# data/caltech256 or can be downloaded (1.2 GB; 150 epochs: use a GPU).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
export INVOLUTION_DATA_ROOT=${INVOLUTION_DATA_ROOT:-sample}
export INVOLUTION_FAST=0
.venv/bin/python -m involution demo
for notebook in notebooks/0[1-4]_*.ipynb; do
  echo "Executing ${notebook} ..."
  start=$SECONDS
  .venv/bin/jupyter nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.timeout=-1 --log-level=WARN "${notebook}"
  echo "  done in $((SECONDS - start)) s"
done
.venv/bin/python -m involution.deck
echo "Notebooks executed in place (notebooks/), runs in runs/, figures in slides/figures/, deck: slides/deck.html"
