"""Caltech-256 for PyTorch Lightning: download, split, decode, augment, batch.

Caltech-256 (Griffin, Holub and Perona, 2007) is 30,607 photographs in 257
folders, ``256_ObjectCategories/NNN.name/NNN_XXXX.jpg``: 256 object classes
plus ``257.clutter``, a "none of the above" class. It has no official
train/test split, so this module makes one and writes it down, and a few
quirks of the archive need care:

* some JPEGs are grayscale and a few are CMYK, so every image is converted to
  8-bit, 3-channel RGB when it is read (16-bit, palette and transparent
  images added by hand too: see :func:`load_rgb_image`);
* class folders hold the odd non-image file and even a sub-folder, which are
  ignored: only image files directly inside a class folder count;
* a broken image or symbolic link must not be skipped quietly (the data set
  would shrink without anyone noticing), so meeting one raises an error that
  names it, and :func:`check_data` scans a whole copy for such files.

The split is stratified (every class is cut 80/10/10 on its own) and
deterministic: inside a class, files are ordered by the SHA-256 of
``"{seed}/{relative path}"``, which depends neither on the order in which the
file system lists them nor on the machine. It is stored as a small CSV
(``path,split``) that lives with the data it describes, in the folder that
holds ``256_ObjectCategories``:

* ``<data folder>/split.csv`` is a data set's own, fixed split, shipped with
  it (the sample set has one); it is used as it is and never written;
* otherwise the split is made on first use and written to
  ``<data folder>/splits/<name>.csv`` (see :func:`split_file_name`), so two
  different data folders never share a split file and an installed package
  never writes into its own folder.

A split file must list exactly the images on disk: images added or removed
since it was made stop the data module with a :class:`SplitMismatchError`
that counts both, rather than training on a silent subset. ``split_update``
(``"extend"`` or ``"rebuild"``) brings a made split up to date.

For quick runs without the 1.2 GB download, the package ships a tiny sample
set in the same layout (:func:`sample_data_root`, or ``root="sample"``). It is
made of crops of a few public sample photographs and is **not** Caltech-256.

Typical use::

    dm = Caltech256DataModule("data/caltech256", download=True)
    dm.prepare_data(); dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
"""
from __future__ import annotations

import csv
import errno
import hashlib
import math
import os
import shutil
import urllib.error
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.utils import calculate_md5, download_and_extract_archive
from torchvision.transforms import v2
from tqdm.auto import tqdm

