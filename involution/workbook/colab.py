"""The notebooks' Colab lines, written from the repository's one address.

Every notebook's set-up cell starts with the same few lines that install the
project in Colab, and its first cell carries an "Open in Colab" badge; both
are written from the address in ``pyproject.toml``
(:func:`~involution.workbook.repository.repository_url`). To publish a fork::

    python -m involution set-repo https://github.com/NAME/involution

rewrites that address in ``pyproject.toml``'s project links and every
notebook's Colab lines (sources only: outputs stay); without a URL it
rewrites the notebooks from the address as it is.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from involution.workbook.repository import NOTEBOOKS, PYPROJECT, is_placeholder, repo_root, repository_url

__all__ = ["SETUP_MARKER", "setup_lines", "badge", "set_repo", "write_cells", "main"]

SETUP_MARKER = ("# Colab: install this project once per session "
                "(written by `python -m involution set-repo URL`)")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Matched against the whole string (fullmatch): "$" alone also matches before a final newline,
# which then landed in pyproject.toml and the notebooks. GitHub names are ASCII.
_GITHUB = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+?)(\.git)?/?")


def setup_lines(url: str) -> list[str]:
    """The first lines of every set-up cell: in Colab, without the project installed, install it."""
    if is_placeholder(url):
        action = ('raise SystemExit("This notebook does not know its repository\'s address yet: run '
                  '`python -m involution set-repo https://github.com/NAME/involution` in a '
                  'clone and open the notebook from that copy, or install it here first: %pip install '
                  '\'involution[notebooks] @ git+https://github.com/NAME/involution\'")')
    else:
        action = f'%pip install "involution[notebooks] @ git+{url}"'
    return [SETUP_MARKER,
            "import importlib.util, sys",
            'if "google.colab" in sys.modules and importlib.util.find_spec("involution") is None:',
            f"    {action}"]


def badge(url: str, notebook: str) -> str:
    """The markdown of an "Open in Colab" badge for ``notebooks/<notebook>`` of the repository at ``url``."""
    match = _GITHUB.fullmatch(url)
    owner, name = (match["owner"], match["name"]) if match and not is_placeholder(url) \
        else ("<your-account>", "involution")
    return (f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/"
            f"{owner}/{name}/blob/main/notebooks/{notebook})")


def _lines(cell: dict) -> list[str]:
    source = cell["source"]
    return (source if isinstance(source, str) else "".join(source)).split("\n")


def _set_lines(cell: dict, lines: list[str]) -> None:
    text = "\n".join(lines)
    cell["source"] = [line + "\n" for line in text.split("\n")[:-1]] + [text.split("\n")[-1]]


def write_cells(notebook: Path, url: str) -> bool:
    """Rewrite ``notebook``'s badge and Colab set-up lines for ``url``; True if it changed."""
    data = json.loads(notebook.read_text())
    before = json.dumps(data)
    first = data["cells"][0]
    lines = [line for line in _lines(first) if BADGE_IMAGE not in line]
    _set_lines(first, [badge(url, notebook.name), *lines])
    for cell in data["cells"]:
        lines = _lines(cell)
        if cell["cell_type"] == "code" and lines[0] == SETUP_MARKER:
            _set_lines(cell, setup_lines(url) + lines[len(setup_lines(url)):])
    if json.dumps(data) == before:
        return False
    notebook.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return True


def set_repo(url: str, root: Path | None = None) -> list[Path]:
    """Write ``url`` into ``pyproject.toml``'s project links and every notebook; returns the files changed."""
    if not _GITHUB.fullmatch(url):
        raise ValueError(f"{url!r} is not a GitHub repository address: use "
                         "https://github.com/NAME/REPOSITORY (Colab opens notebooks from GitHub)")
    root = root or repo_root()
    changed = [root / PYPROJECT] if _write_project_urls(root / PYPROJECT, url) else []
    return changed + [nb for nb in sorted((root / NOTEBOOKS).glob("*.ipynb")) if write_cells(nb, url)]


def _write_project_urls(pyproject: Path, url: str) -> bool:
    """Point pyproject.toml's [project.urls] (the package index's links) at ``url``."""
    text = pyproject.read_text()
    # Each link is the repository's address, perhaps followed by a page of it (/issues).
    changed = re.sub(r'^(\w+ = ")https://github\.com/[^/"]+/[^/"]+', lambda m: m[1] + url.rstrip("/"),
                     text, flags=re.M)
    if changed == text:
        return False
    pyproject.write_text(changed)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m involution set-repo [URL]``."""
    parser = argparse.ArgumentParser(
        prog="python -m involution set-repo",
        description="Write the repository's address into pyproject.toml and every notebook's Colab lines "
                    "(badge and set-up cell). Without URL, rewrite the notebooks from the address as it is.")
    parser.add_argument("url", nargs="?", help="https://github.com/NAME/involution")
    args = parser.parse_args(argv)
    try:
        root = repo_root()
    except FileNotFoundError:
        print("error: set-repo rewrites a clone of the repository (its pyproject.toml and notebooks), and none "
              "was found here or around the installed package: run it inside a clone (git clone URL; cd involution)",
              file=sys.stderr)
        return 2
    if args.url is not None:
        try:
            changed = set_repo(args.url, root)
        except ValueError as error:
            parser.error(str(error))
    else:
        changed = [nb for nb in sorted((root / NOTEBOOKS).glob("*.ipynb")) if write_cells(nb, repository_url())]
    print("\n".join(f"rewrote {path}" for path in changed) or "nothing to change")
    if args.url is not None and any(path.name == PYPROJECT.name for path in changed):
        print("The installed package's metadata keeps the old address until it is reinstalled "
              "(pip install -e .); a checkout reads pyproject.toml directly.")
    return 0
