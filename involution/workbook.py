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
import shutil
import socket
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlparse

__all__ = [
    "FAST_ENV", "WORKDIR_ENV", "DATA_ROOT_ENV", "REPO_URL_ENV", "DEFAULT_REPO_URL",
    "FAST_TRAINER_ARGS", "Workbook", "DataChoice", "Run", "Weights",
    "repo_root", "fast_mode", "in_colab", "work_directory", "setup", "gpu_name",
    "internet_reachable", "choose_data", "read_metrics", "find_runs", "latest_run",
    "find_weights", "results_rows", "format_results_table", "reference_rows", "model_label",
    "export_runs", "training_run_name", "KERNEL_RUN_NAMES", "course_args", "format_epoch_table",
    "latest_comparison", "runs_data_statement",
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
    notebook 04 finds what notebook 03 trained), in normal mode the repository.
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
        return self.workdir / "runs"

    @property
    def slides_dir(self) -> Path:
        return self.workdir / "slides"

    @property
    def figures_dir(self) -> Path:
        return self.slides_dir / "figures"

    def config(self, name: str) -> Path:
        """The path of ``configs/<name>.yaml``."""
        path = self.root / "configs" / f"{name.removesuffix('.yaml')}.yaml"
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
        lines = [f"repository: {self.root}" + (" (Colab)" if self.colab else ""),
                 f"mode:       {mode}",
                 f"outputs:    {self.workdir}",
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
    # Lightning's advice to add DataLoader workers does not apply to the tiny
    # sample set, where workers only cost start-up time.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # run_cli passes its arguments explicitly; inside a Jupyter kernel sys.argv
    # holds the kernel's own options, which LightningCLI warns about needlessly.
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")
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


@dataclass(frozen=True)
class DataChoice:
    """Which data a notebook trains on, and the sentence that says so."""

    root: str
    download: bool
    is_sample_set: bool
    statement: str

    def cli_args(self) -> list[str]:
        """The ``--data.*`` arguments of :func:`involution.cli.run_cli` for this choice."""
        return ["--data.root", self.root, "--data.download", str(self.download).lower()]

    @property
    def label(self) -> str:
        """A short name to put beside every number: never lets the sample set pass for Caltech-256."""
        return "sample set, not Caltech-256" if self.is_sample_set else "Caltech-256"


def choose_data(root: str | os.PathLike = "auto", fast: bool = False,
                reachable: Callable[[], bool] | None = None) -> DataChoice:
    """Decide the data: Caltech-256 if present or downloadable, else the built-in sample set.

    Args:
        root: ``"auto"`` (``$INVOLUTION_DATA_ROOT`` if set, else the repository's
            ``data/caltech256``), ``"sample"`` (the built-in sample set), or the
            folder that holds (or will hold) ``256_ObjectCategories``.
        fast: fast mode always uses the sample set.
        reachable: returns whether the Caltech-256 server can be reached
            (default: :func:`internet_reachable`, a 3-second check).

    The returned :attr:`DataChoice.statement` is one line to print at the top
    of a notebook's output.
    """
    from .data import CALTECH256_URL, SAMPLE_SET_DESCRIPTION, find_categories_dir

    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise ValueError(f"data root must be 'auto', 'sample' or a folder path; got {root!r}")
    root = str(root)
    if root == "auto":
        root = os.environ.get(DATA_ROOT_ENV) or str(repo_root() / "data" / "caltech256")
    sample_note = ("Every accuracy below is measured on the sample set and says nothing about "
                   "Caltech-256.")
    if fast:
        return DataChoice("sample", False, True,
                          f"Data: {SAMPLE_SET_DESCRIPTION}, because fast mode ({FAST_ENV}=1) always "
                          "uses it. " + sample_note)
    if root == "sample":
        return DataChoice("sample", False, True,
                          f"Data: {SAMPLE_SET_DESCRIPTION}, as the settings ask. " + sample_note)
    categories = find_categories_dir(root)
    if categories is not None:
        return DataChoice(root, False, False, f"Data: Caltech-256, found at {categories}.")
    host = urlparse(CALTECH256_URL).hostname
    if (reachable or internet_reachable)():
        return DataChoice(root, True, False,
                          f"Data: Caltech-256, not yet under {root}: it will be downloaded from "
                          f"{host} (1.2 GB, checked by MD5) before training.")
    return DataChoice("sample", False, True,
                      f"Data: the built-in sample set (NOT Caltech-256), because Caltech-256 is "
                      f"not under {root} and {host} cannot be reached to download it. "
                      + sample_note)


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


_LABELS = {"rednet": "RedNet", "resnet": "ResNet", "dednet": "DedNet", "densenet": "DenseNet"}


def model_label(name: str) -> str:
    """``"rednet26"`` -> ``"RedNet-26"``."""
    family = name.rstrip("0123456789")
    depth = name[len(family):]
    return f"{_LABELS.get(family, family)}-{depth}" if depth else _LABELS.get(family, family)


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
    def is_sample_set(self) -> bool:
        return bool((self.results.get("dataset") or {}).get("is_sample_set"))

    @property
    def data_label(self) -> str:
        return "sample set, not Caltech-256" if self.is_sample_set else "Caltech-256"

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
        """``"RedNet-26 trained for 15 epochs at 64px on the sample set, not Caltech-256"``."""
        epochs = self.results.get("epochs_trained", "?")
        return (f"{self.label} trained for {epochs} epoch{'' if epochs == 1 else 's'} at "
                f"{self.image_size}px on the {self.data_label}")

    def describe(self) -> str:
        """The summary, with the parameter count, the machine and the run's folder."""
        return (f"{self.summary()} ({self.results['params']:,} parameters); machine: "
                f"{self.machine()}; run {self.path}")


def find_runs(runs_dir: str | os.PathLike, name: str | Sequence[str] | None = None,
              model: str | None = None, sample_set: bool | None = None,
              tested: bool | None = None) -> list[Run]:
    """Finished runs under ``runs_dir`` (those with a results.json), newest first.

    Args:
        name: the run name(s) (``--run_name``, or the config's name) to look in.
        model: keep runs of this model (``"rednet26"``), or of a family
            (``"rednet"``).
        sample_set: keep only sample-set runs (True) or only Caltech-256 runs (False).
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
            if model is not None and not (run.model == model or (
                    run.model.rstrip("0123456789") == model)):
                continue
            if sample_set is not None and run.is_sample_set != sample_set:
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


# -- the training runs of notebook 03 -----------------------------------------------------


def training_run_name(model: str, is_sample_set: bool) -> str:
    """The folder name notebook 03 gives a run: ``rednet26_sample`` or ``rednet26_caltech256_course``."""
    return f"{model}_sample" if is_sample_set else f"{model}_caltech256_course"


# Where notebook 02 looks for a trained RedNet, best first: notebook 03's
# Caltech-256 run, its sample-set run, then the quick sample-set model.
KERNEL_RUN_NAMES = (training_run_name("rednet26", False), training_run_name("rednet26", True),
                    "quick_sample")


def course_args(command: str, book: Workbook, data: DataChoice, model: str, image_size: int,
                epochs: int | None = None, batch_size: int | None = None,
                ckpt_path: str | os.PathLike | None = None) -> list[str]:
    """Command-line arguments for the course recipe (``configs/<model>_caltech256_course.yaml``).

    The recipe's config is used as it is; only the data (:class:`DataChoice`),
    the image size, the epochs and the batch size are overridden, and, in fast
    mode, :data:`FAST_TRAINER_ARGS` cut every run to a couple of steps.
    ``python -m involution`` followed by these arguments runs the same thing.
    """
    if command not in ("fit", "validate", "test", "predict"):
        raise ValueError(f"command must be fit, validate, test or predict; got {command!r}")
    args = [command, "--config", str(book.config(f"{model}_caltech256_course")),
            "--trainer.default_root_dir", str(book.runs_dir),
            "--run_name", training_run_name(model, data.is_sample_set),
            *data.cli_args(), "--data.image_size", str(image_size)]
    if book.fast:
        args += list(FAST_TRAINER_ARGS)  # these set the epochs and workers too
    else:
        if epochs is not None and command == "fit":
            args += ["--trainer.max_epochs", str(epochs)]
        if data.is_sample_set:
            args += ["--data.num_workers", "0"]  # 160 small images: workers only cost start-up
    if batch_size is not None:
        args += ["--data.batch_size", str(batch_size)]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    return args


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


def latest_comparison(runs_dir: str | os.PathLike,
                      models: Sequence[str] = ("rednet26", "resnet26")) -> dict[str, Run]:
    """The newest tested run of each model from notebook 03, all on the same data.

    Caltech-256 runs are preferred when every model has one; otherwise the
    sample-set runs. Raises FileNotFoundError naming what is missing.
    """
    for sample_set in (False, True):
        chosen = {}
        for model in models:
            run = latest_run(runs_dir, name=training_run_name(model, sample_set), model=model,
                             tested=True)
            if run is not None:
                chosen[model] = run
        if len(chosen) == len(models):
            return chosen
    names = [training_run_name(m, s) for s in (False, True) for m in models]
    raise FileNotFoundError(f"no trained and tested runs of {list(models)} under {runs_dir} "
                            f"(looked for {names}): run notebooks/03_train_rednet_caltech256.ipynb "
                            "first")


def runs_data_statement(runs: Iterable[Run]) -> str:
    """One line saying which data and machine a set of runs used."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs given")
    machines = sorted({run.machine() for run in runs})
    if all(run.is_sample_set for run in runs):
        from .data import SAMPLE_SET_DESCRIPTION
        data = f"{SAMPLE_SET_DESCRIPTION}: its accuracies say nothing about Caltech-256"
    elif not any(run.is_sample_set for run in runs):
        data = "Caltech-256 (this project's stratified split, data/splits/)"
    else:
        data = "a MIX of Caltech-256 and sample-set runs (compare with care)"
    return f"Training data: {data}. Machine: {'; '.join(machines)}."


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
    if not root or not Path(root).is_dir():
        return None
    from .data import class_names
    return class_names(root, include_clutter=dataset.get("include_clutter", True))


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
            "machine": run.machine(), "run": run.name + "/" + run.version,
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
                     f"{fmt(row['test_top5']):>5}%  {row['data']} (this project)")
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
