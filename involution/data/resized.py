"""A pre-resized copy of a data folder: decode small JPEGs instead of large ones, every epoch.

Most of a loader's time per image goes into decoding the full photograph
and resizing it to the network's size. A copy whose images are already
scaled so that their short side is ``short_side`` (256 serves 224 px
training and its 256 px evaluation resize) is made once, in the same
layout, and then used as the data folder::

    python -m involution.data.resized data/caltech256 data/caltech256-256px
    python -m involution fit ... --data.root data/caltech256-256px

Images already that small are copied byte for byte. The copy has the same
relative paths, so the split made for it is the same split (splits depend
only on the paths, the fractions and the seed); a data set's own
``split.csv`` is copied with it. Resampling twice (here, and again in the
transforms) changes pixels slightly, so results on a copy are not bit for
bit those on the original.
"""
from __future__ import annotations

import argparse
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from involution.data.images import load_rgb_image
from involution.data.locate import (
    CATEGORIES_DIRNAME,
    find_categories_dir,
    list_class_folders,
    list_images,
    missing_data_message,
    resolve_root,
)
from involution.data.splits import OWN_SPLIT_FILENAME

DEFAULT_SHORT_SIDE = 256
JPEG_QUALITY = 90


def _resize_one(source: Path, destination: Path, short_side: int, quality: int) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        width, height = image.size
        if min(width, height) <= short_side:
            shutil.copy2(source, destination)
            return
    image = load_rgb_image(source)
    scale = short_side / min(width, height)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    image.resize(size, Image.Resampling.BILINEAR).save(destination, quality=quality)


def make_resized_copy(
    root: str | os.PathLike,
    destination: str | os.PathLike,
    short_side: int = DEFAULT_SHORT_SIDE,
    quality: int = JPEG_QUALITY,
    workers: int | None = None,
) -> Path:
    """Write a copy of the data under ``root`` with every image's short side at most ``short_side``; return it.

    Images already written (an interrupted run) are kept, so running it
    again finishes the job. Decoding and encoding run in a few threads
    (Pillow releases the GIL while it works).
    """
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 8:
        raise ValueError(f"short_side must be an integer of at least 8 pixels, e.g. 256; got {short_side!r}.")
    categories = find_categories_dir(root)
    if categories is None:
        raise FileNotFoundError(missing_data_message(resolve_root(root)))
    target = Path(destination).expanduser() / CATEGORIES_DIRNAME
    if target.resolve() == categories.resolve():
        raise ValueError(f"The copy must go to another folder than the data itself ({categories}).")
    paths = list_images(categories, list_class_folders(categories, include_clutter=True))
    todo = [p for p in paths if not (target / p).is_file()]

    def resize(relative: str) -> None:
        _resize_one(categories / relative, target / relative, short_side, quality)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(tqdm(pool.map(resize, todo), total=len(todo), desc=f"Resizing to {short_side} px", unit="img"))
    own_split = categories.parent / OWN_SPLIT_FILENAME
    if own_split.is_file():
        shutil.copy2(own_split, target.parent / OWN_SPLIT_FILENAME)
    return target.parent


def main(argv: list[str] | None = None) -> int:
    """``python -m involution resize-data ROOT DESTINATION``."""
    parser = argparse.ArgumentParser(
        prog="python -m involution resize-data",
        description="Make a pre-resized copy of a data folder (Caltech-256 layout) for faster loading.",
    )
    parser.add_argument("root", help="the data folder (holding 256_ObjectCategories), or 'sample'/'shapes'")
    parser.add_argument("destination", help="the folder to write the copy to")
    parser.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE,
                        help=f"short side of the resized images in pixels (default {DEFAULT_SHORT_SIDE})")
    parser.add_argument("--quality", type=int, default=JPEG_QUALITY, help=f"JPEG quality (default {JPEG_QUALITY})")
    args = parser.parse_args(argv)
    copy = make_resized_copy(args.root, args.destination, args.short_side, args.quality)
    print(f"Wrote the resized copy to {copy}; use it with --data.root {copy}")
    return 0
