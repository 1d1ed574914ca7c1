"""Settings and helpers shared by the notebooks in ``notebooks/``.

Every notebook opens with one settings cell and one set-up cell::

    wb = workbook.setup()                     # repository, mode, work directory, device
    data = workbook.choose_data(DATA_ROOT, fast=wb.fast)
    print(data.statement)                     # which data every number below comes from

**Fast mode.** ``INVOLUTION_FAST=1`` (the test suite sets it for the notebook
kernels it runs under nbval) makes the notebooks use the built-in sample set,
tiny images and a step or two of training, and sends everything they write to a
work directory outside the repository: ``$INVOLUTION_WORKDIR`` when set, else a
folder under the system's temporary directory. So tests never touch committed
files. In normal mode runs go to the repository's ``runs/`` and the deck to its
``slides/`` (or under ``$INVOLUTION_WORKDIR`` when that is set).

**Runs.** Every training run writes ``results.json`` and ``metrics.csv`` into
``<runs>/<run name>/<version>/`` (see :mod:`involution.cli`); :func:`find_runs`
and :func:`latest_run` find them again, :class:`Run` reads them.
"""
from __future__ import annotations

import csv
import getpass
import json
import math
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlparse

from .registry import model_info

__all__ = [
    "FAST_ENV", "WORKDIR_ENV", "DATA_ROOT_ENV", "REPO_URL_ENV", "DEFAULT_REPO_URL",
    "FAST_TRAINER_ARGS", "DATA_LABELS", "RECIPES", "Workbook", "DataChoice", "Run", "Weights",
    "SeedSpread", "HeldOutImages", "held_out_images", "repo_root", "fast_mode", "in_colab", "work_directory", "setup", "gpu_name",
    "internet_reachable", "choose_data", "read_metrics", "find_runs", "latest_run",
    "find_weights", "results_rows", "format_results_table", "reference_rows", "model_label",
    "export_runs", "training_run_name", "KERNEL_RUN_NAMES", "training_args", "format_epoch_table",
    "find_comparison", "runs_data_statement", "seed_spread", "compare_spreads", "format_seed_table",
]

FAST_ENV = "INVOLUTION_FAST"
WORKDIR_ENV = "INVOLUTION_WORKDIR"
DATA_ROOT_ENV = "INVOLUTION_DATA_ROOT"
REPO_URL_ENV = "INVOLUTION_REPO_URL"
# Where Colab fetches the project from. Set REPO_URL in a notebook's settings
# cell (or $INVOLUTION_REPO_URL) to the address of your copy of this repository.
DEFAULT_REPO_URL = os.environ.get(REPO_URL_ENV, "https://github.com/<owner>/involution")

# Fast mode's training: two training steps and one validation/test batch per
# run. Enough to exercise the whole path (fit, checkpoints, results, test).
FAST_TRAINER_ARGS = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                     "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
                     "--data.num_workers", "0")
FAST_IMAGE_SIZE = 32

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


# -- where we are --------------------------------------------------------------


