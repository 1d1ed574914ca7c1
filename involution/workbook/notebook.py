"""Notebook set-up: where a notebook runs, in which mode, and where it reads and writes.

Every notebook opens with one settings cell and one set-up cell::

    wb = workbook.setup()              # repository, mode, work directory, device (and Colab)
    data = wb.choose_data(DATA_ROOT)   # which data (notebook 02), with the sentence that says so

Where the repository is, and its layout, is :mod:`involution.workbook.repository`'s
to know; everything else is handed paths by a :class:`Workbook`.

**Fast mode.** ``INVOLUTION_FAST=1`` (the test suite sets it for the notebook
kernels it runs under nbval) makes the notebooks use the built-in sample set,
tiny images and a step or two of training, and sends everything they write to a
work directory outside the repository: ``$INVOLUTION_WORKDIR`` when set, else a
folder under the system's temporary directory. So tests never touch committed
files. In normal mode runs go to the repository's ``runs/`` and the deck to its
``slides/`` (or under ``$INVOLUTION_WORKDIR`` when that is set; in Colab, with
``RUNS_ON_DRIVE = True``, on Google Drive).

**Colab.** Without a checkout (a notebook opened from GitHub), :func:`setup`
clones the repository (:func:`~involution.workbook.repository.repository_url`)
for its committed results; ``python -m involution set-repo URL`` sets that
address (:mod:`involution.workbook.colab`).
"""
from __future__ import annotations

import getpass
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from involution.train.configs import find_config
from involution.train.quiet import quiet_lightning
from involution.train.runs import machine_description
from involution.workbook.data_choice import DataChoice, choose_data
from involution.workbook.repository import COLAB_CHECKOUT, SLIDES, is_placeholder, repo_root, repository_url

__all__ = ["FAST_ENV", "WORKDIR_ENV", "BATCH_ENV", "DRIVE_WORKDIR", "Workbook", "fast_mode", "batch_run",
           "in_colab", "work_directory", "setup", "gpu_name"]

FAST_ENV = "INVOLUTION_FAST"
WORKDIR_ENV = "INVOLUTION_WORKDIR"
BATCH_ENV = "INVOLUTION_BATCH"  # set by ./run.sh and the tests: the notebooks run unattended
DRIVE_MOUNT = Path("/content/drive")
DRIVE_WORKDIR = DRIVE_MOUNT / "MyDrive" / "involution"  # runs kept across Colab sessions

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


# -- where we are --------------------------------------------------------------


def _clone_for_colab() -> Path:
    """Clone the repository (its address: :func:`repository_url`) into Colab's checkout folder,
    showing git's progress."""
    url = repository_url()
    if is_placeholder(url):
        raise RuntimeError(
            "This copy of the project does not know its repository's address (pyproject.toml's "
            "Repository link is still the placeholder), so Colab cannot fetch the committed results. "
            "In a clone of your published copy run `python -m involution set-repo "
            "https://github.com/NAME/involution`, commit, and open the notebooks from that copy.")
    print(f"Cloning {url} into {COLAB_CHECKOUT} (committed results and figures) ...", flush=True)
    subprocess.run(["git", "clone", "--progress", "--depth", "1", url, str(COLAB_CHECKOUT)], check=True)
    return COLAB_CHECKOUT


def _switch(variable: str, raw: str, meaning: str) -> bool:
    """An on/off environment setting: 1/true/yes/on or 0/false/no/off (empty: off)."""
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{variable}={raw!r} is not understood: use 1 ({meaning}) or 0")


def fast_mode(value: str | None = None) -> bool:
    """Whether fast mode is on: ``$INVOLUTION_FAST`` (or ``value``) is 1/true/yes/on."""
    return _switch(FAST_ENV, os.environ.get(FAST_ENV, "") if value is None else value, "fast mode")


def batch_run() -> bool:
    """Whether the notebook runs unattended (``$INVOLUTION_BATCH``, set by ``./run.sh`` and the tests).

    Then no one can move a widget, and a cell that opens widgets can stall a headless
    executor: nbclient may wait for that cell's reply until its timeout (with none, for ever).
    """
    return _switch(BATCH_ENV, os.environ.get(BATCH_ENV, ""), "unattended")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def work_directory(fast: bool, root: Path | None = None, on_drive: bool = False) -> Path:
    """Where the notebooks write runs, figures and the deck.

    ``$INVOLUTION_WORKDIR`` when set; on Google Drive with ``on_drive`` (Colab
    only: runs then outlive the VM). Otherwise: in fast mode a folder under the
    system's temporary directory (the same one for every notebook of a user,
    so the appendix notebook finds what notebook 02 trained), in normal mode the
    repository. Fast mode refuses a work directory inside the repository: its
    outputs must never replace committed files.
    """
    root = root or repo_root()
    chosen = os.environ.get(WORKDIR_ENV)
    if on_drive:
        workdir = _mount_drive()
    elif chosen:
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


