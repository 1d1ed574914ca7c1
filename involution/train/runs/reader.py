"""The readers of run folders: :class:`Run`, :func:`find_runs`, :func:`read_metrics`, copies for the deck."""
from __future__ import annotations

import csv
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch

from involution.data.constants import DATA_KINDS
from involution.models.registry import model_info
from involution.train.runs.record import (
    METRICS_FILE,
    RESULTS_FILE,
    WEIGHTS_FILE,
    RunRecordError,
    RunResults,
    write_atomically,
)


def read_metrics(path: str | os.PathLike) -> dict[str, list[float]]:
    """Per-epoch metrics from a run's Lightning ``metrics.csv``.

    Lightning writes one row per logging event, with most columns empty;
    this collapses them to one value per epoch and column (the last one
    logged, NaN where a column was never logged that epoch). Returns
    ``{"epoch": [0, 1, ...], "val/top1": [...], ...}`` for the epoch-level
    columns (``train/loss_epoch``, ``train/top1``, ``val/loss``, ``val/top1``,
    ...; ``test/*`` too when the run was tested).
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}")
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    by_epoch: dict[int, dict[str, float]] = {}
    columns: list[str] = []
    for row in rows:
        if not row.get("epoch"):
            continue
        epoch = int(float(row["epoch"]))
        for key, value in row.items():
            if key in ("epoch", "step") or key.endswith("_step") or key.startswith(
                    ("kernels/", "lr-")) or value in (None, ""):
                continue
            if key not in columns:
                columns.append(key)
            by_epoch.setdefault(epoch, {})[key] = float(value)
    epochs = sorted(by_epoch)
    metrics = {"epoch": [float(e) for e in epochs]}
    for key in sorted(columns):
        metrics[key] = [by_epoch[e].get(key, math.nan) for e in epochs]
    return metrics


def model_label(name: str) -> str:
    """``"rednet26"`` -> ``"RedNet-26"``, from the model's registry record."""
    return model_info(name).label


# Settings a model accepts that do not change its weights' shapes or values: not needed to rebuild it.
_NOT_ARCHITECTURE = ("drop_rate", "recompute")
# Lightning's precision settings, as a reader of a run's machine line says them.
PRECISION_WORDS = {"32-true": "float32", "32": "float32", "bf16-mixed": "bfloat16 mixed precision",
                   "16-mixed": "float16 mixed precision", "64-true": "float64"}


def options_for(model_name: str, settings: Mapping) -> dict:
    """Of a run's model settings (a recipe's or a record's ``model`` section), those that build
    ``model_name``'s network: the options its registry record accepts, where set."""
    accepted = set(model_info(model_name).options) - set(_NOT_ARCHITECTURE)
    return {key: value for key, value in settings.items() if key in accepted and value is not None}


