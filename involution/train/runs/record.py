"""The run folder's files and ``results.json``'s schema (:class:`RunResults`): see :mod:`involution.train.runs`."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.csv"
# A run's trained weights as a plain float16 state_dict: small enough to commit
# beside an exported run (see export_runs), loadable without Lightning's checkpoint.
WEIGHTS_FILE = "weights.pt"

# -- the results file ------------------------------------------------------------------


class RunRecordError(ValueError):
    """A run's ``results.json`` that cannot be read: not JSON, or not a JSON object."""


@dataclass
class RunResults:
    """The contents of a run's ``results.json``; every field is one key of the file.

    The training fills the description (``model`` to ``config``) when a fit
    ends, ``epochs_trained`` and the best validation scores (``best_*``), and
    one entry in ``resumes`` per resumed fit. Evaluations of the run's
    checkpoints each add an entry to ``evaluations``; a test on the run's own
    test images also sets ``test_top1``/``test_top5`` (and ``test_checkpoint``),
    which a later fit clears when it replaces that checkpoint. Keys this
    version does not know are kept in ``extra`` and written back unchanged.
    """

    model: str | None = None
    params: int | None = None
    dataset: dict | None = None
    machine: dict | None = None
    seed: int | None = None  # seed_everything's value
    config: dict | None = None  # {"model": ..., "data": ...} as the run was started
    epochs_trained: int | None = None  # None: no fit ended in this folder (an evaluation's record)
    best_val_top1: float | None = None
    best_val_top5: float | None = None
    best_epoch: int | None = None  # counted from 0, as metrics.csv and Lightning count; messages print it + 1
    test_top1: float | None = None
    test_top5: float | None = None
    test_checkpoint: str | None = None
    resumes: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    updated: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    # The fields a fit or an evaluation describes once and never changes afterwards.
    DESCRIPTION = ("model", "params", "dataset", "machine", "seed", "config")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunResults":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict:
        """The file's contents: unset scores and empty lists are left out, as before they exist."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data = {k: v for k, v in data.items()
                if k in self.DESCRIPTION or (v is not None and v != [])}
        return {**data, **self.extra}

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "RunResults":
        """The record in ``folder``; a file that is not a JSON object is a :class:`RunRecordError` naming it."""
        path = Path(folder) / RESULTS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not a finished run: it has no {RESULTS_FILE}")
        try:
            data = json.loads(path.read_text())
            problem = None if isinstance(data, dict) else f"it holds a JSON {type(data).__name__}, not an object"
        except json.JSONDecodeError as error:
            problem = f"{error.msg} at line {error.lineno} column {error.colno}"
        except (OSError, UnicodeDecodeError) as error:
            problem = str(error)
        if problem:
            raise RunRecordError(
                f"the run record {path} cannot be read: {problem}. Repair it there, or restore it from a "
                "copy; the run's checkpoints and metrics.csv are not affected, and nothing is written to "
                "the run until it reads again.")
        return cls.from_dict(data)

    def write(self, folder: str | os.PathLike) -> None:
        """Write atomically: a job killed meanwhile leaves the previous file whole."""
        self.updated = time.strftime("%Y-%m-%d %H:%M:%S")
        text = json.dumps(self.to_dict(), indent=2, default=str) + "\n"
        write_atomically(Path(folder) / RESULTS_FILE, lambda file: file.write(text.encode()))

    def describe_once(self, description: "RunResults") -> None:
        """Take ``description``'s description fields where this record has none yet."""
        for key in self.DESCRIPTION:
            if getattr(self, key) is None:
                setattr(self, key, getattr(description, key))

    def percent(self, key: str) -> float | None:
        """A score (``"best_val_top1"``, ``"test_top5"``, ...) in %, None where not recorded."""
        value = getattr(self, key)
        return None if value is None else 100 * value


# -- the folder -----------------------------------------------------------------------------


def new_version_folder(folder: str | os.PathLike, template: str = "{}", create: bool = False) -> Path:
    """``folder/<template filled with the start time>``, which did not exist yet.

    With ``create`` the folder is made here, in one step that fails if another process made it
    first: two commands started within the same second then get two folders, never one.
    """
    folder, version = Path(folder), time.strftime("%Y%m%d-%H%M%S")
    candidate, n = folder / template.format(version), 1
    while True:
        if create:
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                pass
        elif not candidate.exists():
            return candidate
        candidate, n = folder / template.format(f"{version}-{n}"), n + 1


def newest_version_folder(runs_dir: str | os.PathLike, name: str) -> Path | None:
    """The newest version folder of run ``name`` (finished or not); versions sort by start time."""
    folder = Path(runs_dir) / name
    versions = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return versions[-1] if versions else None


def trainer_run_folder(trainer) -> Path:
    """The folder of the current run (the logger's), where its files are written.

    With several processes every one must call it: ``trainer.log_dir`` is
    rank 0's folder, broadcast to the others.
    """
    return Path(trainer.log_dir or trainer.default_root_dir)


def run_folder_of_checkpoint(ckpt_path: str | os.PathLike | None) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path)
    if path.parent.name == "checkpoints" and path.parent.parent.is_dir():
        return path.parent.parent
    return None


def write_atomically(path: str | os.PathLike, write: Callable) -> None:
    """Write a file so that it is either complete or not replaced at all.

    ``write(file)`` fills a temporary file in the destination folder (on the
    same file system, so the final rename cannot turn into a copy), which is
    flushed to disk and then renamed over ``path`` in one step. A process
    killed at any moment leaves the previous file intact (and at worst a
    hidden ``.NAME.*.partial`` file beside it). A full disk is an ``OSError``
    (ENOSPC) that names the folder and says that the previous file is intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(), not tempfile.mkstemp(): the file gets the usual permissions, not 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        with open(temporary, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _disk_full(error):  # torch.save reports it as "enforce fail ... unexpected pos"
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            raise OSError(errno.ENOSPC, f"no space left on {path.parent} while writing {path.name}: {kept}. "
                                        "Free some space there (or write the runs to another disk) and run "
                                        "again.") from error
        raise
    try:  # make the rename itself durable
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some systems cannot open folders
        return
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from or during, is a full disk (or quota)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def machine_description(precision: str | None = None) -> dict:
    """Where a run happened, and in which arithmetic (Lightning's ``precision``): reported beside every result."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(),
        **({"precision": str(precision)} if precision is not None else {}),
    }


def portable_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working folder when inside it, so results files name no machine's folders."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
