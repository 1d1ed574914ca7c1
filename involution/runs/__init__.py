"""The run folder and its ``results.json``: the one owner of that format.

Every training command writes into a run folder
``<trainer.default_root_dir>/<run name>/<version>/`` (the version is the start
time, see :func:`new_run_dir`)::

    results.json          what the run recorded: a RunResults (below)
    metrics.csv           Lightning's CSV log, one row per logging event
    config.yaml           the command's full configuration
    checkpoints/best.ckpt, checkpoints/last.ckpt
    evaluations/<time>-<command>/   the files of each later validate/test/predict

:class:`RunSummary` (a Lightning callback) writes ``results.json``;
:class:`Run`, :func:`find_runs` and :func:`read_metrics` read run folders
back. Both sides go through :class:`RunResults`, so its fields are the only
place where the keys of ``results.json`` are spelled.
"""
from .reader import Run, export_runs, export_weights, find_runs, latest_run, model_label, read_metrics
from .record import (
                     DATA_LABELS,
                     METRICS_FILE,
                     RESULTS_FILE,
                     WEIGHTS_FILE,
                     RunResults,
                     find_run_dir,
                     machine_description,
                     new_run_dir,
                     run_folder,
                     write_atomically,
)
from .summary import RunSummary

__all__ = [
    "RESULTS_FILE", "METRICS_FILE", "WEIGHTS_FILE", "DATA_LABELS", "RunResults", "Run", "RunSummary",
    "run_folder", "find_run_dir", "new_run_dir", "write_atomically", "machine_description",
    "read_metrics", "find_runs", "latest_run", "export_runs", "export_weights", "model_label",
]