@dataclass
class Run:
    """One run folder with its :class:`RunResults`: ``<runs>/<name>/<version>/``."""

    path: Path
    results: RunResults = field(repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        return cls(Path(path), RunResults.read(path))

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return self.results.model

    @property
    def label(self) -> str:
        return model_label(self.model)

    @property
    def model_options(self) -> dict:
        """The options the run built its model with (``planes``, ``small_input``...): pass them to
        ``create_model`` to rebuild the same network."""
        return options_for(self.model, (self.results.config or {}).get("model") or {})

    @property
    def kind(self) -> str:
        """The kind of data it trained on: ``"sample"``, ``"shapes"``, ``"caltech256"`` or ``"folder"``."""
        # A run that stopped before its data was set up recorded none: claim no data set.
        return (self.results.dataset or {}).get("kind", "folder")

    @property
    def is_sample_set(self) -> bool:
        return self.kind == "sample"

    @property
    def data_label(self) -> str:
        return DATA_KINDS[self.kind].label

    @property
    def seed(self) -> int | None:
        return self.results.seed

    @property
    def image_size(self) -> int | None:
        return (self.results.dataset or {}).get("image_size")

    @property
    def finished(self) -> bool:
        """Whether a fit ended in this folder (an evaluation-only folder has no epochs)."""
        return self.results.epochs_trained is not None

    @property
    def tested(self) -> bool:
        return self.results.test_top1 is not None

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @property
    def weights_file(self) -> Path:
        """The committed float16 state_dict beside an exported run (see :func:`export_runs`)."""
        return self.path / WEIGHTS_FILE

    def metrics(self) -> dict[str, list[float]]:
        return read_metrics(self.path / METRICS_FILE)

    def machine(self) -> str:
        """Where it ran, in words: ``"AMD EPYC, 2 CPU threads, no GPU, bfloat16 mixed precision"``."""
        machine = self.results.machine or {}
        gpu = machine.get("gpu")
        arithmetic = PRECISION_WORDS.get(machine.get("precision"), machine.get("precision"))
        return (f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cpu_threads', '?')} CPU "
                f"threads, {'GPU ' + gpu if gpu else 'no GPU'}" + (f", {arithmetic}" if arithmetic else ""))

    def summary(self) -> str:
        """``"RedNet-26 (seed 0) trained for 8 epochs at 64px on the shapes set (offline), not Caltech-256"``."""
        epochs = self.results.epochs_trained if self.finished else "?"
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return (f"{self.label}{seed} trained for {epochs} epoch{'' if epochs == 1 else 's'} at "
                f"{self.image_size}px on the {self.data_label}")

    def describe(self) -> str:
        """The summary, with the parameter count, the machine and the run's name."""
        return (f"{self.summary()} ({self.results.params:,} parameters); machine: "
                f"{self.machine()}; run {self.name}/{self.version}")


def find_runs(runs_dir: str | os.PathLike, name: str | Sequence[str] | None = None,
              model: str | None = None, sample_set: bool | None = None,
              tested: bool | None = None, kind: str | None = None) -> list[Run]:
    """Finished runs under ``runs_dir`` (those with a results.json), newest first.

    A run whose results.json cannot be read is left out with a warning that names the file.

    Args:
        name: the run name(s) (``--run_name``, or the config's name) to look in.
        model: keep runs of this model (``"rednet26"``), or of a family
            (``"rednet"``).
        sample_set: keep only sample-set runs (True) or only other runs (False).
        kind: keep only runs on this kind of data (``"shapes"``, ``"caltech256"``, ...).
        tested: keep only runs with (True) or without (False) test results.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    names = [name] if isinstance(name, str) else list(name) if name else None
    folders = [runs_dir / n for n in names] if names else sorted(runs_dir.iterdir())
    wanted = {"is_sample_set": sample_set, "kind": kind, "tested": tested}
    runs, unreadable = [], []
    for folder in folders:
        if not folder.is_dir():
            continue
        for version in folder.iterdir():
            if not (version / RESULTS_FILE).is_file():
                continue
            try:
                run = Run.load(version)
            except RunRecordError as error:  # one broken record must not hide every other run
                unreadable.append(str(error))
                continue
            if not run.finished:  # a validate/test-only folder
                continue
            if model is not None and model not in (run.model, model_info(run.model).family):
                continue
            if any(value is not None and getattr(run, key) != value for key, value in wanted.items()):
                continue
            runs.append(run)
    if unreadable:
        warnings.warn(f"{len(unreadable)} run(s) under {runs_dir} were left out: " + "; ".join(unreadable),
                      UserWarning, stacklevel=2)
    # Versions are start times (YYYYmmdd-HHMMSS[-n]), so they sort in time order.
    return sorted(runs, key=lambda r: (r.version, r.name), reverse=True)


def latest_run(runs_dir: str | os.PathLike, **filters) -> Run | None:
    """The newest run of :func:`find_runs` with these filters, or None."""
    runs = find_runs(runs_dir, **filters)
    return runs[0] if runs else None


# -- copies --------------------------------------------------------------------------------


def export_weights(run: Run, folder: str | os.PathLike) -> Path:
    """Save ``run``'s best weights as a float16 state_dict ``folder/weights.pt`` (about 2 bytes a parameter).

    Small enough to commit beside the exported run, so that a notebook can show
    a trained model where no run of its own exists (a fresh Colab VM).
    """
    if not run.best_checkpoint.is_file():
        raise FileNotFoundError(f"{run.path} has no checkpoints/best.ckpt to export weights from")
    state = torch.load(run.best_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    weights = {key.removeprefix("model."): value.half() if value.is_floating_point() else value
               for key, value in state.items() if key.startswith("model.")}
    path = Path(folder) / WEIGHTS_FILE
    write_atomically(path, lambda file: torch.save(weights, file))
    return path


def export_runs(runs: Mapping[str, Run], destination: str | os.PathLike) -> dict[str, Path]:
    """Copy each run's results.json and metrics.csv to ``destination/<key>/``.

    The deck and the notebooks' fallbacks read these copies, so they work from
    the committed repository without the (git-ignored) runs. Returns
    ``{key: the folder it was copied to}``.
    """
    destination = Path(destination)
    copied = {}
    for key, run in runs.items():
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"run key {key!r} must be a plain folder name")
        folder = destination / key
        folder.mkdir(parents=True, exist_ok=True)
        for filename in (RESULTS_FILE, METRICS_FILE):
            if (run.path / filename).resolve() != (folder / filename).resolve():
                shutil.copyfile(run.path / filename, folder / filename)
        copied[key] = folder
    return copied
