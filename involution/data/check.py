"""The check-data command: decode every image of a data folder and list what is wrong.

``python -m involution check-data ROOT`` scans every class folder (the clutter
class included) for files that do not decode, symbolic links that cannot be
followed and class folders without images, so that a damaged copy is found
before a training run meets it.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from involution.data.images import CorruptImageError, load_rgb_image
from involution.data.locate import (
    CALTECH256_FILENAME,
    find_categories_dir,
    missing_data_message,
    name_problem,
    printable,
    resolve_root,
    scan_class_folders,
    scan_images,
    unread_image_files,
)


def _read_problem(path: Path) -> str | None:
    """None if ``path`` decodes and can be named, else why not."""
    misnamed = name_problem(str(path))
    if misnamed:
        return misnamed
    try:
        load_rgb_image(path)
    except CorruptImageError as error:
        return f"{type(error.__cause__).__name__}: {error.__cause__}"
    return None


def _survey(root: Path) -> tuple[Path, dict[str, list[str]], list[tuple[Path, str]]]:
    """The categories folder, {class folder: image names} (clutter included) and every broken link."""
    categories_dir = find_categories_dir(root)
    if categories_dir is None:
        raise FileNotFoundError(missing_data_message(root))
    folders, broken = scan_class_folders(categories_dir, include_clutter=True)
    images = {}
    for folder in folders:
        images[folder], broken_here = scan_images(categories_dir / folder)
        broken += broken_here
    return categories_dir, images, broken


def check_data(root: str | os.PathLike, workers: int | None = None) -> list[tuple[Path, str]]:
    """Decode every image under ``root``; return the problems as (path, reason), broken links first.

    All class folders are scanned, the clutter class included. A symbolic
    link that cannot be followed (dangling, or a loop) where a class folder
    or an image would be is a problem too. Decoding is spread over a few
    threads (PIL releases the GIL while decoding); a full Caltech-256 takes
    a minute or two.
    """
    categories_dir, images, broken = _survey(resolve_root(root))
    return broken + _undecodable(categories_dir, images, workers)


def _undecodable(categories_dir: Path, images: Mapping[str, Sequence[str]], workers: int | None = None):
    """(path, reason) of every image in ``images`` ({class folder: names}) that does not decode."""
    paths = [categories_dir / folder / name for folder, names in images.items() for name in names]
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(tqdm(pool.map(_read_problem, paths), total=len(paths), desc="Checking images", unit="img"))
    return [(path, problem) for path, problem in zip(paths, problems) if problem is not None]


def main_check_data(root: str | os.PathLike) -> int:
    """``python -m involution check-data ROOT``: print a report, return the exit code.

    0 when every image decodes and every class folder has images, 1 when
    there are unreadable files, broken links or empty class folders, 2 when
    there is no data.
    """
    try:
        categories_dir, images, broken = _survey(resolve_root(root))
    except (FileNotFoundError, ValueError) as error:
        print(error)
        return 2
    unreadable = _undecodable(categories_dir, images)
    empty = [folder for folder, names in images.items() if not names]
    n_images = sum(map(len, images.values()))
    print(f"Checked {n_images} images in {len(images)} class folders under {categories_dir}.")
    for path, reason in broken:
        print(f"  broken link: {printable(path)}  ({reason})")
    for path, reason in unreadable:
        print(f"  unreadable: {printable(path)}  ({reason})")
    for folder in empty:
        print(f"  empty class folder: {categories_dir / folder}")
    for folder in images:
        for name in unread_image_files(categories_dir / folder):
            print(f"  left out (a type the loader does not read; convert it to PNG or JPEG): "
                  f"{categories_dir / folder / name}")
    if not unreadable and not broken and not empty:
        print("All images decode.")
        return 0
    print(
        f"{len(unreadable)} unreadable file(s), {len(broken)} broken link(s), {len(empty)} empty class "
        f"folder(s). Re-extract the archive (`tar xf {CALTECH256_FILENAME}` in the data folder), or repair "
        "or delete the bad files and links; the data module then says how to bring the split file up to date."
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m involution check-data ROOT``."""
    parser = argparse.ArgumentParser(prog="python -m involution check-data",
                                     description="Decode every image of a Caltech-256 copy and "
                                                 "list the unreadable ones.")
    parser.add_argument("root", help="folder holding 256_ObjectCategories ('sample' for the "
                                     "built-in sample set)")
    return main_check_data(parser.parse_args(argv).root)