def _is_repo_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "involution").is_dir() \
        and (path / "configs").is_dir()


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository's root folder (holding ``pyproject.toml``, ``involution/``, ``configs/``).

    Searched upwards from ``start`` (default: the current directory, which is
    ``notebooks/`` when a notebook runs), then from this package's own folder.
    """
    starts = [Path(start).resolve()] if start is not None else [Path.cwd().resolve()]
    starts.append(Path(__file__).resolve().parent)
    for origin in starts:
        for candidate in (origin, *origin.parents):
            if _is_repo_root(candidate):
                return candidate
    raise FileNotFoundError(
        f"no checkout of the involution repository found above {starts[0]} or the installed "
        "package: the notebooks need its configs/ folder. Run them from a clone (in Colab the "
        "set-up cell clones REPO_URL).")


def fast_mode(value: str | None = None) -> bool:
    """Whether fast mode is on: ``$INVOLUTION_FAST`` (or ``value``) is 1/true/yes/on."""
    raw = os.environ.get(FAST_ENV, "") if value is None else value
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{FAST_ENV}={raw!r} is not understood: use 1 (fast mode) or 0 (normal mode)")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def work_directory(fast: bool, root: Path | None = None) -> Path:
    """Where the notebooks write runs, figures and the deck.

    ``$INVOLUTION_WORKDIR`` when set. Otherwise: in fast mode a folder under the
    system's temporary directory (the same one for every notebook of a user, so
    notebook 04 finds what notebook 02 trained), in normal mode the repository.
    Fast mode refuses a work directory inside the repository: its outputs must
    never replace committed files.
    """
    root = root or repo_root()
    chosen = os.environ.get(WORKDIR_ENV)
    if chosen:
        workdir = Path(chosen).expanduser().resolve()
    elif fast:
        workdir = Path(tempfile.gettempdir()) / f"involution-fast-{getpass.getuser()}"
    else:
        workdir = root
    if fast and _inside(workdir, root):
        raise ValueError(f"fast mode must not write into the repository, but the work directory "
                         f"{workdir} is inside {root}: point {WORKDIR_ENV} elsewhere")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def gpu_name() -> str | None:
    """The CUDA GPU's name, or None without one."""
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _short(path: Path) -> Path:
    """``path`` relative to the working folder when inside it: printed paths name no machine's folders."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _quiet_libraries() -> None:
    """Keep notebook outputs to what the lesson needs: no library chatter, adverts or internal warnings."""
    import logging
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning's advice to add DataLoader workers does not apply to small images
    # that decode in microseconds, where workers only cost start-up time.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # run_cli passes its arguments explicitly; inside a Jupyter kernel sys.argv
    # holds the kernel's own options, which LightningCLI warns about needlessly.
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")
    # A deprecation inside Lightning itself (torch's pytree API), nothing a reader can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


@dataclass
class Workbook:
    """What a notebook needs to know about where it runs. Made by :func:`setup`."""

    root: Path
    fast: bool
    workdir: Path
    colab: bool
    gpu: str | None

    @property
    def runs_dir(self) -> Path:
        return _short(self.workdir / "runs")

    @property
    def slides_dir(self) -> Path:
        return _short(self.workdir / "slides")

    @property
    def figures_dir(self) -> Path:
        return self.slides_dir / "figures"

    def config(self, name: str) -> Path:
        """The path of ``configs/<name>.yaml``."""
        path = _short(self.root / "configs" / f"{name.removesuffix('.yaml')}.yaml")
        if not path.is_file():
            available = sorted(p.stem for p in (self.root / "configs").glob("*.yaml"))
            raise FileNotFoundError(f"no config {path}; available: {available}")
        return path

    def describe(self) -> str:
        import torch

        from .training import machine_description
        machine = machine_description()
        device = f"GPU {self.gpu}" if self.gpu else \
            f"CPU only ({machine['cpu']}, {machine['cpu_threads']} threads)"
        mode = ("FAST (INVOLUTION_FAST=1: sample set, tiny images, a step or two of training; "
                "numbers are smoke-test numbers)" if self.fast else "normal")
        outputs = ("runs/ and slides/ in the repository" if self.workdir == self.root
                   else f"{self.workdir} (outside the repository)")
        lines = ["working in: the repository's root folder (relative paths start there)"
                 + (", in Colab" if self.colab else ""),
                 f"mode:       {mode}",
                 f"outputs:    {outputs}",
                 f"device:     {device}, torch {torch.__version__}"]
        return "\n".join(lines)


def setup(fast: bool | None = None, repo_url: str | None = None, verbose: bool = True) -> Workbook:
    """Prepare a notebook: find the repository, decide the mode and work directory.

    Args:
        fast: force fast mode on or off; ``None`` follows ``$INVOLUTION_FAST``.
        repo_url: the repository's address, only named in the error when the
            checkout cannot be found in Colab.
        verbose: print where the notebook runs (repository, mode, outputs, device).

    In Colab it also reports the GPU (``torch.cuda.get_device_name``), or says
    how to get one. In fast mode W&B logging is switched off.
    """
    colab = in_colab()
    try:
        root = repo_root()
    except FileNotFoundError as error:
        if colab:
            raise FileNotFoundError(
                f"{error} In Colab the set-up cell clones {repo_url or DEFAULT_REPO_URL} into "
                "/content/involution; set REPO_URL in the settings cell to your copy.") from error
        raise
    fast = fast_mode() if fast is None else bool(fast)
    if fast:
        os.environ["WANDB_MODE"] = "disabled"  # tests must not log to anyone's W&B project
    _quiet_libraries()
    # Work from the repository's root (a notebook starts in notebooks/): configs,
    # runs and slides then have the short relative paths the outputs print.
    os.chdir(root)
    book = Workbook(root=root, fast=fast, workdir=work_directory(fast, root), colab=colab,
                    gpu=gpu_name())
    if verbose:
        print(book.describe())
        if colab and book.gpu is None:
            print("No GPU in this Colab session: Runtime > Change runtime type > GPU, then "
                  "run all cells again (training on the CPU is very slow).")
    return book


# -- which data ---------------------------------------------------------------------


def internet_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    Name resolution can hang far longer than a socket timeout on machines
    without internet, so the whole attempt runs in a thread that is given up
    after ``timeout``.
    """
    from .data import CALTECH256_URL
    parsed = urlparse(url or CALTECH256_URL)
    if not parsed.hostname:
        raise ValueError(f"not a URL with a host name: {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome = []

    def connect():
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


# Short names to put beside every number, by kind of data (see involution.data.dataset_kind).
DATA_LABELS = {
    "sample": "sample set (memorisation check), not Caltech-256",
    "shapes": "shapes set (offline), not Caltech-256",
    "caltech256": "Caltech-256",
    "folder": "an image folder, not Caltech-256",
}
# The training recipe (config) of each kind of data; the model is chosen on the command line.
RECIPES = {"sample": "quick_sample", "shapes": "shapes", "folder": "shapes",
           "caltech256": "{model}_caltech256_course"}


@dataclass(frozen=True)
class DataChoice:
    """Which data a notebook trains on, and the sentence that says so."""

    root: str
    download: bool
    kind: str  # "sample", "shapes", "caltech256" or "folder"
    statement: str

    @property
    def is_sample_set(self) -> bool:
        return self.kind == "sample"

    def cli_args(self) -> list[str]:
        """The ``--data.*`` arguments of :func:`involution.cli.run_cli` for this choice."""
        return ["--data.root", self.root, "--data.download", str(self.download).lower()]

    @property
    def label(self) -> str:
        """A short name to put beside every number: never lets a built-in set pass for Caltech-256."""
        return DATA_LABELS[self.kind]


# SAMPLE_SET_DESCRIPTION already says that the sample set measures memorisation.
_SAMPLE_NOTE = "Its accuracies say nothing about Caltech-256."


def _shapes_statement(why: str) -> str:
    from .data import DATASET_NAMES
    from .shapes import SHAPE_CLASSES, SPLIT_SIZES
    counts = ", ".join(f"{n * len(SHAPE_CLASSES):,} {split}" for split, n in SPLIT_SIZES.items())
    return (f"Data: the {DATASET_NAMES['shapes']}, {why}: {len(SHAPE_CLASSES)} classes of shapes on "
            f"crops of real photographs ({counts} images), each split drawn from its own "
            "photographs, so test accuracy measures generalisation to unseen backgrounds. Its "
            "numbers are not Caltech-256 numbers.")


def choose_data(root: str | os.PathLike = "shapes", fast: bool = False,
                reachable: Callable[[], bool] | None = None) -> DataChoice:
    """Decide the data a notebook trains on, and say why in one sentence.

    Args:
        root: ``"shapes"`` (the built-in shapes set, generated offline: the
            default), ``"sample"`` (the tiny sample set: a smoke test), a folder
            that holds (or will hold) ``256_ObjectCategories``, or ``"auto"``:
            ``$INVOLUTION_DATA_ROOT`` if set, else Caltech-256 when it is in the
            repository's ``data/caltech256`` or can be downloaded, else the
            shapes set.
        fast: fast mode always uses the sample set.
        reachable: returns whether the Caltech-256 server can be reached
            (default: :func:`internet_reachable`, a 3-second check).

    The returned :attr:`DataChoice.statement` is one line to print at the top
    of a notebook's output; it names the setting the choice came from.
    """
    from .data import (CALTECH256_URL, SAMPLE_SET_DESCRIPTION, SAMPLE_ROOT_ALIAS, SHAPES_ROOT_ALIAS,
                       dataset_kind, find_categories_dir)

    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise ValueError(f"data root must be 'shapes', 'sample', 'auto' or a folder path; got {root!r}")
    setting = f"DATA_ROOT = {str(root)!r} in the settings cell"
    root = str(root)
    if fast:
        return DataChoice(SAMPLE_ROOT_ALIAS, False, "sample",
                          f"Data: {SAMPLE_SET_DESCRIPTION}; fast mode ({FAST_ENV}=1) always uses it, "
                          f"whatever {setting} says. {_SAMPLE_NOTE}")
    automatic = root == "auto"
    if automatic and os.environ.get(DATA_ROOT_ENV):
        root = os.environ[DATA_ROOT_ENV]
        setting = f"${DATA_ROOT_ENV}={root!r} (DATA_ROOT is 'auto')"
    elif automatic:
        root = str(repo_root() / "data" / "caltech256")
    if root == SAMPLE_ROOT_ALIAS:
        return DataChoice(root, False, "sample", f"Data: {SAMPLE_SET_DESCRIPTION}, as {setting} asks. "
                          + _SAMPLE_NOTE)
    if root == SHAPES_ROOT_ALIAS:
        return DataChoice(root, False, "shapes", _shapes_statement(f"as {setting} asks"))
    categories = find_categories_dir(root)
    if categories is not None:
        kind = dataset_kind(categories)
        return DataChoice(root, False, kind, f"Data: {DATA_LABELS[kind]}, found in {root} ({setting}).")
    host = urlparse(CALTECH256_URL).hostname
    if (reachable or internet_reachable)():
        return DataChoice(root, True, "caltech256",
                          f"Data: Caltech-256, not yet in {root}: it will be downloaded from "
                          f"{host} (1.2 GB, checked by MD5) before training ({setting}).")
    if not automatic:
        raise FileNotFoundError(f"{setting}, but {root} holds no 256_ObjectCategories folder and "
                                f"{host} cannot be reached to download Caltech-256. Put the data "
                                "there (see data/README.md) or set DATA_ROOT = 'shapes'.")
    return DataChoice(SHAPES_ROOT_ALIAS, False, "shapes", _shapes_statement(
        f"because {setting} found no Caltech-256 in {root} and {host} cannot be reached"))


# -- runs ------------------------------------------------------------------------------


def _number(text: str | None) -> float:
    return float(text) if text not in (None, "") else math.nan


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
        path = path / "metrics.csv"
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


@dataclass
class Run:
    """One finished training run: ``<runs>/<name>/<version>/`` with its ``results.json``."""

    path: Path
    results: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        path = Path(path)
        results_file = path / "results.json"
        if not results_file.is_file():
            raise FileNotFoundError(f"{path} is not a finished run: it has no results.json")
        return cls(path, json.loads(results_file.read_text()))

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return self.results["model"]

    @property
    def label(self) -> str:
        return model_label(self.model)

    @property
    def kind(self) -> str:
        """The kind of data it trained on: ``"sample"``, ``"shapes"``, ``"caltech256"`` or ``"folder"``."""
        dataset = self.results.get("dataset") or {}
        if dataset.get("kind"):
            return dataset["kind"]
        return "sample" if dataset.get("is_sample_set") else "caltech256"  # results of older versions

    @property
    def is_sample_set(self) -> bool:
        return self.kind == "sample"

    @property
    def data_label(self) -> str:
        return DATA_LABELS[self.kind]

    @property
    def seed(self) -> int | None:
        """The run's random seed (``seed_everything``), when it was recorded."""
        seed = self.results.get("seed")
        if seed is None:
            match = re.search(r"_seed(\d+)$", self.name)
            seed = int(match.group(1)) if match else None
        return seed

    @property
    def image_size(self) -> int | None:
        return (self.results.get("dataset") or {}).get("image_size")

    @property
    def tested(self) -> bool:
        return "test_top1" in self.results

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "best.ckpt"

    def metrics(self) -> dict[str, list[float]]:
        return read_metrics(self.path / "metrics.csv")

    def machine(self) -> str:
        """Where it ran, in words: ``"AMD EPYC, 2 CPU threads, no GPU"``."""
        machine = self.results.get("machine") or {}
        gpu = machine.get("gpu")
        return (f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cpu_threads', '?')} CPU "
                f"threads, {'GPU ' + gpu if gpu else 'no GPU'}")

    def summary(self) -> str:
        """``"RedNet-26 (seed 0) trained for 8 epochs at 64px on the shapes set (offline), not Caltech-256"``."""
        epochs = self.results.get("epochs_trained", "?")
        seed = f" (seed {self.seed})" if self.seed is not None else ""
        return (f"{self.label}{seed} trained for {epochs} epoch{'' if epochs == 1 else 's'} at "
                f"{self.image_size}px on the {self.data_label}")

    def describe(self) -> str:
        """The summary, with the parameter count, the machine and the run's name."""
        return (f"{self.summary()} ({self.results['params']:,} parameters); machine: "
                f"{self.machine()}; run {self.name}/{self.version}")


def find_runs(runs_dir: str | os.PathLike, name: str | Sequence[str] | None = None,
              model: str | None = None, sample_set: bool | None = None,
              tested: bool | None = None, kind: str | None = None) -> list[Run]:
    """Finished runs under ``runs_dir`` (those with a results.json), newest first.

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
    runs = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for version in folder.iterdir():
            if not (version / "results.json").is_file():
                continue
            run = Run.load(version)
            if "epochs_trained" not in run.results:  # a validate/test-only folder
                continue
            if model is not None and model not in (run.model, model_info(run.model).family):
                continue
            if sample_set is not None and run.is_sample_set != sample_set:
                continue
            if kind is not None and run.kind != kind:
                continue
            if tested is not None and run.tested != tested:
                continue
            runs.append(run)
    # Versions are start times (YYYYmmdd-HHMMSS[-n]), so they sort in time order.
    return sorted(runs, key=lambda r: (r.version, r.name), reverse=True)


def latest_run(runs_dir: str | os.PathLike, **filters) -> Run | None:
    """The newest run of :func:`find_runs` with these filters, or None."""
    runs = find_runs(runs_dir, **filters)
    return runs[0] if runs else None


# -- the training runs of notebook 02 -----------------------------------------------------


def training_run_name(model: str, kind: str, seed: int | None = None) -> str:
    """The folder name notebook 02 gives a run: ``rednet26_shapes_seed0``, ``resnet26_caltech256_course``."""
    name = f"{model}_caltech256_course" if kind == "caltech256" else f"{model}_{kind}"
    return name if seed is None else f"{name}_seed{seed}"


def training_args(command: str, book: Workbook, data: DataChoice, model: str, image_size: int | None,
                  epochs: int | None = None, batch_size: int | None = None,
                  ckpt_path: str | os.PathLike | None = None, seed: int | None = None) -> list[str]:
    """Command-line arguments of one run of notebook 02, for :func:`involution.cli.run_cli`.

    The data's recipe (:data:`RECIPES`: ``configs/shapes.yaml`` for the shapes
    set, the course project's ``configs/<model>_caltech256_course.yaml`` for
    Caltech-256) is used as it is; only the model, the data
    (:class:`DataChoice`) and the seed are set, and the image size, the epochs
    and the batch size where they are not None, and, in fast mode, :data:`FAST_TRAINER_ARGS` cut every run
    to a couple of steps. ``python -m involution`` followed by these
    arguments runs the same thing.
    """
    if command not in ("fit", "validate", "test", "predict"):
        raise ValueError(f"command must be fit, validate, test or predict; got {command!r}")
    args = [command, "--config", str(book.config(RECIPES[data.kind].format(model=model))),
            "--model.model_name", model,
            "--trainer.default_root_dir", str(book.runs_dir),
            "--run_name", training_run_name(model, data.kind, seed),
            *data.cli_args(),
            # Notebooks print one line per epoch instead of a progress bar, which
            # would stay frozen in the saved notebook.
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    if image_size is not None:
        args += ["--data.image_size", str(image_size)]
    if command in ("validate", "test"):
        args += ["--verbose", "false"]  # the notebook prints the result itself
    if seed is not None:
        args += ["--seed_everything", str(seed)]
    if book.fast:
        args += list(FAST_TRAINER_ARGS)  # these set the epochs and workers too
    elif epochs is not None and command == "fit":
        args += ["--trainer.max_epochs", str(epochs)]
    if batch_size is not None:
        args += ["--data.batch_size", str(batch_size)]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    return args


# Where notebook 03 looks for a trained RedNet, best first: notebook 02's seed-0
# run on Caltech-256, on another image folder, on the shapes set, on the sample set.
KERNEL_RUN_NAMES = tuple(training_run_name("rednet26", kind, seed=0)
                         for kind in ("caltech256", "folder", "shapes", "sample"))


def format_epoch_table(metrics: Mapping[str, Sequence[float]]) -> str:
    """One line per epoch: training and validation loss and accuracy, from :func:`read_metrics`."""
    columns = [("train/loss_epoch", "train loss", 1, ".3f"), ("train/top1", "train top-1", 100, ".1f"),
               ("val/loss", "val loss", 1, ".3f"), ("val/top1", "val top-1", 100, ".1f"),
               ("val/top5", "val top-5", 100, ".1f")]
    present = [c for c in columns if c[0] in metrics]
    lines = [f"{'epoch':>5} " + " ".join(f"{title:>11}" for _, title, _, _ in present)]
    for index, epoch in enumerate(metrics["epoch"]):
        cells = []
        for key, _, scale, spec in present:
            value = metrics[key][index]
            cells.append(f"{'-' if math.isnan(value) else format(value * scale, spec):>11}")
        lines.append(f"{int(epoch) + 1:>5} " + " ".join(cells))
    return "\n".join(lines)


def find_comparison(runs_dir: str | os.PathLike, models: Sequence[str] = ("rednet26", "resnet26"),
                    kinds: Sequence[str] = ("caltech256", "folder", "shapes", "sample")
                    ) -> dict[str, list[Run]]:
    """Notebook 02's tested runs, ``{model: [one run per seed, by seed]}``, all on one kind of data.

    The first kind of ``kinds`` for which every model has at least one tested
    run wins (Caltech-256 first); for each (model, seed) the newest run counts.
    Raises FileNotFoundError naming what is missing.
    """
    for kind in kinds:
        chosen = {}
        for model in models:
            newest_per_seed: dict[int | None, Run] = {}
            for run in find_runs(runs_dir, model=model, kind=kind, tested=True):
                if run.name.startswith(training_run_name(model, kind)):
                    newest_per_seed.setdefault(run.seed, run)  # find_runs lists newest first
            if newest_per_seed:
                chosen[model] = [newest_per_seed[seed] for seed in sorted(newest_per_seed, key=str)]
        if len(chosen) == len(models):
            return chosen
    raise FileNotFoundError(f"no trained and tested runs of {list(models)} under {runs_dir}: run "
                            "notebooks/02_train_rednet.ipynb first")


def runs_data_statement(runs: Iterable[Run]) -> str:
    """One line saying which data and machine a set of runs used."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs given")
    machines = sorted({run.machine() for run in runs})
    kinds = {run.kind for run in runs}
    if kinds == {"sample"}:
        from .data import SAMPLE_SET_DESCRIPTION
        data = f"{SAMPLE_SET_DESCRIPTION}; its accuracies say nothing about Caltech-256"
    elif kinds == {"shapes"}:
        data = ("the built-in shapes set (generated offline, NOT Caltech-256; train, validation "
                "and test images from disjoint photographs)")
    elif kinds == {"caltech256"}:
        data = "Caltech-256 (this project's stratified split)"
    elif len(kinds) == 1:
        data = DATA_LABELS[kinds.pop()]
    else:
        data = f"a MIX of {', '.join(sorted(DATA_LABELS[k] for k in kinds))} (compare with care)"
    return f"Training data: {data}. Machine: {'; '.join(machines)}."


