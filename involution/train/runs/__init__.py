"""The run folder and its ``results.json``: the one owner of that format.

Every training command writes into a run folder
``<trainer.default_root_dir>/<run name>/<version>/`` (the version is the start
time, see :func:`new_version_folder`)::

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
from involution.train.runs.reader import (
    Run,
    export_runs,
    export_weights,
    find_runs,
    latest_run,
    model_label,
    options_for,
    read_metrics,
)
from involution.train.runs.record import (
    METRICS_FILE,
    RESULTS_FILE,
    WEIGHTS_FILE,
    RunRecordError,
    RunResults,
    machine_description,
    new_version_folder,
    newest_version_folder,
    run_folder_of_checkpoint,
    trainer_run_folder,
    write_atomically,
)
from involution.train.runs.summary import RunSummary

__all__ = [
    "RESULTS_FILE", "METRICS_FILE", "WEIGHTS_FILE", "RunResults", "RunRecordError", "Run", "RunSummary",
    "trainer_run_folder", "run_folder_of_checkpoint", "new_version_folder", "newest_version_folder",
    "write_atomically", "machine_description",
    "read_metrics", "find_runs", "latest_run", "export_runs", "export_weights", "model_label",
    "options_for",
]
