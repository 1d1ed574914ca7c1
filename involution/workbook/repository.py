"""The repository the workbook lives in: where its checkout is, its layout, and its address.

The workbook reads and writes committed files (``slides/``, ``notebooks/``),
so it needs the checkout; this module is the one place that knows where that
is and how it is laid out. The repository's public address (from which Colab
installs the project and clones the committed results) is written once, as
``Repository`` in ``pyproject.toml``'s ``[project.urls]``: read from that file
in a checkout, else from the installed package's metadata, which pip builds
from the same file. ``python -m involution set-repo URL`` changes it.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import tomllib

from involution._checkout import NOTEBOOKS, PYPROJECT, checkout_of_this_package, is_repo_root

__all__ = ["PLACEHOLDER_URL", "COLAB_CHECKOUT", "NOTEBOOKS", "SLIDES", "PYPROJECT", "repo_root", "repository_url",
           "is_placeholder"]

# What pyproject.toml says until a published copy's address is set.
PLACEHOLDER_URL = "https://github.com/OWNER/involution"
COLAB_CHECKOUT = Path("/content/involution")  # where Colab keeps the clone
# The committed folders the workbook uses, relative to the repository's root.
SLIDES = Path("slides")


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository's root folder (holding ``pyproject.toml``, ``involution/``, ``notebooks/``).

    Searched upwards from ``start`` (default: the current directory, which is
    ``notebooks/`` when a notebook runs), then from this package's own folder,
    then in Colab's checkout folder.
    """
    starts = [Path(start).resolve()] if start is not None else [Path.cwd().resolve()]
    starts += [Path(__file__).resolve().parent, COLAB_CHECKOUT]
    for origin in starts:
        for candidate in (origin, *origin.parents):
            if is_repo_root(candidate):
                return candidate
    raise FileNotFoundError(
        f"no checkout of the involution repository found above {starts[0]} or the installed "
        "package: the notebooks need its committed results in slides/. Run them from a clone of "
        f"{repository_url()}.")


def repository_url() -> str:
    """The repository's address: ``[project.urls] Repository`` of ``pyproject.toml``.

    Read from the checkout this package runs from (an editable install, a
    clone), else from the installed package's metadata.
    """
    checkout = checkout_of_this_package()
    if checkout is not None:
        urls = tomllib.loads((checkout / PYPROJECT).read_text())["project"].get("urls", {})
        if "Repository" in urls:
            return urls["Repository"]
    try:
        links = importlib.metadata.metadata("involution").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        links = []
    for link in links:
        label, _, url = link.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    return PLACEHOLDER_URL


def is_placeholder(url: str) -> bool:
    """Whether ``url`` is still the placeholder, not a published copy's address."""
    return url.rstrip("/") == PLACEHOLDER_URL
