"""The train/val/test split: made deterministically, written down as a CSV, checked against the disk.

Caltech-256 has no official split, so one is made here. It is stratified
(every class is cut 80/10/10 on its own) and deterministic: inside a class,
files are ordered by the SHA-256 of ``"{seed}/{relative path}"``, which
depends neither on the order in which the file system lists them nor on the
machine. It is stored as a small CSV (``path,split``) that lives with the
data it describes, in the folder that holds ``256_ObjectCategories``:

* ``<data folder>/split.csv`` is a data set's own, fixed split, shipped with
  it (the sample set has one); it is used as it is and never written;
* otherwise the split is made on first use and written to
  ``<data folder>/splits/<name>.csv`` (see :func:`split_file_name`), or into
  the folder given as the data module's ``split_dir``, so two different data
  folders never share a split file and an installed package never writes
  into its own folder.

A split file must list exactly the images on disk: images added or removed
since it was made are a :class:`SplitMismatchError` that counts both, rather
than training on a silent subset; :func:`extend_split` and a rebuild bring a
made split up to date (the data module's ``split_update``).
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from involution.data.locate import (
    MAX_LISTED,
    data_folder,
    find_categories_dir,
    format_examples,
    is_clutter,
    resolve_root,
)

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
# A data set that comes with its own fixed split keeps it here, next to
# 256_ObjectCategories (the sample set does); generated splits go to SPLITS_DIRNAME.
OWN_SPLIT_FILENAME = "split.csv"
SPLITS_DIRNAME = "splits"
SPLIT_UPDATES = ("extend", "rebuild")
_MAX_EXAMPLES = 5  # how many examples a split mismatch lists per kind


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """The train/val/test fractions as a triple, or a ValueError that says what is wrong with them."""
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
    fractions = check_fractions(fractions)
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


def image_list_fingerprint(relative_paths: Iterable[str]) -> str:
    """A short identity of a set of images: the first 16 hex digits of the SHA-256 of their sorted paths.

    Two splits with the same counts can hold other images (another seed, another
    copy of the data): the records compare this instead.
    """
    return hashlib.sha256("\n".join(sorted(relative_paths)).encode()).hexdigest()[:16]


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
    train, val, test = check_fractions(fractions)
    name = f"{dataset}_seed{seed}_{_percent(train)}-{_percent(val)}-{_percent(test)}"
    if include_clutter is not None:
        name += "_with-clutter" if include_clutter else "_no-clutter"
    return name + ".csv"


def default_split_dir(root: str | os.PathLike) -> Path:
    """Where the split files made for the data under ``root`` live: ``splits/`` next to ``256_ObjectCategories``.

    Each copy of the data keeps its own splits, so two different data folders
    never share (and overwrite) a split file, and an installed package never
    writes into its own folder.
    """
    root = resolve_root(root)
    return data_folder(root, find_categories_dir(root)) / SPLITS_DIRNAME


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
    fractions = check_fractions(fractions)
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
            f"{path} lists {len(repeated)} image(s) more than once:\n  {format_examples(repeated)}\n"
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
        + (":\n    " + format_examples(unlisted, _MAX_EXAMPLES, "    ") if unlisted else "")
        + f"\n  {len(missing)} image(s) in the split file are missing from disk"
        + (":\n    " + format_examples(missing, _MAX_EXAMPLES, "    ") if missing else "")
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


@dataclass(frozen=True)
class SplitFile:
    """A split CSV and how to make it: where the split file is read, made and checked against the disk.

    ``own`` marks a data set's own split (shipped with it: used as it is,
    never written); ``fractions`` and ``seed`` make a split, ``update`` says
    what to do when the file and the disk disagree (see the data module's
    ``split_update``).
    """

    path: Path
    own: bool = False
    fractions: tuple[float, float, float] = DEFAULT_SPLIT
    seed: int = 0
    update: str | None = None

    def read(self, on_disk: Sequence[str], categories_dir: Path, include_clutter: bool) -> dict[str, str]:
        """The split of the images ``on_disk`` (sorted paths of the classes in use), loaded or made here.

        A split file that does not list exactly the images on disk is brought
        up to date as ``update`` says, or is a :class:`SplitMismatchError`.
        """
        if not self.path.is_file():
            if self.own:  # only the sample set gets here: its split ships with the package
                raise FileNotFoundError(
                    f"The sample set's split file {self.path} is missing: the package is incomplete. Reinstall "
                    "it (in a checkout: python scripts/make_sample_set.py)."
                )
            return self._write(make_split(on_disk, self.fractions, self.seed))

        whole_file = load_split(self.path)
        # A split made with the clutter class also serves without it; any other
        # class in the file must be on disk, or its images count as missing.
        split = {p: s for p, s in whole_file.items() if include_clutter or not is_clutter(PurePosixPath(p).parts[0])}
        unlisted = sorted(set(on_disk) - split.keys())
        missing = sorted(split.keys() - set(on_disk))
        if unlisted or missing:
            split = self._update(whole_file, split, on_disk, unlisted, missing, categories_dir)
        self._check_every_class_trains(split, on_disk)
        return split

    def _update(
        self,
        whole_file: dict[str, str],
        split: dict[str, str],
        on_disk: Sequence[str],
        unlisted: Sequence[str],
        missing: Sequence[str],
        categories_dir: Path,
    ) -> dict[str, str]:
        """Apply ``update`` to a split file that disagrees with the disk; return the split in use.

        ``whole_file`` is the file as read, ``split`` its entries for the classes in use,
        ``unlisted`` the images on disk that it lacks and ``missing`` its images not on disk.
        """
        if self.own or self.update is None or (self.update == "extend" and missing):
            fix = _OWN_SPLIT_FIX if self.own else _generated_split_fix(unlisted, missing)
            raise SplitMismatchError(_split_mismatch_message(self.path, categories_dir, unlisted, missing, fix))
        if self.update == "extend":
            updated = extend_split(split, unlisted, self.fractions, self.seed)
            report = (
                f"Extended the split file {self.path}: added {len(unlisted)} new image(s) "
                f"({_split_counts(updated[p] for p in unlisted)}); every earlier assignment kept."
            )
        else:
            updated = make_split(on_disk, self.fractions, self.seed)
            moved = sum(1 for p, s in split.items() if p in updated and updated[p] != s)
            report = (
                f"Rebuilt the split file {self.path} from the {len(on_disk)} images present "
                f"({_split_counts(updated.values())}): {len(unlisted)} added, {len(missing)} dropped, "
                f"{moved} moved to another split."
            )
        # The clutter entries of a split shared with a clutter run stay as they are.
        others = {p: s for p, s in whole_file.items() if p not in split}
        self._write({**others, **updated})
        print(report)
        return updated

    def _write(self, split: dict[str, str]) -> dict[str, str]:
        """Save ``split`` to the file if possible and return it."""
        try:
            save_split(split, self.path)
        except OSError as error:  # e.g. a read-only data folder; the split is reproducible anyway
            warnings.warn(
                f"Could not write the split file {self.path} ({error}); using the split in memory. "
                "Pass split_dir=FOLDER (--data.split_dir FOLDER) to keep split files in a folder you can write.",
                stacklevel=4,
            )
        return split

    def _check_every_class_trains(self, split: Mapping[str, str], on_disk: Sequence[str]) -> None:
        trained = {PurePosixPath(p).parts[0] for p, s in split.items() if s == "train"}
        in_use = dict.fromkeys(PurePosixPath(p).parts[0] for p in on_disk)  # every class folder has images
        untrained = [folder for folder in in_use if folder not in trained]
        if untrained:
            raise ValueError(
                f"The split file {self.path} has no training image for class(es) "
                f"{', '.join(untrained[:MAX_LISTED])}{' ...' if len(untrained) > MAX_LISTED else ''}. "
                "Delete it to regenerate the split."
            )
