"""Data for training and evaluation: Caltech-256, the built-in sets and any folder in their layout.

Caltech-256 (Griffin, Holub and Perona, 2007) is 30,607 photographs in 257
folders, ``256_ObjectCategories/NNN.name/NNN_XXXX.jpg``: 256 object classes
plus ``257.clutter``, a "none of the above" class. One module per job:

=========================  ================================================
:mod:`.constants`          the shared facts: normalisation, data home, how
                           each kind of data is named beside a number
:mod:`.locate`             where the data is and what it is (layout, class
                           folders, built-in sets)
:mod:`.shapes`             the built-in shapes set, generated offline
:mod:`.download`           download, verify and extract the official archive
:mod:`.splits`             the deterministic train/val/test split and its CSV
:mod:`.images`             decoding any image to 8-bit RGB, or a clear error
:mod:`.presets`            the transform presets (``course``, ``standard``, ``light``)
:mod:`.module`             :class:`Caltech256DataModule`, which puts them together
                           (needs Lightning: imported on first use)
:mod:`.check`              the ``check-data`` command
:mod:`.resized`            an optional pre-resized copy of a data folder, for speed
=========================  ================================================

For quick runs without the 1.2 GB download, the package ships a tiny sample
set in the same layout (``root="sample"``): crops of a few public sample
photographs, **not** Caltech-256; ``root="shapes"`` generates an offline set
on which accuracy measures generalisation (:mod:`involution.data.shapes`).
Nothing is ever written into the package's own folder: generated sets and
caches go to :func:`data_home`, split files next to the data they describe.

Typical use::

    dm = Caltech256DataModule("data/caltech256", download=True)
    dm.prepare_data(); dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
"""
from involution.data.check import check_data, main_check_data
from involution.data.constants import (
    DATA_KINDS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SAMPLE_ROOT_ALIAS,
    SAMPLE_SET_DESCRIPTION,
    SAMPLE_SET_NOTICE,
    SHAPES_ROOT_ALIAS,
    DataKind,
    data_home,
)
from involution.data.download import download_caltech256, extract_archive
from involution.data.images import CorruptImageError, ImageListDataset, load_rgb_image
from involution.data.locate import (
    CALTECH256_FILENAME,
    CALTECH256_MD5,
    CALTECH256_NUM_CLASSES,
    CALTECH256_URL,
    CATEGORIES_DIRNAME,
    MANUAL_DOWNLOAD,
    class_names,
    dataset_kind,
    find_categories_dir,
    sample_data_root,
)
from involution.data.presets import (
    TRANSFORM_PRESETS,
    RandomRotations,
    build_transforms,
    denormalize,
    normalize_batch,
    rotate_nearest,
)
from involution.data.resized import make_resized_copy
from involution.data.splits import (
    DEFAULT_SPLIT,
    OWN_SPLIT_FILENAME,
    SPLIT_UPDATES,
    SplitMismatchError,
    default_split_dir,
    extend_split,
    load_split,
    make_split,
    save_split,
    split_file_name,
)


def __getattr__(name: str):
    # The data module is a LightningDataModule: Lightning is imported only when it is
    # asked for, so the models (which read this package's constants) never import it.
    if name == "Caltech256DataModule":
        from involution.data.module import Caltech256DataModule
        return Caltech256DataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "SAMPLE_ROOT_ALIAS",
    "SHAPES_ROOT_ALIAS",
    "MANUAL_DOWNLOAD",
    "DATA_KINDS",
    "DataKind",
    "dataset_kind",
    "data_home",
    "CorruptImageError",
    "ImageListDataset",
    "Caltech256DataModule",
    "build_transforms",
    "denormalize",
    "normalize_batch",
    "rotate_nearest",
    "RandomRotations",
    "make_resized_copy",
    "download_caltech256",
    "extract_archive",
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
