"""Whether the package runs from a clone of its repository.

Light on purpose (no torch): the command line asks it before importing
anything heavy, to show the maintainer's commands only where they can work.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["NOTEBOOKS", "PYPROJECT", "is_repo_root", "checkout_of_this_package"]

# Committed files of the repository, relative to its root.
NOTEBOOKS = Path("notebooks")
PYPROJECT = Path("pyproject.toml")


def is_repo_root(path: Path) -> bool:
    """True for the root folder of a clone: ``pyproject.toml``, ``involution/`` and ``notebooks/``."""
    return (path / PYPROJECT).is_file() and (path / "involution").is_dir() and (path / NOTEBOOKS).is_dir()


def checkout_of_this_package() -> Path | None:
    """The clone this package is imported from (an editable install), or None (an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    return root if is_repo_root(root) else None