def _mount_drive() -> Path:
    if not in_colab():
        raise ValueError(f"RUNS_ON_DRIVE = True works in Colab only; elsewhere set {WORKDIR_ENV} "
                         "to the folder that should hold runs/ and slides/, or RUNS_ON_DRIVE = False")
    from google.colab import drive  # only importable inside Colab
    drive.mount(str(DRIVE_MOUNT))
    return DRIVE_WORKDIR


def gpu_name() -> str | None:
    """The CUDA GPU's name, or None without one."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _short(path: Path) -> Path:
    """``path`` relative to the working folder when inside it: printed paths name no machine's folders."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _quiet_libraries() -> None:
    """Keep notebook outputs to what the lesson needs: no library chatter, adverts or internal warnings."""
    quiet_lightning()  # as the command line does
    # Lightning's advice to add DataLoader workers does not apply to small images
    # that decode in microseconds, where workers only cost start-up time.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # run_cli passes its arguments explicitly; inside a Jupyter kernel sys.argv
    # holds the kernel's own options, which LightningCLI warns about needlessly.
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")


@dataclass
class Workbook:
    """What a notebook needs to know about where it runs. Made by :func:`setup`."""

    root: Path
    fast: bool
    workdir: Path
    colab: bool
    gpu: str | None
    mode_source: str = "the settings cell"  # where the mode came from, to say so

    @property
    def runs_dir(self) -> Path:
        return _short(self.workdir / "runs")

    @property
    def slides_dir(self) -> Path:
        return _short(self.workdir / SLIDES)

    @property
    def figures_dir(self) -> Path:
        return self.slides_dir / "figures"

    @property
    def committed_runs_dir(self) -> Path:
        """The committed copies of the runs the deck quotes (``slides/data/runs``): the fallback."""
        return _short(self.root / SLIDES / "data" / "runs")

    def config(self, name: str) -> Path:
        """The shipped recipe ``name`` (``involution/train/configs/<name>.yaml``), or a config file."""
        return find_config(name)

    def choose_data(self, root: str | os.PathLike = "shapes", reachable=None) -> DataChoice:
        """:func:`involution.workbook.data_choice.choose_data` for this notebook's mode, machine and repository."""
        return choose_data(root, fast=self.fast, gpu=self.gpu is not None, reachable=reachable,
                           auto_folder=self.root / "data" / "caltech256")

    def describe(self) -> str:
        machine = machine_description()
        device = f"GPU {self.gpu}" if self.gpu else \
            f"CPU only ({machine['cpu']}, {machine['cpu_threads']} threads)"
        mode = ("FAST (sample set, tiny images, a step or two of training; numbers are "
                "smoke-test numbers)" if self.fast else "normal")
        outputs = ("runs/ and slides/ in the repository" if self.workdir == self.root
                   else f"{self.workdir} (outside the repository)")
        lines = ["working in: the repository's root folder (relative paths start there)"
                 + (", in Colab" if self.colab else ""),
                 f"mode:       {mode} (set by {self.mode_source})",
                 f"outputs:    {outputs}",
                 f"device:     {device}, torch {torch.__version__}"]
        return "\n".join(lines)


def _mode(fast: bool | None) -> tuple[bool, str]:
    """Fast mode on or off, and where that came from: the settings cell or the environment."""
    if fast is not None:
        return bool(fast), f"FAST = {bool(fast)} in the settings cell"
    if os.environ.get(FAST_ENV, "").strip():
        return fast_mode(), f"${FAST_ENV}={os.environ[FAST_ENV].strip()} (FAST is None)"
    return False, "the default (FAST is None, no $INVOLUTION_FAST)"


def setup(fast: bool | None = None, runs_on_drive: bool = False, verbose: bool = True) -> Workbook:
    """Prepare a notebook: find the repository, decide the mode and work directory.

    Args:
        fast: force fast mode on or off; ``None`` follows ``$INVOLUTION_FAST``.
        runs_on_drive: Colab only: keep runs and slides on Google Drive
            (``MyDrive/involution``), so that a run interrupted by a disconnect
            resumes when the notebook is run again.
        verbose: print where the notebook runs (repository, mode, outputs, device).

    In Colab it clones the repository when no checkout is present and reports
    the GPU, or says how to get one. In fast mode W&B logging is switched off.
    """
    colab = in_colab()
    try:
        root = repo_root()
    except FileNotFoundError:
        if not colab:
            raise
        root = _clone_for_colab()
    fast, source = _mode(fast)
    if fast:
        os.environ["WANDB_MODE"] = "disabled"  # tests must not log to anyone's W&B project
    _quiet_libraries()
    # Work from the repository's root (a notebook starts in notebooks/): data,
    # runs and slides then have the short relative paths the outputs print.
    os.chdir(root)
    book = Workbook(root=root, fast=fast, workdir=work_directory(fast, root, runs_on_drive),
                    colab=colab, gpu=gpu_name(), mode_source=source)
    if verbose:
        print(book.describe())
        if colab and book.gpu is None:
            print("No GPU in this Colab session: Runtime > Change runtime type > GPU, then "
                  "run all cells again (training on the CPU is very slow).")
    return book
