"""Which data a notebook trains on, and the one sentence that says so (see :meth:`Workbook.choose_data`)."""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlparse

from involution.data import (
    CALTECH256_URL,
    DATA_KINDS,
    SAMPLE_ROOT_ALIAS,
    SAMPLE_SET_DESCRIPTION,
    SHAPES_ROOT_ALIAS,
    dataset_kind,
    find_categories_dir,
)
from involution.data.shapes import SHAPE_CLASSES, SPLIT_SIZES

__all__ = ["DATA_ROOT_ENV", "DataChoice", "choose_data", "internet_reachable"]

DATA_ROOT_ENV = "INVOLUTION_DATA_ROOT"


def internet_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    Name resolution can hang far longer than a socket timeout on machines
    without internet, so the whole attempt runs in a thread that is given up
    after ``timeout``.
    """
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
    kind: str  # "sample", "shapes", "caltech256" or "folder"
    statement: str

    @property
    def is_sample_set(self) -> bool:
        return self.kind == "sample"

    def cli_args(self) -> list[str]:
        """The ``--data.*`` arguments of :func:`involution.train.cli.run_cli` for this choice."""
        return ["--data.root", self.root, "--data.download", str(self.download).lower()]

    @property
    def label(self) -> str:
        """A short name to put beside every number: never lets a built-in set pass for Caltech-256."""
        return DATA_KINDS[self.kind].label


# SAMPLE_SET_DESCRIPTION already says that the sample set measures memorisation.
_SAMPLE_NOTE = "Its accuracies say nothing about Caltech-256."


def _shapes_statement(why: str) -> str:
    counts = ", ".join(f"{n * len(SHAPE_CLASSES):,} {split}" for split, n in SPLIT_SIZES.items())
    return (f"Data: the {DATA_KINDS['shapes'].name}, {why}: {len(SHAPE_CLASSES)} classes of shapes on "
            f"crops of real photographs ({counts} images), validation and test drawn from photographs "
            "that training never sees, so test accuracy measures generalisation to unseen backgrounds. Its "
            "numbers are not Caltech-256 numbers.")


def choose_data(root: str | os.PathLike = "shapes", fast: bool = False, gpu: bool = True,
                reachable: Callable[[], bool] | None = None,
                auto_folder: str | os.PathLike | None = None,
                option: str = "DATA_ROOT") -> DataChoice:
    """Decide the data a notebook trains on, and say why in one sentence.

    Args:
        root: ``"shapes"`` (the built-in shapes set, generated offline: the
            default), ``"sample"`` (the tiny sample set: a smoke test), a folder
            that holds (or will hold) ``256_ObjectCategories``, or ``"auto"``:
            ``$INVOLUTION_DATA_ROOT`` if set, else Caltech-256 when it is in
            ``auto_folder`` (the repository's ``data/caltech256``, given by
            :meth:`Workbook.choose_data`), or, with a GPU, can be downloaded there; else
            the shapes set.
        fast: fast mode always uses the sample set.
        gpu: whether a GPU will train. Without one, "auto" never downloads
            Caltech-256 (150 epochs at 224 px would take days on a CPU).
        reachable: returns whether the Caltech-256 server can be reached
            (default: :func:`internet_reachable`, a 3-second check).
        auto_folder: where ``"auto"`` looks for Caltech-256 (see ``root``).
        option: the setting ``root`` came from, named in the sentences: a
            notebook's ``DATA_ROOT`` or a command's flag, such as ``--data``.

    The returned :attr:`DataChoice.statement` is one line to print at the top
    of a notebook's output; it names the setting the choice came from.
    """
    if not isinstance(root, (str, os.PathLike)) or not str(root).strip():
        raise ValueError(f"data root must be 'shapes', 'sample', 'auto' or a folder path; got {root!r}")
    root = str(root)
    if option.startswith("--"):
        setting, use_shapes = f"{option} {root}", f"use {option} shapes"
    else:
        setting, use_shapes = f"{option} = {root!r} in the settings cell", f"set {option} = 'shapes'"
    if fast:
        return DataChoice(SAMPLE_ROOT_ALIAS, False, "sample",
                          f"Data: {SAMPLE_SET_DESCRIPTION}; fast mode always uses it, "
                          f"whatever {setting} says. {_SAMPLE_NOTE}")
    automatic = root == "auto"
    if automatic and os.environ.get(DATA_ROOT_ENV):
        root = os.environ[DATA_ROOT_ENV]
        setting = f"${DATA_ROOT_ENV}={root!r} (DATA_ROOT is 'auto')"
    elif automatic:
        if auto_folder is None:
            raise ValueError("DATA_ROOT = 'auto' needs the folder to look in: use Workbook.choose_data")
        root = str(auto_folder)
    if root == SAMPLE_ROOT_ALIAS:
        return DataChoice(root, False, "sample", f"Data: {SAMPLE_SET_DESCRIPTION}, as {setting} asks. "
                          + _SAMPLE_NOTE)
    if root == SHAPES_ROOT_ALIAS:
        return DataChoice(root, False, "shapes", _shapes_statement(f"as {setting} asks"))
    categories = find_categories_dir(root)
    if categories is not None:
        kind = dataset_kind(categories)
        return DataChoice(root, False, kind, f"Data: {DATA_KINDS[kind].label}, found in {root} ({setting}).")
    host = urlparse(CALTECH256_URL).hostname
    if automatic and not gpu:
        return DataChoice(SHAPES_ROOT_ALIAS, False, "shapes", _shapes_statement(
            f"because {setting} found no Caltech-256 in {root} and there is no GPU to train on "
            "it (set DATA_ROOT to a folder to download it there anyway)"))
    if (reachable or internet_reachable)():
        return DataChoice(root, True, "caltech256",
                          f"Data: Caltech-256, not yet in {root}: it will be downloaded from "
                          f"{host} (1.2 GB, checked by MD5) before training ({setting}).")
    if not automatic:
        raise FileNotFoundError(f"{setting}, but {root} holds no 256_ObjectCategories folder and "
                                f"{host} cannot be reached to download Caltech-256. Put the data "
                                f"there (see data/README.md) or {use_shapes}.")
    return DataChoice(SHAPES_ROOT_ALIAS, False, "shapes", _shapes_statement(
        f"because {setting} found no Caltech-256 in {root} and {host} cannot be reached"))