# -- several seeds ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSpread:
    """One model's metric over its seeds: mean, standard deviation, range, and the values."""

    label: str
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single run."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        spread = f" +- {self.std:.1f}" if len(self.values) > 1 else ""
        return (f"{self.mean:.1f}%{spread} (n={len(self.values)}, "
                f"range {min(self.values):.1f}-{max(self.values):.1f})")


def seed_spread(runs: Sequence[Run], key: str = "test_top1") -> SeedSpread:
    """The spread of ``results.json[key]`` (in %) over the runs of one model."""
    values = tuple(100 * run.results[key] for run in runs if run.results.get(key) is not None)
    if not values:
        raise ValueError(f"none of the {len(runs)} run(s) has {key!r} in its results.json")
    return SeedSpread(runs[0].label, values)


def compare_spreads(first: SeedSpread, second: SeedSpread) -> str:
    """Whether two models differ by more than their seed-to-seed spread, in one honest sentence.

    Only when every run of one model beats every run of the other (the ranges
    do not overlap) is one called ahead; with 3 seeds that is the most such a
    comparison supports. Otherwise the difference is within the spread.
    """
    if len(first.values) < 2 or len(second.values) < 2:
        return (f"{first.label} {first.mean:.1f}% vs {second.label} {second.mean:.1f}%: one run each "
                "gives no spread, so no winner can be called.")
    difference = first.mean - second.mean
    ahead, behind = (first, second) if difference > 0 else (second, first)
    if min(ahead.values) > max(behind.values):
        return (f"{ahead.label} is ahead by {abs(difference):.1f} points on average, and every one "
                f"of its {len(ahead.values)} runs beats every run of {behind.label}: a difference "
                "larger than the seed-to-seed spread (on this data and schedule).")
    return (f"The means differ by {abs(difference):.1f} points ({ahead.label} higher), but the runs' "
            f"ranges overlap ({first.label} {min(first.values):.1f}-{max(first.values):.1f}%, "
            f"{second.label} {min(second.values):.1f}-{max(second.values):.1f}%): the difference is "
            "within the seed-to-seed spread, so neither model can be called better here.")


