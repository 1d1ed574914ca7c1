#!/usr/bin/env bash
# The workbook's main job, offline: build a RedNet and print its size table, then
# execute the notebooks in place, in reading order: they explain involution, train
# RedNet-26 and ResNet-26 on the built-in shapes set (3 seeds each, generated
# offline on first use; NOT Caltech-256), visualise the trained RedNet's kernels
# on held-out test images and re-run the course project's experiments at small
# scale on the shapes set (notebook 04). Last, the appendix notebook writes the
# slide figures and data into slides/ and builds slides/deck.html and
# slides/deck.pdf. Notebooks 02 and 04 print their own measured estimates before
# they train.
# Installs what it needs into ./.venv on first use.
#
# The notebooks choose their data in their settings cell (DATA_ROOT): for
# Caltech-256, set it there (a GPU is strongly advised: 150 epochs per run).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_browser  # the appendix notebook prints the deck to PDF with a headless Chromium
echo "Ready after ${SECONDS} s (install and checks)"
# The notebooks' settings cells decide everything: no variable of ours from the
# caller's shell may change them unseen (INVOLUTION_FAST=1 would make them smoke tests).
unset INVOLUTION_FAST INVOLUTION_DATA_ROOT INVOLUTION_WORKDIR
# Unattended: notebook 03 builds its explorer's widgets only for a person (a widget cell can
# stall nbconvert's executor, which here has no timeout).
export INVOLUTION_BATCH=1
.venv/bin/python -m involution demo
for notebook in notebooks/0[1-9]_*.ipynb notebooks/appendix_*.ipynb; do  # the appendix last: it reads the runs
  echo "Executing ${notebook} ..."
  start=$SECONDS
  # ipc: the kernel talks over local sockets, not TCP (no "without encryption" warning).
  # The socket paths are relative, so nbconvert must run in the notebook's folder, as the kernel does.
  (cd notebooks && ../.venv/bin/jupyter nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.timeout=-1 --KernelManager.transport=ipc --log-level=WARN \
    "$(basename "${notebook}")")
  rm -f notebooks/kernel-ipc-*  # the kernel's socket files, left behind by nbconvert
  echo "  done in $((SECONDS - start)) s"
done
.venv/bin/python -m involution deck
echo "Main job done in ${SECONDS} s"
echo "Notebooks executed in place (notebooks/), runs in runs/, figures in slides/figures/, deck: slides/deck.html and slides/deck.pdf"
