"""Caltech-256 for PyTorch Lightning: download, split, decode, augment, batch.

Caltech-256 (Griffin, Holub and Perona, 2007) is 30,607 photographs in 257
folders, ``256_ObjectCategories/NNN.name/NNN_XXXX.jpg``: 256 object classes
plus ``257.clutter``, a "none of the above" class. It has no official
train/test split, so this module makes one and writes it down, and a few
quirks of the archive need care:

* some JPEGs are grayscale and a few are CMYK, so every image is converted to
  3-channel RGB when it is read;
* class folders hold the odd non-image file and even a sub-folder, which are
  ignored: only image files directly inside a class folder count;
* a broken image must not be skipped quietly (the data set would shrink
  without anyone noticing), so reading one raises an error that names it, and
  :func:`check_data` scans a whole copy for such files.

The split is stratified (every class is cut 80/10/10 on its own) and
deterministic: inside a class, files are ordered by the SHA-256 of
``"{seed}/{relative path}"``, which depends neither on the order in which the
file system lists them nor on the machine. It is stored as a small CSV
(``path,split``) in the repository's ``data/splits/`` folder, so everyone
trains and tests on the same images.

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

import lightning as L
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
    "FIXED_SPLIT_NAME",
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
    "save_split",
    "load_split",
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

TRANSFORM_PRESETS = ("course", "standard")
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

# A data folder may carry its own fixed split next to 256_ObjectCategories
# (the built-in shapes set does): it is used instead of making one.
FIXED_SPLIT_NAME = "split.csv"

_CHECK_DATA_HINT = "python -m involution check-data {root}"
_MAX_LISTED = 20  # how many file names an error message lists before counting the rest


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
    if (categories_dir / "001.ak47").is_dir():
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


def _is_image_file(entry: os.DirEntry) -> bool:
    # Hidden files are skipped too: macOS leaves "._name.jpg" metadata files
    # that carry an image suffix but are not images.
    return (
        entry.is_file()
        and not entry.name.startswith(".")
        and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
    )


def _class_folders(categories_dir: Path, include_clutter: bool) -> list[str]:
    """Sorted class folder names; the numeric prefix makes this Caltech's order."""
    folders = sorted(
        entry.name
        for entry in os.scandir(categories_dir)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not include_clutter:
        folders = [name for name in folders if not _is_clutter(name)]
    if not folders:
        raise ValueError(
            f"{categories_dir} contains no class folders. It should hold one folder per class "
            "(001.ak47/, 002.american-flag/, ...); re-extract the archive or see data/README.md."
        )
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


def _images_in(class_dir: Path) -> list[str]:
    """File names of the images directly inside one class folder, sorted."""
    return sorted(entry.name for entry in os.scandir(class_dir) if _is_image_file(entry))


def _list_images(categories_dir: Path, class_folders: Sequence[str]) -> list[str]:
    """All image paths, relative to ``categories_dir`` in POSIX form, sorted.

    Raises ValueError naming every class folder that has no image in it,
    because an empty class cannot be learned and would break the split.
    """
    paths, empty = [], []
    for folder in class_folders:
        names = _images_in(categories_dir / folder)
        if not names:
            empty.append(folder)
        paths.extend(f"{folder}/{name}" for name in names)
    if empty:
        raise ValueError(
            f"These class folders in {categories_dir} contain no image file: {', '.join(empty)}. "
            "Put images in them or delete them (with include_clutter=False the clutter "
            "class is left out)."
        )
    return paths


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


def default_split_dir(root: str | os.PathLike) -> Path:
    """The repository's ``data/splits`` folder, or ``root/splits`` outside a checkout."""
    repository_splits = Path(__file__).resolve().parents[1] / "data" / "splits"
    if repository_splits.is_dir():
        return repository_splits
    return _resolve_root(root) / "splits"


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
    """Read a split CSV written by :func:`save_split`; returns {path: split}."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header != ["path", "split"]:
            raise ValueError(f"{path} is not a split file: its first line should be 'path,split', not {header}.")
        split = {}
        for line_number, row in enumerate(reader, start=2):
            if len(row) != 2 or row[1] not in SPLIT_NAMES:
                raise ValueError(
                    f"{path}, line {line_number}: expected 'relative/path.jpg,SPLIT' with SPLIT one of "
                    f"{', '.join(SPLIT_NAMES)}; got {row}. Delete the file to regenerate it."
                )
            split[row[0]] = row[1]
    return split


def _check_split_against_disk(
    split: Mapping[str, str], on_disk: Sequence[str], split_path: Path, categories_dir: Path
) -> None:
    """Fail if the split names files that are not there; warn about unlisted files."""
    on_disk_set = set(on_disk)
    missing = sorted(path for path in split if path not in on_disk_set)
    if missing:
        listed = "\n  ".join(missing[:_MAX_LISTED])
        more = f"\n  ... and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise FileNotFoundError(
            f"The split file {split_path} lists {len(missing)} image(s) that are missing from "
            f"{categories_dir}:\n  {listed}{more}\n"
            "Restore the missing files (re-extract or re-download the archive), or, if this copy "
            f"is meant to differ, delete {split_path} to regenerate the split from the files present "
            "(or pass another split_file)."
        )
    unlisted = len(on_disk_set) - len(split)
    if unlisted:
        warnings.warn(
            f"{unlisted} image(s) under {categories_dir} are not in the split file {split_path} "
            "and are not used. Delete the split file to regenerate it if they should be.",
            stacklevel=3,
        )


# --------------------------------------------------------------------------
# Reading images
# --------------------------------------------------------------------------


class CorruptImageError(RuntimeError):
    """An image file could not be decoded."""


def load_rgb_image(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Image.Image:
    """Decode an image fully and return it as 3-channel RGB.

    Grayscale ("L") and CMYK JPEGs exist in Caltech-256; ``convert("RGB")``
    handles both and forces the whole file to be decoded, so a truncated file
    fails here rather than later. PIL's LOAD_TRUNCATED_IMAGES stays off on
    purpose: a half-gray image is a silent data bug.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Without a root, name the 256_ObjectCategories folder: check-data accepts it too.
        where = data_root if data_root is not None else Path(path).parent.parent
        raise CorruptImageError(
            f"Cannot read image {path}: {error}. The file is corrupt or truncated. Run "
            f"`{_CHECK_DATA_HINT.format(root=where)}` to list every unreadable file, then "
            "replace them (re-extract the archive) or delete them and their split file."
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


def _images_by_class(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """The categories folder and {class folder: image names}, clutter included."""
    categories_dir = find_categories_dir(root)
    if categories_dir is None:
        raise FileNotFoundError(_missing_data_message(root))
    folders = _class_folders(categories_dir, include_clutter=True)
    return categories_dir, {folder: _images_in(categories_dir / folder) for folder in folders}


def check_data(root: str | os.PathLike, workers: int | None = None) -> list[tuple[Path, str]]:
    """Decode every image under ``root`` and return the unreadable ones as (path, reason).

    All class folders are scanned, the clutter class included. Decoding is
    spread over a few threads (PIL releases the GIL while decoding); a full
    Caltech-256 takes a minute or two.
    """
    categories_dir, images = _images_by_class(_resolve_root(root))
    paths = [categories_dir / folder / name for folder, names in images.items() for name in names]
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(tqdm(pool.map(_read_problem, paths), total=len(paths), desc="Checking images", unit="img"))
    return [(path, problem) for path, problem in zip(paths, problems) if problem is not None]


def main_check_data(root: str | os.PathLike) -> int:
    """``python -m involution check-data ROOT``: print a report, return the exit code.

    0 when every image decodes and every class folder has images, 1 when
    there are unreadable files or empty class folders, 2 when there is no data.
    """
    try:
        categories_dir, images = _images_by_class(_resolve_root(root))
    except (FileNotFoundError, ValueError) as error:
        print(error)
        return 2
    bad = check_data(root)
    empty = [folder for folder, names in images.items() if not names]
    n_images = sum(map(len, images.values()))
    print(f"Checked {n_images} images in {len(images)} class folders under {categories_dir}.")
    for path, reason in bad:
        print(f"  unreadable: {path}  ({reason})")
    for folder in empty:
        print(f"  empty class folder: {categories_dir / folder}")
    if not bad and not empty:
        print("All images decode.")
        return 0
    print(
        f"{len(bad)} unreadable file(s), {len(empty)} empty class folder(s). Re-extract the archive "
        "(see data/README.md) or delete the bad files, then delete the split file so it is regenerated."
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
    flip. With ``train=False`` both give the deterministic evaluation
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
            ``caltech256/256_ObjectCategories``); ``"sample"`` selects the
            built-in sample set.
        image_size: side of the square images the model sees.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 = load in the main process).
        transforms: training augmentation preset, ``"course"`` or ``"standard"``
            (see :func:`build_transforms`).
        split: (train, val, test) fractions, per class.
        split_seed: seed of the deterministic split.
        split_file: CSV to load the split from (created if missing); by default
            ``data/splits/<name>.csv`` in the repository (see :func:`split_file_name`).
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
    def split_path(self) -> Path:
        """The CSV the split is loaded from (and written to on first use)."""
        if self._split_file is not None:
            return self._split_file
        if self.categories_dir is not None and (self.categories_dir.parent / FIXED_SPLIT_NAME).is_file():
            return self.categories_dir.parent / FIXED_SPLIT_NAME  # the data set's own split
        dataset = "sample" if self.is_sample_set else "caltech256"
        clutter = None if self.is_sample_set else self.include_clutter
        name = split_file_name(dataset, self.split_seed, self.fractions, clutter)
        return default_split_dir(self.root) / name

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

    def _load_or_create_split(self) -> dict[str, str]:
        """The split of the classes in use, loaded from ``split_path`` or created there."""
        on_disk = _list_images(self.categories_dir, self._class_folders)
        path = self.split_path
        if path.is_file():
            in_use = set(self._class_folders)
            # A split made with the clutter class also serves without it.
            split = {p: s for p, s in load_split(path).items() if PurePosixPath(p).parts[0] in in_use}
            _check_split_against_disk(split, on_disk, path, self.categories_dir)
            self._check_every_class_trains(split, path)
            return split
        split = make_split(on_disk, self.fractions, self.split_seed)
        try:
            save_split(split, path)
        except OSError as error:  # e.g. a read-only install; the split is reproducible anyway
            warnings.warn(f"Could not write the split file {path} ({error}); using the split in memory.", stacklevel=2)
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