def format_seed_table(runs_by_model: Mapping[str, Sequence[Run]]) -> str:
    """Per model: best validation and test top-1 over seeds (mean +- sd and range), parameters."""
    lines = [f"{'model':<10} {'params':>11} {'seeds':>5}  {'best val top-1':<34} test top-1"]
    for runs in runs_by_model.values():
        seeds = ",".join(str(run.seed) for run in runs)
        lines.append(f"{runs[0].label:<10} {runs[0].results['params']:>11,} {seeds:>5}  "
                     f"{str(seed_spread(runs, 'best_val_top1')):<34} {seed_spread(runs)}")
    return "\n".join(lines)


# -- weights for a forward pass -------------------------------------------------------


@dataclass
class Weights:
    """Where a model's weights come from, and how to say so."""

    source: str  # "checkpoint", "official" or "run"
    path: Path
    statement: str
    model_name: str
    run: Run | None = None

    def load(self):
        """(model in eval mode on the CPU, class names or None)."""
        if self.source == "official":
            from .models import create_model
            from .demo import _imagenet_categories
            model = create_model(self.model_name, pretrained=self.path)
            return model.eval(), _imagenet_categories()
        from .training import ImageClassifier
        from .viz import involution_layers
        module = ImageClassifier.load_from_checkpoint(self.path, map_location="cpu")
        if not involution_layers(module.model):
            raise ValueError(f"{self.path} holds a {module.hparams.model_name}, which has no "
                             "involution layers: choose a RedNet checkpoint")
        return module.model.eval(), _class_names(self.run)


