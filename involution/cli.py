"""``python -m involution fit|validate|test|predict --config configs/NAME.yaml``.

A LightningCLI over :class:`~involution.training.ImageClassifier` and
:class:`~involution.data.Caltech256DataModule`. On top of Lightning's own
behaviour it decides where a run lives and how it is logged:

* every run gets a folder ``<trainer.default_root_dir>/<run_name>/<version>``
  (``run_name`` defaults to the config file's name, ``version`` is the start
  time) holding ``metrics.csv``, ``results.json``, ``config.yaml`` and
  ``checkpoints/best.ckpt`` (best val top-1) and ``checkpoints/last.ckpt``,
  and ``predictions.csv`` after ``predict``;
* given ``--ckpt_path`` inside such a folder, fit resumes that same run
  (same folder, same metrics file, same W&B run) and validate/test/predict
  report into it;
* W&B logs when it is configured (logged in, ``WANDB_API_KEY`` or
  ``WANDB_MODE=offline``); a CSV log is always written as well;
* on a GPU, mixed precision is switched on unless the config sets
  ``trainer.precision``.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from .data import Caltech256DataModule
from .training import (ImageClassifier, KernelStatsMonitor, NonFiniteLossGuard,
                       PredictionWriter, ResumableCSVLogger, RunSummary, wandb_configured)

__all__ = ["InvolutionCLI", "run_cli", "find_run_dir"]


def find_run_dir(ckpt_path: str | os.PathLike | None) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path)
    if path.parent.name == "checkpoints" and path.parent.parent.is_dir():
        return path.parent.parent
    return None


def _new_run_dir(root: Path, run_name: str) -> Path:
    version = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = root / run_name / version, 1
    while candidate.exists():  # two runs started within the same second
        candidate, n = root / run_name / f"{version}-{n}", n + 1
    return candidate


def _checkpoint_epoch(ckpt_path: str | os.PathLike) -> int:
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"]


def _loggers(run_dir: Path, resume_epoch: int | None) -> list:
    csv_logger = ResumableCSVLogger(save_dir=run_dir.parent, name="", version=run_dir.name,
                                    keep_through_epoch=resume_epoch)
    if not wandb_configured():
        print(f"W&B is not configured (no login, WANDB_API_KEY or WANDB_MODE=offline): "
              f"logging to CSV only, in {run_dir}")
        return [csv_logger]
    from .training import start_wandb_logger

    run_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{run_dir.parent.name}-{run_dir.name}")
    wandb_logger = start_wandb_logger(project=os.environ.get("WANDB_PROJECT", "involution"),
                                      name=f"{run_dir.parent.name}/{run_dir.name}", id=run_id,
                                      save_dir=str(run_dir), resume="allow")
    if wandb_logger is None:  # W&B could not start: it has warned, the CSV log goes on
        return [csv_logger]
    # The CSV logger comes first: it defines the run folder and checkpoint place.
    return [csv_logger, wandb_logger]


class InvolutionCLI(LightningCLI):
    def __init__(self, args=None, run: bool = True):
        super().__init__(
            ImageClassifier, Caltech256DataModule, args=args, run=run,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [
                ModelCheckpoint(monitor="val/top1", mode="max", filename="best", save_last=True,
                                enable_version_counter=False),
                LearningRateMonitor(logging_interval="step"),
                KernelStatsMonitor(every_n_steps=50),
                NonFiniteLossGuard(),
                RunSummary(),
                PredictionWriter(),
            ]},
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="Folder name of the run under trainer.default_root_dir "
                                 "(default: the config file's name).")
        parser.set_defaults({"trainer.default_root_dir": "runs"})

    def _run_name(self, config) -> str:
        if config.get("run_name"):
            return config["run_name"]
        config_files = config.get("config") or []
        if config_files:
            return Path(str(config_files[-1])).stem
        return config["model"]["model_name"]

    def instantiate_trainer(self, **kwargs):
        config = self.config[self.subcommand]
        ckpt_path = config.get("ckpt_path")
        run_dir = find_run_dir(ckpt_path)
        resume_epoch = None
        if run_dir is not None and self.subcommand == "fit":
            resume_epoch = _checkpoint_epoch(ckpt_path)
        if run_dir is None:
            run_dir = _new_run_dir(Path(config["trainer"]["default_root_dir"]),
                                   self._run_name(config))
        if config["trainer"].get("logger") in (None, True):
            kwargs["logger"] = _loggers(run_dir, resume_epoch)
        if torch.cuda.is_available() and config["trainer"].get("precision") is None:
            kwargs["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return super().instantiate_trainer(**kwargs)


def run_cli(args: list[str] | None = None) -> InvolutionCLI:
    """Run the CLI with ``args`` (as on the command line) and return it, for notebooks."""
    return InvolutionCLI(args=args)
