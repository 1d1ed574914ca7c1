"""The LightningDataModule: Caltech-256 (or a built-in set, or any such folder) as train/val/test loaders.

It puts the other modules of :mod:`involution.data` together: it finds or
downloads the data (:mod:`.locate`, :mod:`.download`), loads or makes the
split file and checks it against the images on disk (:mod:`.splits`), and
serves the images decoded (:mod:`.images`) and transformed (:mod:`.presets`).
The package's docstring (:mod:`involution.data`) shows typical use.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from involution._notices import say_once
from involution.data.constants import DATA_KINDS, SAMPLE_SET_NOTICE
from involution.data.download import download_caltech256
from involution.data.images import ImageListDataset
from involution.data.locate import (
    CALTECH256_MD5,
    CALTECH256_NUM_CLASSES,
    CALTECH256_URL,
    data_folder,
    dataset_kind,
    find_categories_dir,
    list_class_folders,
    list_images,
    missing_data_message,
    readable_names,
    resolve_root,
)
from involution.data.presets import build_transforms, normalize_batch
from involution.data.splits import (
    DEFAULT_SPLIT,
    OWN_SPLIT_FILENAME,
    SPLIT_NAMES,
    SPLIT_UPDATES,
    SPLITS_DIRNAME,
    SplitFile,
    check_fractions,
    image_list_fingerprint,
    load_split,
    split_file_name,
)

DEFAULT_NUM_WORKERS = min(4, os.cpu_count() or 1)
MAX_NAMES_SHOWN = 12  # class names listed in a message, at most


SAMPLE_SET_NOTICE_KEY = "sample set"


@rank_zero_only
def _announce_sample_set() -> None:
    """Print SAMPLE_SET_NOTICE once per command (the command line starts each with
    :func:`involution._notices.new_command`), not once per data module."""
    say_once(SAMPLE_SET_NOTICE_KEY, SAMPLE_SET_NOTICE)


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")


def _first_per_class(samples: list[tuple[Path, int]], per_class: int) -> list[tuple[Path, int]]:
    """The first ``per_class`` samples of each label, by path: the same subset on every machine."""
    kept, counts = [], {}
    for path, label in sorted(samples):
        if counts.get(label, 0) < per_class:
            kept.append((path, label))
            counts[label] = counts.get(label, 0) + 1
    return kept


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
            ``<split_dir>/<name>.csv`` (see :func:`split_file_name`).
        split_dir: folder for the split files made here, named after their
            settings; by default ``<data folder>/splits``, where the data
            folder is the one holding ``256_ObjectCategories``. Set it when
            the data folder is read-only (a shared copy).
        split_update: what to do when the split file and the images on disk
            disagree. ``None`` (default): stop with an error that names both
            counts. ``"extend"``: add the images that are not in the split,
            keeping every existing assignment (see :func:`extend_split`).
            ``"rebuild"``: make a new split of the images present. Either
            rewrites the split file; a data set's own split is never changed.
        include_clutter: keep ``257.clutter`` as a class (257 classes) or not (256).
        download: fetch the official archive into ``root`` if it is not there.
        uint8_batches: let the loader workers stop at the uint8 image and
            convert and normalise each batch after it reaches the model's
            device (:meth:`on_after_batch_transfer`): a quarter of the bytes to
            collate and copy, and one vectorised step instead of one per
            image. Batches taken from the loaders directly are then uint8
            (finish them with :func:`~involution.data.presets.normalize_batch`).
        train_per_class: keep only the first this many training images of each class
            (by path): a fixed small training set, the same images every epoch, for
            experiments on how a model fits little data. None: every training image.
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
        split_dir: str | Path | None = None,
        split_update: Literal["extend", "rebuild"] | None = None,
        include_clutter: bool = True,
        download: bool = False,
        uint8_batches: bool = False,
        train_per_class: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_positive_int("batch_size", batch_size)
        if train_per_class is not None:
            _check_positive_int("train_per_class", train_per_class)
        self.train_per_class = train_per_class
        _check_positive_int("num_workers", num_workers, minimum=0)
        self.uint8_batches = uint8_batches
        self.train_transform = build_transforms(transforms, image_size, train=True, normalize=not uint8_batches)
        self.eval_transform = build_transforms(transforms, image_size, train=False, normalize=not uint8_batches)
        self.fractions = check_fractions(split)
        if split_update is not None and split_update not in SPLIT_UPDATES:
            raise ValueError(
                f"split_update must be None (stop when the split file and the images disagree) or one of "
                f"{', '.join(map(repr, SPLIT_UPDATES))}; got {split_update!r}."
            )
        self.split_update = split_update
        self.root = resolve_root(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_seed = split_seed
        self.include_clutter = include_clutter
        self.download = download
        self._split_file = Path(split_file).expanduser() if split_file is not None else None
        self._split_dir = Path(split_dir).expanduser() if split_dir is not None else None
        self.train_dataset = self.val_dataset = self.test_dataset = None
        self._split: dict[str, str] | None = None  # {relative path: split} in use, once set up

        self.categories_dir = find_categories_dir(self.root)
        if self.categories_dir is None and not download:
            raise FileNotFoundError(missing_data_message(self.root))
        self._class_folders = (
            list_class_folders(self.categories_dir, include_clutter) if self.categories_dir else None
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
        return readable_names(self.class_folders)

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
        return data_folder(self.root, self.categories_dir)

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
        return (self._split_dir or self.data_dir / SPLITS_DIRNAME) / name

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
        split = self._split = self._load_or_create_split()
        samples: dict[str, list[tuple[Path, int]]] = {name: [] for name in SPLIT_NAMES}
        label_of = {folder: label for label, folder in enumerate(self._class_folders)}
        for relative_path, split_name in split.items():
            samples[split_name].append(
                (self.categories_dir / relative_path, label_of[PurePosixPath(relative_path).parts[0]])
            )

        if self.train_per_class is not None:
            samples["train"] = _first_per_class(samples["train"], self.train_per_class)

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

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """With ``uint8_batches``, finish the transforms on the device: uint8 -> normalised float."""
        if not self.uint8_batches:
            return batch
        images, labels = batch
        return normalize_batch(images), labels

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
            self._class_folders = list_class_folders(self.categories_dir, self.include_clutter)
            if len(self._class_folders) != promised:
                raise RuntimeError(
                    f"The downloaded data in {self.categories_dir} has {len(self._class_folders)} classes, "
                    f"not the {promised} of Caltech-256. Delete it and download again."
                )
        if self.categories_dir is None:
            raise FileNotFoundError(missing_data_message(self.root))
        if self._class_folders is None:
            self._class_folders = list_class_folders(self.categories_dir, self.include_clutter)

    def _check_own_split_settings(self) -> None:
        """A data set's own split is not cut by seed and fractions: asking for them is an error, not ignored."""
        if not self.uses_own_split:
            return
        asked = []
        if self.fractions != DEFAULT_SPLIT:
            asked.append(f"split={self.fractions}")
        if self.split_seed != 0:
            asked.append(f"split_seed={self.split_seed}")
        if self._split_dir is not None:
            asked.append(f"split_dir={str(self._split_dir)!r}")
        if asked:
            raise ValueError(
                f"The data at {self.data_dir} comes with its own split ({self.split_path}), so "
                f"{' and '.join(asked)} cannot apply. Leave split, split_seed and split_dir at their defaults "
                "to use it, or pass split_file=PATH (--data.split_file PATH) to make and use a split of your "
                "own with these settings."
            )

    def _load_or_create_split(self) -> dict[str, str]:
        """The split of the classes in use (see :meth:`SplitFile.read`)."""
        self._check_own_split_settings()
        on_disk = list_images(self.categories_dir, self._class_folders)
        split_file = SplitFile(self.split_path, self.uses_own_split, self.fractions, self.split_seed, self.split_update)
        return split_file.read(on_disk, self.categories_dir, self.include_clutter)

    def summary(self) -> dict:
        """What the data is, as plain values: results files and notebooks record it."""
        self._require_setup()
        return {
            "name": DATA_KINDS[self.kind].name,
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
            "train_per_class": self.train_per_class,
            "split_file": self.portable_path(self.split_path),
            # Which images each split holds: equal counts can be other images.
            "split_fingerprints": self.split_fingerprints(),
        }

    def split_fingerprints(self) -> dict[str, str]:
        """``{split: fingerprint of its image list}`` (see :func:`image_list_fingerprint`)."""
        return {name: image_list_fingerprint(self.images_in(name)) for name in SPLIT_NAMES}

    def images_in(self, split_name: str) -> list[str]:
        """The images of one split (``"train"``, ``"val"``, ``"test"``), as paths relative to the class folders."""
        self._require_setup()
        return sorted(path for path, name in self._split.items() if name == split_name)

    def split_recorded_in(self, summary: dict) -> dict[str, str] | None:
        """The split that a recorded :meth:`summary` names, read from its file; None where it cannot be read here."""
        recorded = summary.get("split_file")
        if not recorded:
            return None
        prefix = f"<{self.hparams.root}>/"
        path = self.root / recorded.removeprefix(prefix) if recorded.startswith(prefix) else Path(recorded)
        try:
            return load_split(path)
        except (OSError, ValueError):
            return None

    # -- what a checkpoint records of its data ---------------------------------

    def state_dict(self) -> dict:
        """What a checkpoint records of the data it was trained on: class names, split fingerprints.

        Lightning saves it in every checkpoint (the data settings are saved
        beside it, as ``datamodule_hyper_parameters``) and gives it back to
        :meth:`load_state_dict` when the checkpoint is restored.
        """
        state = {"class_names": self.class_names} if self._class_folders is not None else {}
        if self._split is not None:
            state["split_fingerprints"] = self.split_fingerprints()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Refuse a checkpoint trained on other classes: its outputs would be given these classes' names."""
        mismatch = self.classes_differ(state_dict.get("class_names"))
        if mismatch:
            raise ValueError(f"the checkpoint was trained on other classes than this data has. {mismatch}")

    def classes_differ(self, names: list[str] | None) -> str | None:
        """Both lists of class names, in label order, where ``names`` differ from this data's; else None."""
        if names is None or self._class_folders is None or list(names) == self.class_names:
            return None

        def listed(values: list[str]) -> str:
            shown = ", ".join(map(repr, values[:MAX_NAMES_SHOWN]))
            return shown + (f", ... ({len(values)} classes)" if len(values) > MAX_NAMES_SHOWN else "")
        names, ours = list(names), self.class_names
        first = next((i for i, (a, b) in enumerate(zip(names, ours)) if a != b), min(len(names), len(ours)))
        differ = (f"label {first}: {names[first] if first < len(names) else None!r} in the checkpoint, "
                  f"{ours[first] if first < len(ours) else None!r} in the data")
        return (f"In label order, the checkpoint's classes are {listed(names)}; the data's ({self!r}) "
                f"are {listed(ours)} (first difference: {differ}).")

    def portable_path(self, path: Path) -> str:
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