def _class_names(run: Run | None) -> list[str] | None:
    dataset = (run.results.get("dataset") or {}) if run else {}
    root = dataset.get("root")
    if not root:
        return None
    from .data import class_names
    try:  # a built-in set's name or the data folder; gone data just means no names
        return class_names(root, include_clutter=dataset.get("include_clutter", True))
    except FileNotFoundError:
        return None


def _existing_file(path: str | os.PathLike, setting: str, hint: str) -> Path:
    """``path`` as given, or relative to the repository root (notebooks run in notebooks/)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (repo_root() / path).is_file():
        return repo_root() / path
    raise FileNotFoundError(f"{setting}={str(path)!r} does not exist; {hint}")


def find_weights(checkpoint: str | os.PathLike | None = None,
                 official: str | os.PathLike | None = None, official_model: str = "rednet26",
                 runs_dir: str | os.PathLike | None = None,
                 run_names: Sequence[str] = ()) -> Weights | None:
    """Choose a RedNet's weights for visualisation, in this order:

    1. ``checkpoint``: a Lightning checkpoint of this project (``best.ckpt``);
    2. ``official``: an official ImageNet RedNet checkpoint (mmcls ``.pth``)
       of ``official_model``'s depth;
    3. the newest finished RedNet run under ``runs_dir`` named in
       ``run_names`` (searched in that order of names).

    Returns None when none of these exists (then train one). A path that is
    given but missing is an error, not a silent fallback.
    """
    if checkpoint is not None:
        path = _existing_file(checkpoint, "CHECKPOINT", "set it to a runs/<name>/<version>/"
                              "checkpoints/best.ckpt (relative paths start at the repository) "
                              "or to None")
        from .cli import find_run_dir
        run_dir = find_run_dir(path)
        run = Run.load(run_dir) if run_dir and (run_dir / "results.json").is_file() else None
        model = run.model if run else "the checkpoint's model"
        about = f" ({run.describe()})" if run else ""
        return Weights("checkpoint", path, f"Weights: the trained checkpoint {path}{about}.",
                       model, run)
    if official is not None:
        path = _existing_file(official, "OFFICIAL_WEIGHTS", "download it from the official model "
                              "zoo (see the README) or set it to None")
        return Weights("official", path,
                       f"Weights: the official ImageNet {model_label(official_model)} checkpoint "
                       f"{path} (Li et al., trained on ImageNet-1k, not by this project).",
                       official_model)
    if runs_dir is not None:
        for name in run_names:
            run = latest_run(runs_dir, name=name, model="rednet")
            if run is not None and run.best_checkpoint.is_file():
                return Weights("run", run.best_checkpoint,
                               f"Weights: {run.describe()}, best checkpoint.", run.model, run)
    return None


@dataclass
class HeldOutImages:
    """A small batch of images a model never trained on, with what to say about them."""

    batch: "torch.Tensor"  # (N, 3, H, W), normalised as in evaluation
    names: list[str]
    labels: list[str | None]  # true class names (None for photographs without one)
    pixels: list[dict[str, tuple[int, int]]]  # per image: {what: (row, col)} to mark
    statement: str


# Pixels to mark where an image has no record of its content: fractions of (height, width).
_FIXED_PIXELS = {"upper left": (0.3, 0.3), "centre": (0.5, 0.5), "lower left": (0.85, 0.15)}


def _fixed_pixels(size: int) -> dict[str, tuple[int, int]]:
    return {what: (int(r * size), int(c * size)) for what, (r, c) in _FIXED_PIXELS.items()}


def held_out_images(weights: Weights, count: int = 3, photo_size: int = 128) -> HeldOutImages:
    """Test images for looking at a model's kernels: never the images it trained on.

    For weights from a run of this project: the first test image of each of
    the first ``count`` classes of the data the run trained on, at the run's
    image size (for the shapes set the marked pixels come from each image's
    record: inside the shape, on its outline, on the background). For the
    official ImageNet weights: scikit-image's sample photographs.
    """
    import torch
    from .data import Caltech256DataModule, build_transforms
    if weights.run is None:  # official weights or a checkpoint outside a run folder
        import skimage.data
        from PIL import Image
        transform = build_transforms("standard", photo_size, train=False)
        names = ["chelsea", "astronaut", "coffee"][:count]
        batch = torch.stack([transform(Image.fromarray(getattr(skimage.data, n)()).convert("RGB"))
                             for n in names])
        return HeldOutImages(batch, names, [None] * len(names), [_fixed_pixels(photo_size)] * len(names),
                             f"Images: scikit-image's sample photographs ({', '.join(names)}) at "
                             f"{photo_size}px.")
    dataset = weights.run.results.get("dataset") or {}
    size = int(dataset.get("image_size") or 64)
    # The run's own split settings: only then are its test images really held out.
    trained_with = (weights.run.results.get("config") or {}).get("data") or {}
    split_settings = {key: trained_with[key] for key in ("split", "split_seed", "split_file",
                                                         "include_clutter") if key in trained_with}
    datamodule = Caltech256DataModule(dataset.get("root", "shapes"), image_size=size, num_workers=0,
                                      **split_settings)
    datamodule.setup()
    test = datamodule.test_dataset
    first_of_class: dict[int, int] = {}
    for index, (_, label) in enumerate(test.samples):
        first_of_class.setdefault(label, index)
    chosen = [first_of_class[label] for label in sorted(first_of_class)][:count]
    batch = torch.stack([test[i][0] for i in chosen])
    paths = [Path(test.samples[i][0]) for i in chosen]
    names = [f"{path.parent.name}/{path.name}" for path in paths]
    labels = [test.class_names[test.samples[i][1]] for i in chosen]
    if datamodule.kind == "shapes":
        from .shapes import landmarks, read_sources
        records = {record.path: record for record in read_sources(datamodule.data_dir)}
        pixels = [landmarks(records[name], size) for name in names]
    else:
        pixels = [_fixed_pixels(size)] * len(chosen)
    return HeldOutImages(batch, names, labels, pixels,
                         f"Images: {len(chosen)} test images of the {DATA_LABELS[datamodule.kind]} "
                         f"(held out from training) at {size}px.")


# -- results tables -----------------------------------------------------------------------


def results_rows(runs: Iterable[Run]) -> list[dict]:
    """One row per run, accuracies in %, for tables and figures."""
    rows = []
    for run in runs:
        r = run.results

        def percent(key):
            return 100 * r[key] if r.get(key) is not None else None
        rows.append({
            "label": run.label, "model": run.model, "params": r["params"],
            "params_m": r["params"] / 1e6, "epochs": r.get("epochs_trained"),
            "image_size": run.image_size, "data": run.data_label,
            "best_val_top1": percent("best_val_top1"), "best_val_top5": percent("best_val_top5"),
            "best_epoch": r.get("best_epoch"),
            "test_top1": percent("test_top1"), "test_top5": percent("test_top5"),
            "machine": run.machine(), "run": run.name + "/" + run.version, "seed": run.seed,
        })
    return rows


def reference_rows() -> list[dict]:
    """The course project's reported results, as rows shaped like :func:`results_rows`."""
    from .reference import COURSE_PROJECT_RESULTS, COURSE_PROJECT_SOURCE
    return [{"label": row["model"], "params_m": row["params_m"], "epochs": row["epochs"],
             "best_val_top1": row["val_top1"], "data": "Caltech-256",
             "source": COURSE_PROJECT_SOURCE} for row in COURSE_PROJECT_RESULTS]