__all__ = [
    "CALTECH256_URL",
    "CALTECH256_FILENAME",
    "CALTECH256_MD5",
    "CALTECH256_NUM_CLASSES",
    "CATEGORIES_DIRNAME",
    "DEFAULT_SPLIT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TRANSFORM_PRESETS",
    "SAMPLE_SET_NOTICE",
    "SAMPLE_SET_DESCRIPTION",
    "SHAPES_ROOT_ALIAS",
    "DATASET_NAMES",
    "dataset_kind",
    "CorruptImageError",
    "ImageListDataset",
    "Caltech256DataModule",
    "build_transforms",
    "denormalize",
    "download_caltech256",
    "find_categories_dir",
    "class_names",
    "sample_data_root",
    "make_split",
    "split_file_name",
    "default_split_dir",
    "extend_split",
    "save_split",
    "load_split",
    "OWN_SPLIT_FILENAME",
    "SPLIT_UPDATES",
    "SplitMismatchError",
    "load_rgb_image",
    "check_data",
    "main_check_data",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

# The official archive, exactly as torchvision's ``Caltech256`` class fetches it
# (torchvision/datasets/caltech.py), so that both agree on what "the" data is.
CALTECH256_URL = "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar"
CALTECH256_FILENAME = "256_ObjectCategories.tar"
CALTECH256_MD5 = "67b4f42ca05d46448c6bb8ecd2220f6d"
CALTECH256_NUM_CLASSES = 257  # 256 object classes + 257.clutter

CATEGORIES_DIRNAME = "256_ObjectCategories"
CLUTTER_NAME = "clutter"  # the folder is "257.clutter"
# Where the archive can be found: the plain layout, then torchvision's.
_LAYOUTS = (Path(CATEGORIES_DIRNAME), Path("caltech256") / CATEGORIES_DIRNAME)

# Lower-case suffixes that count as images; torchvision's ImageFolder uses the same.
IMAGE_EXTENSIONS = frozenset(IMG_EXTENSIONS)

# The statistics that ImageNet-trained networks expect; we normalise with
# them too so that pretrained weights can be fine-tuned without surprises.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TRANSFORM_PRESETS = ("course", "standard", "light")
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_NUM_WORKERS = min(4, os.cpu_count() or 1)

SAMPLE_ROOT_ALIAS = "sample"
SHAPES_ROOT_ALIAS = "shapes"
# How each kind of data is named beside a number (see dataset_kind).
DATASET_NAMES = {
    "sample": "built-in sample set (memorisation check, NOT Caltech-256)",
    "shapes": "built-in shapes set (generated offline, NOT Caltech-256)",
    "caltech256": "Caltech-256",
    "folder": "an image folder (not Caltech-256)",
}
# What the sample set is, for sentences that name the data a number came from.
SAMPLE_SET_DESCRIPTION = (
    "the built-in sample set (10 classes, 160 crops of public sample photographs; NOT Caltech-256). "
    "It measures memorisation, not learning: its validation and test crops come from the "
    "training photographs"
)
SAMPLE_SET_NOTICE = (
    "Using the built-in sample set (10 classes cut from a few public sample photographs): "
    "it is NOT Caltech-256 but a tiny smoke test that measures memorisation (its validation and "
    "test crops come from the training photographs), so its accuracy means little. "
    "For a result that measures generalisation offline, use root='shapes'."
)

# A data set that comes with its own fixed split keeps it here, next to
# 256_ObjectCategories (the sample set does); generated splits go to SPLITS_DIRNAME.
OWN_SPLIT_FILENAME = "split.csv"
SPLITS_DIRNAME = "splits"
SPLIT_UPDATES = ("extend", "rebuild")

_CHECK_DATA_HINT = "python -m involution check-data {root}"
_MAX_LISTED = 20  # how many file names an error message lists before counting the rest
_MAX_EXAMPLES = 5  # how many examples a split mismatch lists per kind


# --------------------------------------------------------------------------
# Finding the data
# --------------------------------------------------------------------------


def sample_data_root() -> Path:
    """The folder of the built-in sample set (it holds ``256_ObjectCategories``)."""
    return Path(__file__).resolve().parent / "sample_data"


def _resolve_root(root: str | os.PathLike) -> Path:
    """Turn the ``root`` argument into a path.

    ``"sample"`` means the built-in sample set, ``"shapes"`` the built-in
    shapes set (generated into the cache on first use, see :mod:`involution.shapes`).
    """
    if str(root) == SAMPLE_ROOT_ALIAS:
        return sample_data_root()
    if str(root) == SHAPES_ROOT_ALIAS:
        from .shapes import shapes_root
        return shapes_root()
    return Path(root).expanduser()


def dataset_kind(categories_dir: Path | None) -> str:
    """What a data folder is: ``"sample"``, ``"shapes"``, ``"caltech256"`` or ``"folder"`` (other images).

    Every number is reported with this, so that a built-in set's accuracy is
    never mistaken for a Caltech-256 result.
    """
    if categories_dir is None:
        return "caltech256"  # not downloaded yet: only Caltech-256 is ever downloaded
    if categories_dir.resolve().parent == sample_data_root():
        return "sample"
    if (categories_dir.parent / "sources.csv").is_file() and categories_dir.parent.name.startswith("shapes-"):
        return "shapes"
    # Caltech-256 is 256 classes (257 with clutter) starting at 001.ak47; a subset is just a folder.
    if (categories_dir / "001.ak47").is_dir() and len(_class_folders(categories_dir, True)) >= 256:
        return "caltech256"
    return "folder"


def find_categories_dir(root: str | os.PathLike) -> Path | None:
    """Return ``root``'s ``256_ObjectCategories`` folder, or None if there is none.

    Accepts ``root/256_ObjectCategories`` (what extracting the archive gives),
    ``root/caltech256/256_ObjectCategories`` (what torchvision's ``Caltech256``
    downloads) and ``root`` itself being that folder.
    """
    root = _resolve_root(root)
    if root.name == CATEGORIES_DIRNAME and root.is_dir():
        return root
    for layout in _LAYOUTS:
        if (root / layout).is_dir():
            return root / layout
    return None


def _missing_data_message(root: Path) -> str:
    return (
        f"Caltech-256 was not found under {root}: expected the folder "
        f"{root / CATEGORIES_DIRNAME} (or {root / 'caltech256' / CATEGORIES_DIRNAME}) "
        "holding one sub-folder per class (001.ak47, 002.american-flag, ...). "
        "Pass download=True (on the command line: --data.download true) to fetch the "
        "official 1.2 GB archive, or get it by hand as described in data/README.md. "
        f"To train without downloading, use root={SHAPES_ROOT_ALIAS!r} (the built-in shapes set, "
        f"generated offline) or root={SAMPLE_ROOT_ALIAS!r} (the tiny sample set)."
    )


def _is_clutter(class_folder: str) -> bool:
    return class_folder.partition(".")[2] == CLUTTER_NAME


def _has_image_suffix(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _broken_link(entry: os.DirEntry) -> str | None:
    """Why the symbolic link ``entry`` cannot be followed, or None (also for anything not a link).

    A dangling link would otherwise be skipped quietly (it is not a file) and
    a link loop would crash the listing with ``OSError: [Errno 40]``.
    """
    if not entry.is_symlink():
        return None
    try:
        os.stat(entry.path)
    except OSError as error:
        kind = "symbolic link loop" if error.errno == errno.ELOOP else "dangling symbolic link"
        return f"{kind} to {os.readlink(entry.path)} ({error.strerror})"
    return None


def _listing(folder: Path, wanted: Callable[[os.DirEntry], bool], named_like_wanted: Callable[[str], bool]):
    """Sorted names of the wanted entries of ``folder``, and its broken links as sorted (path, reason).

    A broken link is reported only where its name says it would have been
    used (``named_like_wanted``), like an image file in a class folder.
    Hidden entries are skipped: macOS leaves "._name.jpg" metadata files that
    carry an image suffix but are not images.
    """
    names, broken = [], []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        problem = _broken_link(entry)
        if problem is not None:
            if named_like_wanted(entry.name):
                broken.append((Path(entry.path), problem))
        elif wanted(entry):
            names.append(entry.name)
    return sorted(names), sorted(broken)


def _scan_class_folders(categories_dir: Path, include_clutter: bool) -> tuple[list[str], list[tuple[Path, str]]]:
    """Class folder names (the numeric prefix makes the sort Caltech's order) and broken links among them."""
    folders, broken = _listing(categories_dir, os.DirEntry.is_dir, lambda name: True)
    if not include_clutter:
        folders = [name for name in folders if not _is_clutter(name)]
    if not folders:
        raise ValueError(
            f"{categories_dir} contains no class folders. It should hold one folder per class "
            "(001.ak47/, 002.american-flag/, ...); re-extract the archive or see data/README.md."
        )
    return folders, broken


def _scan_images(class_dir: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Names of the image files directly inside one class folder, and its broken image links."""
    return _listing(class_dir, lambda entry: entry.is_file() and _has_image_suffix(entry.name), _has_image_suffix)


def _fail_on_broken_links(broken: Sequence[tuple[Path, str]], categories_dir: Path) -> None:
    if broken:
        raise FileNotFoundError(
            f"{len(broken)} symbolic link(s) under {categories_dir} cannot be followed:\n  "
            + _examples([f"{path}: {reason}" for path, reason in broken], _MAX_LISTED)
            + "\nRepair or delete them; "
            f"`{_CHECK_DATA_HINT.format(root=categories_dir)}` lists every problem of the data folder."
        )


def _class_folders(categories_dir: Path, include_clutter: bool) -> list[str]:
    """Sorted class folder names; broken links among them are an error."""
    folders, broken = _scan_class_folders(categories_dir, include_clutter)
    _fail_on_broken_links(broken, categories_dir)
    return folders


def class_names(root: str | os.PathLike, include_clutter: bool = True) -> list[str]:
    """Readable class names in label order: the folder names without "NNN.", e.g. ``"ak47"``.

    ``root`` is anything :func:`find_categories_dir` accepts.
    """
    categories_dir = find_categories_dir(root)
    if categories_dir is None:
        raise FileNotFoundError(_missing_data_message(_resolve_root(root)))
    return _readable_names(_class_folders(categories_dir, include_clutter))


def _readable_names(class_folders: Sequence[str]) -> list[str]:
    return [folder.partition(".")[2] or folder for folder in class_folders]


def _list_images(categories_dir: Path, class_folders: Sequence[str]) -> list[str]:
    """All image paths, relative to ``categories_dir`` in POSIX form, sorted.

    Raises naming every class folder that has no image in it, because an
    empty class cannot be learned and would break the split, and every
    broken link to an image, which must not be skipped quietly.
    """
    paths, empty, broken = [], [], []
    for folder in class_folders:
        names, broken_here = _scan_images(categories_dir / folder)
        broken += broken_here
        if not names:
            empty.append(folder)
        paths.extend(f"{folder}/{name}" for name in names)
    _fail_on_broken_links(broken, categories_dir)
    if empty:
        raise ValueError(
            f"These class folders in {categories_dir} contain no image file: {', '.join(empty)}. "
            "Put images in them or delete them (with include_clutter=False the clutter "
            "class is left out)."
        )
    return paths


def _examples(items: Sequence[str], limit: int = _MAX_LISTED, indent: str = "  ") -> str:
    """The first ``limit`` items, one per line after the first, and how many more there are."""
    lines = list(items[:limit]) + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])
    return f"\n{indent}".join(lines)


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------


def download_caltech256(
    root: str | os.PathLike,
    url: str = CALTECH256_URL,
    md5: str = CALTECH256_MD5,
    filename: str = CALTECH256_FILENAME,
    remove_archive: bool = True,
) -> Path:
    """Download, verify and extract Caltech-256 into ``root``; return the categories folder.

    Does nothing when ``root`` already holds the data. Otherwise the archive
    is fetched with torchvision's own downloader (which shows a progress bar
    and checks the MD5) into ``root/filename`` and extracted to
    ``root/256_ObjectCategories``. Extraction goes to a temporary folder
    first and is moved into place only when complete, so an interrupted run
    never leaves a half-extracted data set that looks finished.
    """
    root = Path(root).expanduser()
    existing = find_categories_dir(root)
    if existing is not None:
        return existing

    archive = root / filename
    staging = root / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)  # left over from an interrupted run
    try:
        download_and_extract_archive(
            url, download_root=root, extract_root=staging, filename=filename, md5=md5
        )
    except urllib.error.URLError as error:
        raise RuntimeError(
            f"Could not download {url}: {error.reason}. Check the internet connection, or "
            f"download {filename} by hand as described in data/README.md and extract it into {root}."
        ) from error
    except RuntimeError as error:
        # torchvision only says "File not found or corrupted."; say which file and why.
        actual = calculate_md5(archive) if archive.is_file() else None
        if actual is not None and actual != md5:
            archive.unlink()
            raise RuntimeError(
                f"The archive downloaded from {url} has MD5 {actual}, expected {md5}: the download "
                f"is corrupt or incomplete. The bad file was deleted; run again to retry, or "
                "download it by hand as described in data/README.md."
            ) from error
        raise

    extracted = find_categories_dir(staging)
    if extracted is None:
        raise RuntimeError(
            f"The archive {archive} holds no {CATEGORIES_DIRNAME} folder; it is not the "
            "Caltech-256 archive. Delete it and see data/README.md."
        )
    os.replace(extracted, root / CATEGORIES_DIRNAME)
    shutil.rmtree(staging)
    if remove_archive:
        archive.unlink()
    return root / CATEGORIES_DIRNAME


# --------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ValueError(
            f"split must be three fractions (train, val, test), e.g. {DEFAULT_SPLIT}; got {tuple(fractions)}."
        )
    train, val, test = (float(f) for f in fractions)
    if min(train, val, test) < 0 or train == 0 or not math.isclose(train + val + test, 1.0, abs_tol=1e-6):
        raise ValueError(
            f"split={tuple(fractions)} is not valid: the three fractions (train, val, test) must be "
            f"non-negative, train must be above 0, and they must add up to 1, e.g. {DEFAULT_SPLIT}."
        )
    return train, val, test


def _held_out_count(n_images: int, fraction: float) -> int:
    """Images of one class that go to val (or test).

    Rounded half up. A class of at least three images gives every held-out
    split at least one image, so that val and test see every class; smaller
    classes go entirely to training.
    """
    if fraction == 0 or n_images < 3:
        return 0
    return max(1, math.floor(n_images * fraction + 0.5))


def _split_sizes(n_images: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """(train, val, test) counts for a class; train always keeps at least one image."""
    _, val_fraction, test_fraction = fractions
    n_val = _held_out_count(n_images, val_fraction)
    n_test = _held_out_count(n_images, test_fraction)
    while n_val + n_test > n_images - 1:  # only with extreme fractions
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_images - n_val - n_test, n_val, n_test


def _shuffle_key(seed: int, relative_path: str) -> str:
    return hashlib.sha256(f"{seed}/{relative_path}".encode()).hexdigest()


def make_split(
    relative_paths: Iterable[str], fractions: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> dict[str, str]:
    """Assign every image to "train", "val" or "test"; returns {path: split}.

    ``relative_paths`` are POSIX paths relative to ``256_ObjectCategories``
    (``"001.ak47/001_0001.jpg"``); the first component is the class. Each
    class is cut on its own (stratified). Inside a class the files are
    ordered by ``sha256(f"{seed}/{path}")``: the first ones go to val, the
    next to test, the rest to train. The result depends only on the set of
    paths, the fractions and the seed.
    """
    fractions = _check_fractions(fractions)
    by_class: dict[str, list[str]] = defaultdict(list)
    for path in relative_paths:
        by_class[PurePosixPath(path).parts[0]].append(path)

    split = {}
    for paths in by_class.values():
        ordered = sorted(set(paths), key=lambda p: _shuffle_key(seed, p))
        _, n_val, n_test = _split_sizes(len(ordered), fractions)
        for index, path in enumerate(ordered):
            split[path] = "val" if index < n_val else "test" if index < n_val + n_test else "train"
    return dict(sorted(split.items()))


def _split_counts(names: Iterable[str]) -> str:
    """``"train 8 / val 1 / test 1"`` for an iterable of split names."""
    names = list(names)
    return " / ".join(f"{name} {names.count(name)}" for name in SPLIT_NAMES)


def _percent(fraction: float) -> str:
    return f"{round(fraction * 100, 4):g}"


def split_file_name(dataset: str, seed: int, fractions: Sequence[float], include_clutter: bool | None) -> str:
    """The split file's name, e.g. ``caltech256_seed0_80-10-10_with-clutter.csv``.

    ``include_clutter=None`` leaves the clutter tag out; that is used for the
    sample set, which has no clutter class.
    """
    train, val, test = _check_fractions(fractions)
    name = f"{dataset}_seed{seed}_{_percent(train)}-{_percent(val)}-{_percent(test)}"
    if include_clutter is not None:
        name += "_with-clutter" if include_clutter else "_no-clutter"
    return name + ".csv"


def _data_folder(root: Path, categories_dir: Path | None) -> Path:
    """The folder that holds ``256_ObjectCategories`` (where a download puts it, before there is one)."""
    return categories_dir.parent if categories_dir is not None else root


def default_split_dir(root: str | os.PathLike) -> Path:
    """Where the split files made for the data under ``root`` live: ``splits/`` next to ``256_ObjectCategories``.

    Each copy of the data keeps its own splits, so two different data folders
    never share (and overwrite) a split file, and an installed package never
    writes into its own folder.
    """
    root = _resolve_root(root)
    return _data_folder(root, find_categories_dir(root)) / SPLITS_DIRNAME


def extend_split(
    split: Mapping[str, str], new_paths: Iterable[str], fractions: Sequence[float] = DEFAULT_SPLIT, seed: int = 0
) -> dict[str, str]:
    """Add ``new_paths`` to ``split`` and keep every assignment it already has; returns the new {path: split}.

    Per class, the new images are ordered by the same hash as in
    :func:`make_split`; the first ones make up what val and then test lack
    of their share of the grown class, the rest go to train. A class that
    is entirely new is therefore split exactly as :func:`make_split` would.
    The result depends only on the old split, the new paths, the fractions
    and the seed.
    """
    fractions = _check_fractions(fractions)
    already = defaultdict(lambda: dict.fromkeys(SPLIT_NAMES, 0))
    for path, name in split.items():
        already[PurePosixPath(path).parts[0]][name] += 1
    new_by_class: dict[str, list[str]] = defaultdict(list)
    for path in set(new_paths) - set(split):
        new_by_class[PurePosixPath(path).parts[0]].append(path)

    extended = dict(split)
    for folder, paths in new_by_class.items():
        ordered = sorted(paths, key=lambda p: _shuffle_key(seed, p))
        have = already[folder]
        _, want_val, want_test = _split_sizes(sum(have.values()) + len(ordered), fractions)
        n_val = min(len(ordered), max(0, want_val - have["val"]))
        n_test = min(len(ordered) - n_val, max(0, want_test - have["test"]))
        for index, path in enumerate(ordered):
            extended[path] = "val" if index < n_val else "test" if index < n_val + n_test else "train"
    return dict(sorted(extended.items()))


def save_split(split: Mapping[str, str], path: str | os.PathLike) -> None:
    """Write ``{relative path: split}`` as a sorted ``path,split`` CSV.

    Written to a temporary file and renamed, so that a reader (another
    process of a multi-GPU run) never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(temporary, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["path", "split"])
        writer.writerows(sorted(split.items()))
    os.replace(temporary, path)


def load_split(path: str | os.PathLike) -> dict[str, str]:
    """Read a split CSV written by :func:`save_split`; returns {path: split}.

    An image listed twice (in the same split or in two) is an error that
    names the lines: which one was meant cannot be guessed, and an image in
    both train and test would leak the test set into training.
    """
    path = Path(path)
    split, first_line, repeated = {}, {}, []
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header != ["path", "split"]:
            raise ValueError(f"{path} is not a split file: its first line should be 'path,split', not {header}.")
        for line_number, row in enumerate(reader, start=2):
            if len(row) != 2 or row[1] not in SPLIT_NAMES:
                raise ValueError(
                    f"{path}, line {line_number}: expected 'relative/path.jpg,SPLIT' with SPLIT one of "
                    f"{', '.join(SPLIT_NAMES)}; got {row}. Delete the file to regenerate it."
                )
            image, name = row
            if image in first_line:
                repeated.append(f"{image} on lines {first_line[image]} and {line_number} ({split[image]}, {name})")
            else:
                first_line[image], split[image] = line_number, name
    if repeated:
        raise ValueError(
            f"{path} lists {len(repeated)} image(s) more than once:\n  {_examples(repeated)}\n"
            "Each image must appear on one line only: delete the extra lines (keeping the split you mean)."
        )
    return split


class SplitMismatchError(ValueError):
    """A split file and the images on disk disagree: some are in one but not the other."""


def _split_mismatch_message(
    split_path: Path, categories_dir: Path, unlisted: Sequence[str], missing: Sequence[str], fix: str
) -> str:
    return (
        f"The split file {split_path} does not match the images in {categories_dir}:\n"
        f"  {len(unlisted)} image(s) on disk are not in the split file"
        + (":\n    " + _examples(unlisted, _MAX_EXAMPLES, "    ") if unlisted else "")
        + f"\n  {len(missing)} image(s) in the split file are missing from disk"
        + (":\n    " + _examples(missing, _MAX_EXAMPLES, "    ") if missing else "")
        + "\nA split must list exactly the images it is used with, so that no image is left out or "
        f"expected in vain.\n{fix}"
    )


_OWN_SPLIT_FIX = (
    "This is the data set's own split, which came with the data: restore the data as it came "
    "(re-create or re-copy the folder). To train on the images as they are now, pass a split file "
    "of your own (--data.split_file PATH, in Python split_file=PATH): it is made from the images "
    "present on first use. split_update never changes a data set's own split."
)


def _generated_split_fix(unlisted: Sequence[str], missing: Sequence[str]) -> str:
    fixes = []
    if unlisted and not missing:
        fixes.append(
            "- images were added: --data.split_update extend (in Python split_update=\"extend\") adds "
            "them to train/val/test and keeps every existing assignment;"
        )
    if missing:
        fixes.append(
            "- images were removed or lost: restore them (re-extract the archive); if they are gone "
            "for good, rebuild the split as on the next line (split_update extend only adds images);"
        )
    fixes.append(
        "- --data.split_update rebuild (split_update=\"rebuild\") makes a new split of the images "
        "present and rewrites the file; results are then not comparable with runs on the old split;"
    )
    fixes.append("- if this split file belongs to another copy of the data, pass that copy's root or split file.")
    return "To fix:\n" + "\n".join(fixes)


# --------------------------------------------------------------------------
# Reading images
# --------------------------------------------------------------------------


class CorruptImageError(RuntimeError):
    """An image file could not be decoded (or holds pixels that have no 8-bit RGB meaning)."""


class UnsupportedPixelsError(ValueError):
    """The file decodes, but its pixels cannot be turned into 8-bit RGB without guessing."""


# Grey images with more than 8 bits: 16-bit PNGs and TIFFs open as "I;16*",
# 32-bit integer TIFFs as "I".
_DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _deep_grey_to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grey -> 8-bit "L", keeping the high byte.

    PIL's own ``convert`` clips every value above 255 to white, so a 16-bit
    PNG came out almost all white. Keeping the high byte is what PIL does
    with 16-bit colour PNGs, so grey and colour 16-bit images agree. A
    32-bit image is read on the same 0..65535 scale; other values have no
    known brightness scale and are refused rather than clipped.
    """
    values = np.asarray(image)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 65535:
        raise UnsupportedPixelsError(
            f"it is a {image.mode!r} grey image with values from {low} to {high}, outside the 16-bit range "
            "0..65535 that this loader reads such images on, so their brightness cannot be known"
        )
    return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB with the colours a viewer shows.

    Transparency (an alpha channel, a palette entry or a colour marked
    transparent) is composited on white, the page a viewer shows it on:
    just dropping alpha would reveal whatever colour the transparent pixels
    happen to store, often black. CMYK, YCbCr, palette, 1-bit and 8-bit grey
    images go through PIL's ``convert``.
    """
    if image.mode in _DEEP_GREY_MODES:
        image = _deep_grey_to_8_bit(image)
    if image.mode == "F":
        raise UnsupportedPixelsError(
            "it is a floating-point image (PIL mode F), which has no standard brightness scale"
        )
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, "white")
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def load_rgb_image(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Image.Image:
    """Decode an image fully and return it as 8-bit, 3-channel RGB (see :func:`_to_rgb`).

    Grayscale ("L") and CMYK JPEGs exist in Caltech-256; images added by
    hand can be 16-bit, palette or transparent PNGs too. Converting forces
    the whole file to be decoded, so a truncated file fails here rather than
    later. PIL's LOAD_TRUNCATED_IMAGES stays off on purpose: a half-gray
    image is a silent data bug.
    """
    # Without a root, name the 256_ObjectCategories folder: check-data accepts it too.
    where = data_root if data_root is not None else Path(path).parent.parent
    check_data_hint = _CHECK_DATA_HINT.format(root=where)
    try:
        with Image.open(path) as image:
            return _to_rgb(image)
    except UnsupportedPixelsError as error:
        raise CorruptImageError(
            f"Cannot use image {path}: {error}. Convert it to an 8-bit RGB or grey image (PNG or JPEG), "
            f"or delete it. `{check_data_hint}` lists every such file."
        ) from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise CorruptImageError(
            f"Cannot read image {path}: {error}. The file is corrupt or truncated. Run "
            f"`{check_data_hint}` to list every unreadable file, then replace them (re-extract "
            "the archive) or delete them; the data module then says how to bring the split file up to date."
        ) from error


class ImageListDataset(Dataset):
    """A list of (image path, label) pairs; items are (transformed RGB image, label)."""

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        transform: Callable | None = None,
        class_names: Sequence[str] = (),
        data_root: str | os.PathLike | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.class_names = list(class_names)
        self.data_root = data_root  # only used to make error messages point at check-data

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_rgb_image(path, self.data_root)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        n_classes = len({label for _, label in self.samples})
        return f"{type(self).__name__}({len(self)} images, {n_classes} classes)"


def _read_problem(path: Path) -> str | None:
    """None if ``path`` decodes, else why it does not."""
    try:
        load_rgb_image(path)
    except CorruptImageError as error:
        return f"{type(error.__cause__).__name__}: {error.__cause__}"
    return None


def _survey(root: Path) -> tuple[Path, dict[str, list[str]], list[tuple[Path, str]]]:
    """The categories folder, {class folder: image names} (clutter included) and every broken link."""
    categories_dir = find_categories_dir(root)
    if categories_dir is None:
        raise FileNotFoundError(_missing_data_message(root))
    folders, broken = _scan_class_folders(categories_dir, include_clutter=True)
    images = {}
    for folder in folders:
        images[folder], broken_here = _scan_images(categories_dir / folder)
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
    categories_dir, images, broken = _survey(_resolve_root(root))
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
        categories_dir, images, broken = _survey(_resolve_root(root))
    except (FileNotFoundError, ValueError) as error:
        print(error)
        return 2
    unreadable = _undecodable(categories_dir, images)
    empty = [folder for folder, names in images.items() if not names]
    n_images = sum(map(len, images.values()))
    print(f"Checked {n_images} images in {len(images)} class folders under {categories_dir}.")
    for path, reason in broken:
        print(f"  broken link: {path}  ({reason})")
    for path, reason in unreadable:
        print(f"  unreadable: {path}  ({reason})")
    for folder in empty:
        print(f"  empty class folder: {categories_dir / folder}")
    if not unreadable and not broken and not empty:
        print("All images decode.")
        return 0
    print(
        f"{len(unreadable)} unreadable file(s), {len(broken)} broken link(s), {len(empty)} empty class "
        "folder(s). Re-extract the archive (see data/README.md), or repair or delete the bad files and "
        "links; the data module then says how to bring the split file up to date."
    )
    return 1


# --------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------


def _eval_resize(image_size: int) -> int:
    # The usual ImageNet ratio: resize to 256 and crop 224, scaled to any size.
    return round(image_size * 256 / 224)


def build_transforms(preset: str = "course", image_size: int = 224, train: bool = True) -> v2.Compose:
    """The image pipeline: PIL RGB image -> normalised float tensor (3, image_size, image_size).

    ``"course"``: the original course project's augmentations (both flips,
    then a rotation and an affine rotation of up to 45 degrees each) after
    resizing the short side to ``image_size`` and cropping the centre.
    ``"standard"``: the usual ImageNet recipe, RandomResizedCrop + horizontal
    flip. ``"light"``: the evaluation view's scale with a random crop (small
    shifts) and a horizontal flip, for data whose objects are already varied
    in position and size (the shapes set). With ``train=False`` all give the deterministic evaluation
    pipeline: resize to ``image_size * 256 / 224`` and crop the centre.
    """
    if preset not in TRANSFORM_PRESETS:
        valid = ", ".join(map(repr, TRANSFORM_PRESETS))
        raise ValueError(f"Unknown transforms preset {preset!r}; choose one of {valid}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer of at least 8 pixels, e.g. 224; got {image_size!r}.")

    if not train:
        steps = [v2.Resize(_eval_resize(image_size)), v2.CenterCrop(image_size)]
    elif preset == "course":
        steps = [
            v2.Resize(image_size),
            v2.CenterCrop(image_size),
            v2.RandomHorizontalFlip(0.5),
            v2.RandomVerticalFlip(0.5),
            # Two rotations in a row, as in the course project: up to 90 degrees in all.
            v2.RandomRotation(45),
            v2.RandomAffine(degrees=45),
        ]
    elif preset == "light":
        steps = [v2.Resize(_eval_resize(image_size)), v2.RandomCrop(image_size), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]
    return v2.Compose(
        [
            v2.ToImage(),  # geometric steps then run on uint8 tensors
            *steps,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def denormalize(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Undo the normalisation for display: (..., 3, H, W) -> values in [0, 1].

    For matplotlib: ``plt.imshow(denormalize(image).permute(1, 2, 0))``.
    """
    if images.ndim < 3 or images.shape[-3] != len(mean):
        raise ValueError(
            f"denormalize expects images of shape (3, H, W) or (B, 3, H, W); got {tuple(images.shape)}."
        )
    shape = (len(mean), 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images * std_t + mean_t).clamp(0, 1)


# --------------------------------------------------------------------------
# The LightningDataModule
# --------------------------------------------------------------------------

_notice_shown = False


@rank_zero_only
def _announce_sample_set() -> None:
    """Print SAMPLE_SET_NOTICE, once per process."""
    global _notice_shown
    if not _notice_shown:
        print(SAMPLE_SET_NOTICE)
        _notice_shown = True


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")


class Caltech256DataModule(L.LightningDataModule):
    """Caltech-256 train/val/test dataloaders; predict uses the test split.

    Args:
        root: folder holding ``256_ObjectCategories`` (or torchvision's
            ``caltech256/256_ObjectCategories``); ``"shapes"`` selects the
            built-in shapes set (generated offline on first use), ``"sample"``
            the tiny built-in sample set.
        image_size: side of the square images the model sees.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 = load in the main process).
        transforms: training augmentation preset, ``"course"``, ``"standard"``
            or ``"light"`` (see :func:`build_transforms`).
        split: (train, val, test) fractions, per class, for a split made here.
        split_seed: seed of the deterministic split made here.
        split_file: CSV to load the split from (made there from the images
            present if missing). By default the data set's own split,
            ``<data folder>/split.csv``, when it has one (the sample set does;
            ``split`` and ``split_seed`` then do not apply), else
            ``<data folder>/splits/<name>.csv`` (see :func:`split_file_name`),
            where the data folder is the one holding ``256_ObjectCategories``.
        split_update: what to do when the split file and the images on disk
            disagree. ``None`` (default): stop with an error that names both
            counts. ``"extend"``: add the images that are not in the split,
            keeping every existing assignment (see :func:`extend_split`).
            ``"rebuild"``: make a new split of the images present. Either
            rewrites the split file; a data set's own split is never changed.
        include_clutter: keep ``257.clutter`` as a class (257 classes) or not (256).
        download: fetch the official archive into ``root`` if it is not there.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = DEFAULT_NUM_WORKERS,
        transforms: str = "course",
        split: tuple[float, float, float] = DEFAULT_SPLIT,
        split_seed: int = 0,
        split_file: str | Path | None = None,
        split_update: Literal["extend", "rebuild"] | None = None,
        include_clutter: bool = True,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("num_workers", num_workers, minimum=0)
        self.train_transform = build_transforms(transforms, image_size, train=True)
        self.eval_transform = build_transforms(transforms, image_size, train=False)
        self.fractions = _check_fractions(split)
        if split_update is not None and split_update not in SPLIT_UPDATES:
            raise ValueError(
                f"split_update must be None (stop when the split file and the images disagree) or one of "
                f"{', '.join(map(repr, SPLIT_UPDATES))}; got {split_update!r}."
            )
        self.split_update = split_update
        self.root = _resolve_root(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_seed = split_seed
        self.include_clutter = include_clutter
        self.download = download
        self._split_file = Path(split_file) if split_file is not None else None
        self.train_dataset = self.val_dataset = self.test_dataset = None

        self.categories_dir = find_categories_dir(self.root)
        if self.categories_dir is None and not download:
            raise FileNotFoundError(_missing_data_message(self.root))
        self._class_folders = (
            _class_folders(self.categories_dir, include_clutter) if self.categories_dir else None
        )
        if self.is_sample_set:
            _announce_sample_set()
        self._check_own_split_settings()

    # -- what the model needs to know --------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes; known before the download (257, or 256 without clutter)."""
        if self._class_folders is not None:
            return len(self._class_folders)
        return CALTECH256_NUM_CLASSES if self.include_clutter else CALTECH256_NUM_CLASSES - 1

    @property
    def class_folders(self) -> list[str]:
        """Class folder names in label order, e.g. ``["001.ak47", ...]``."""
        if self._class_folders is None:
            raise RuntimeError(f"The data is not downloaded yet; call prepare_data() first (root={self.root}).")
        return list(self._class_folders)

    @property
    def class_names(self) -> list[str]:
        """Readable class names in label order: the folder names without "NNN.", e.g. ``"ak47"``."""
        return _readable_names(self.class_folders)

    @property
    def kind(self) -> str:
        """``"sample"``, ``"shapes"``, ``"caltech256"`` or ``"folder"``: see :func:`dataset_kind`."""
        return dataset_kind(self.categories_dir)

    @property
    def is_sample_set(self) -> bool:
        return self.kind == "sample"

    @property
    def data_dir(self) -> Path:
        """The folder holding ``256_ObjectCategories``; its split files live in it too."""
        return _data_folder(self.root, self.categories_dir)

    @property
    def uses_own_split(self) -> bool:
        """Whether the split is the data set's own, ``<data folder>/split.csv`` (never written here)."""
        if self._split_file is not None:
            return False
        return self.is_sample_set or (self.data_dir / OWN_SPLIT_FILENAME).is_file()

    @property
    def split_path(self) -> Path:
        """The CSV the split is loaded from (and written to on first use, unless it is the data set's own)."""
        if self._split_file is not None:
            return self._split_file
        if self.uses_own_split:
            return self.data_dir / OWN_SPLIT_FILENAME
        name = split_file_name("caltech256", self.split_seed, self.fractions, self.include_clutter)
        return self.data_dir / SPLITS_DIRNAME / name

    # -- Lightning hooks -----------------------------------------------------

    def prepare_data(self) -> None:
        """Download if asked and needed, then write the split file if missing (rank 0 only)."""
        self._ensure_data()
        self._load_or_create_split()

    def setup(self, stage: str | None = None) -> None:
        """Build the three datasets; cheap, and idempotent across stages."""
        if self.train_dataset is not None:
            return
        self._ensure_data()
        split = self._load_or_create_split()
        samples: dict[str, list[tuple[Path, int]]] = {name: [] for name in SPLIT_NAMES}
        label_of = {folder: label for label, folder in enumerate(self._class_folders)}
        for relative_path, split_name in split.items():
            samples[split_name].append(
                (self.categories_dir / relative_path, label_of[PurePosixPath(relative_path).parts[0]])
            )

        def dataset(split_name, transform):
            return ImageListDataset(samples[split_name], transform, self.class_names, self.root)

        self.train_dataset = dataset("train", self.train_transform)
        self.val_dataset = dataset("val", self.eval_transform)
        self.test_dataset = dataset("test", self.eval_transform)

    def train_dataloader(self) -> DataLoader:
        # Dropping an incomplete last batch avoids a final batch of one image,
        # which BatchNorm cannot train on; the shuffle changes what is dropped.
        drop_last = len(self._require_setup().train_dataset) > self.batch_size
        return self._loader(self.train_dataset, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._require_setup().val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._require_setup().test_dataset)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._require_setup().test_dataset)

    # -- helpers -----------------------------------------------------------------

    def _loader(self, dataset: Dataset, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def _require_setup(self) -> "Caltech256DataModule":
        if self.train_dataset is None:
            self.setup()
        return self

    def _ensure_data(self) -> None:
        """Find (or download) the data; check the class count promised before download."""
        if self.categories_dir is None:
            self.categories_dir = find_categories_dir(self.root)
        if self.categories_dir is None and self.download:
            promised = self.num_classes
            self.categories_dir = download_caltech256(self.root, url=CALTECH256_URL, md5=CALTECH256_MD5)
            self._class_folders = _class_folders(self.categories_dir, self.include_clutter)
            if len(self._class_folders) != promised:
                raise RuntimeError(
                    f"The downloaded data in {self.categories_dir} has {len(self._class_folders)} classes, "
                    f"not the {promised} of Caltech-256. Delete it and download again (see data/README.md)."
                )
        if self.categories_dir is None:
            raise FileNotFoundError(_missing_data_message(self.root))
        if self._class_folders is None:
            self._class_folders = _class_folders(self.categories_dir, self.include_clutter)

    def _check_own_split_settings(self) -> None:
        """A data set's own split is not cut by seed and fractions: asking for them is an error, not ignored."""
        if not self.uses_own_split:
            return
        asked = []
        if self.fractions != DEFAULT_SPLIT:
            asked.append(f"split={self.fractions}")
        if self.split_seed != 0:
            asked.append(f"split_seed={self.split_seed}")
        if asked:
            raise ValueError(
                f"The data at {self.data_dir} comes with its own split ({self.split_path}), so "
                f"{' and '.join(asked)} cannot apply. Leave split and split_seed at their defaults to use "
                "it, or pass split_file=PATH (--data.split_file PATH) to make and use a split of your own "
                "with these settings."
            )

    def _load_or_create_split(self) -> dict[str, str]:
        """The split of the classes in use, loaded from ``split_path`` or made there.

        A split file that does not list exactly the images on disk is brought
        up to date as ``split_update`` says, or is an error.
        """
        self._check_own_split_settings()
        on_disk = _list_images(self.categories_dir, self._class_folders)
        path = self.split_path
        if not path.is_file():
            if self.uses_own_split:  # only the sample set gets here: its split ships with the package
                raise FileNotFoundError(
                    f"The sample set's split file {path} is missing: the package is incomplete. Reinstall it "
                    "(in a checkout: python scripts/make_sample_set.py)."
                )
            return self._write_split(make_split(on_disk, self.fractions, self.split_seed), path)

        whole_file = load_split(path)
        # A split made with the clutter class also serves without it; any other
        # class in the file must be on disk, or its images count as missing.
        split = {
            p: s for p, s in whole_file.items() if self.include_clutter or not _is_clutter(PurePosixPath(p).parts[0])
        }
        unlisted = sorted(set(on_disk) - split.keys())
        missing = sorted(split.keys() - set(on_disk))
        if unlisted or missing:
            split = self._update_split(whole_file, split, on_disk, unlisted, missing)
        self._check_every_class_trains(split, path)
        return split

    def _update_split(
        self,
        whole_file: dict[str, str],
        split: dict[str, str],
        on_disk: Sequence[str],
        unlisted: Sequence[str],
        missing: Sequence[str],
    ) -> dict[str, str]:
        """Apply ``split_update`` to a split file that disagrees with the disk; return the split in use.

        ``whole_file`` is the file as read, ``split`` its entries for the classes in use,
        ``unlisted`` the images on disk that it lacks and ``missing`` its images not on disk.
        """
        path = self.split_path
        if self.uses_own_split or self.split_update is None or (self.split_update == "extend" and missing):
            fix = _OWN_SPLIT_FIX if self.uses_own_split else _generated_split_fix(unlisted, missing)
            raise SplitMismatchError(_split_mismatch_message(path, self.categories_dir, unlisted, missing, fix))
        if self.split_update == "extend":
            updated = extend_split(split, unlisted, self.fractions, self.split_seed)
            report = (
                f"Extended the split file {path}: added {len(unlisted)} new image(s) "
                f"({_split_counts(updated[p] for p in unlisted)}); every earlier assignment kept."
            )
        else:
            updated = make_split(on_disk, self.fractions, self.split_seed)
            moved = sum(1 for p, s in split.items() if p in updated and updated[p] != s)
            report = (
                f"Rebuilt the split file {path} from the {len(on_disk)} images present "
                f"({_split_counts(updated.values())}): {len(unlisted)} added, {len(missing)} dropped, "
                f"{moved} moved to another split."
            )
        # The clutter entries of a split shared with a clutter run stay as they are.
        others = {p: s for p, s in whole_file.items() if p not in split}
        self._write_split({**others, **updated}, path)
        print(report)
        return updated

    def _write_split(self, split: dict[str, str], path: Path) -> dict[str, str]:
        """Save ``split`` to ``path`` if possible and return it."""
        try:
            save_split(split, path)
        except OSError as error:  # e.g. a read-only data folder; the split is reproducible anyway
            warnings.warn(f"Could not write the split file {path} ({error}); using the split in memory.", stacklevel=3)
        return split

    def _check_every_class_trains(self, split: Mapping[str, str], path: Path) -> None:
        trained = {PurePosixPath(p).parts[0] for p, s in split.items() if s == "train"}
        untrained = [folder for folder in self._class_folders if folder not in trained]
        if untrained:
            raise ValueError(
                f"The split file {path} has no training image for class(es) {', '.join(untrained[:_MAX_LISTED])}"
                f"{' ...' if len(untrained) > _MAX_LISTED else ''}. Delete it to regenerate the split."
            )

    def summary(self) -> dict:
        """What the data is, as plain values: results files and notebooks record it."""
        self._require_setup()
        return {
            "name": DATASET_NAMES[self.kind],
            "kind": self.kind,
            "is_sample_set": self.is_sample_set,
            # As configured: a built-in set's name, or the folder as the user gave it
            # (a relative path stays relative, so results files name no machine's folders).
            "root": str(self.hparams.root),
            "num_classes": self.num_classes,
            "include_clutter": self.include_clutter,
            "image_size": self.hparams.image_size,
            "transforms": self.hparams.transforms,
            "images": {name: len(getattr(self, f"{name}_dataset")) for name in SPLIT_NAMES},
            "split_file": self._portable(self.split_path),
        }

    def _portable(self, path: Path) -> str:
        """``path`` relative to the data root (``<root>/...``) when inside it, else as it is."""
        try:
            return f"<{self.hparams.root}>/" + path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def describe(self) -> str:
        """A short summary for notebooks: data set, classes, images per split, split file."""
        info = self.summary()
        counts = info["images"]
        per_split = " | ".join(f"{name} {count}" for name, count in counts.items())
        return (
            f"{info['name']} (root {info['root']!r})\n"
            f"  classes: {info['num_classes']}{'' if self.include_clutter else ' (clutter left out)'}\n"
            f"  images:  {per_split} (total {sum(counts.values())})\n"
            f"  split:   {info['split_file']}"
        )

    def __repr__(self) -> str:
        where = self.kind if self.kind in ("sample", "shapes") else str(self.root)
        return (
            f"{type(self).__name__}({where}, {self.num_classes} classes, image_size={self.hparams.image_size}, "
            f"batch_size={self.batch_size}, transforms={self.hparams.transforms!r})"
        )

