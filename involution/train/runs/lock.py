"""One process at a time on a run folder: the run's ``run.lock``.

Two commands on one run at once (two resumes, a test while a fit goes on) would
both write its checkpoints, ``metrics.csv`` and ``results.json``, each undoing the
other's. The first command to start takes the lock, a small JSON file naming
its process, machine, command and start time; a second is refused with one line
that names them. The lock is given back when the command ends, however it ends;
a lock whose process no longer runs on this machine (a killed job) is stale and
taken over. A lock from another machine (a shared file system) cannot be
checked from here: the message says how to remove it by hand.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

__all__ = ["LOCK_FILE", "RunInUseError", "lock_run", "is_first_process"]

LOCK_FILE = "run.lock"


class RunInUseError(ValueError):
    """Another command holds the run folder's lock."""


def is_first_process() -> bool:
    """Whether this is the first process of a command (rank 0, or the only one): the one that locks.

    Processes started for the others by Lightning, torchrun or SLURM have their rank set.
    """
    for variable in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable]) == 0
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # half-written, or removed meanwhile


def _running_here(holder: dict) -> bool:
    """Whether the lock's process may still run: True unless it was of this machine and is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def lock_run(folder: str | os.PathLike, command: str) -> Callable[[], None]:
    """Take ``folder``'s lock for this process and return the function that gives it back.

    Raises :class:`RunInUseError` while another running process holds it.
    """
    path = Path(folder) / LOCK_FILE
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):  # a stale lock is removed, then taken; another process may race for it
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(path)
            if holder and not _running_here(holder):
                path.unlink(missing_ok=True)
                continue
            raise RunInUseError(
                f"the run {Path(folder)} is in use by another command"
                + (f" ({holder.get('command')}, process {holder.get('pid')} on {holder.get('host')}, since "
                   f"{holder.get('since')})" if holder else "")
                + f"; wait for it to end, or, if it no longer runs, delete {path}") from None
        with os.fdopen(descriptor, "w") as file:
            json.dump(record, file)

        def release() -> None:
            if _holder(path) == record:
                path.unlink(missing_ok=True)
        return release
    raise RunInUseError(f"could not take the lock {path}: other commands keep taking it; try again")