def format_results_table(runs: Iterable[Run], reference: bool = True) -> str:
    """A plain-text table of runs, with the course project's reported figures beneath."""
    def fmt(value, spec=".1f"):
        return "-" if value is None else format(value, spec)

    header = (f"{'model':<10} {'params':>11} {'epochs':>6} {'image':>5} {'best val top-1':>14} "
              f"{'top-5':>6} {'test top-1':>10} {'top-5':>6}  data")
    lines = [header]
    for row in results_rows(runs):
        lines.append(f"{row['label']:<10} {row['params']:>11,} {fmt(row['epochs'], 'd'):>6} "
                     f"{fmt(row['image_size'], 'd'):>5} {fmt(row['best_val_top1']):>13}% "
                     f"{fmt(row['best_val_top5']):>5}% {fmt(row['test_top1']):>9}% "
                     f"{fmt(row['test_top5']):>5}%  {row['data']} (this project"
                     + (f", seed {row['seed']})" if row["seed"] is not None else ")"))
    if reference:
        rows = reference_rows()
        for row in rows:
            lines.append(f"{row['label']:<10} {row['params_m']:>10.1f}M {row['epochs']:>6} "
                         f"{'-':>5} {row['best_val_top1']:>13.2f}% {'-':>6} {'-':>10} {'-':>6}  "
                         "Caltech-256 (reported, not ours)")
        lines.append(f"reported rows: {rows[0]['source']}.")
    return "\n".join(lines)


# -- what the deck needs --------------------------------------------------------------------


def export_runs(runs: Mapping[str, Run], destination: str | os.PathLike) -> dict[str, Path]:
    """Copy each run's results.json and metrics.csv to ``destination/<key>/``.

    The deck is built from these copies, so it can be rebuilt from the
    committed repository without the (git-ignored) runs. Returns
    ``{key: the folder it was copied to}``.
    """
    destination = Path(destination)
    copied = {}
    for key, run in runs.items():
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"run key {key!r} must be a plain folder name")
        folder = destination / key
        folder.mkdir(parents=True, exist_ok=True)
        for filename in ("results.json", "metrics.csv"):
            shutil.copyfile(run.path / filename, folder / filename)
        copied[key] = folder
    return copied
