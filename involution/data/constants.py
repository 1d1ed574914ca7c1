"""The data facts every part of the package shares, each written once.

The ImageNet normalisation (the official weights' and every recipe's), where
generated data lives, the names of the built-in sets, and how each kind of
data is named beside a number, so that a built-in set's accuracy is never
mistaken for a Caltech-256 result.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EVAL_CROP_PCT", "DATA_HOME_ENV", "data_home", "SAMPLE_ROOT_ALIAS",
           "SHAPES_ROOT_ALIAS", "DataKind", "DATA_KINDS", "SAMPLE_SET_DESCRIPTION", "SAMPLE_SET_NOTICE"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Evaluation resizes the short side to size / EVAL_CROP_PCT and crops the centre: ImageNet's 256 -> 224.
EVAL_CROP_PCT = 224 / 256

DATA_HOME_ENV = "INVOLUTION_DATA_HOME"
SAMPLE_ROOT_ALIAS = "sample"
SHAPES_ROOT_ALIAS = "shapes"


def data_home() -> Path:
    """Where generated data and caches live: ``$INVOLUTION_DATA_HOME``, else ``~/.cache/involution``.

    The package never writes into its own folder (it may be a read-only
    site-packages, and ``pip uninstall`` would leave the files behind);
    like torchvision and torch.hub it uses a folder of the user's instead.
    """
    home = Path(os.environ.get(DATA_HOME_ENV) or Path.home() / ".cache" / "involution").expanduser()
    if home.exists() and not home.is_dir():  # else a bare FileExistsError from the first mkdir below it
        raise ValueError(f"the data folder {home} (${DATA_HOME_ENV}, else ~/.cache/involution) is a file, not a "
                         f"folder: point ${DATA_HOME_ENV} at a folder (it is made if missing), or move the file")
    return home


@dataclass(frozen=True)
class DataKind:
    """How one kind of data (see :func:`involution.data.locate.dataset_kind`) is named.

    ``name`` describes the data set in full (a data module's description);
    ``label`` is the short form put beside every number measured on it.
    """

    name: str
    label: str


DATA_KINDS = {
    "sample": DataKind("built-in sample set (memorisation check, NOT Caltech-256)",
                       "sample set (memorisation check), not Caltech-256"),
    "shapes": DataKind("built-in shapes set (generated offline, NOT Caltech-256)",
                       "shapes set (offline), not Caltech-256"),
    "caltech256": DataKind("Caltech-256", "Caltech-256"),
    "folder": DataKind("an image folder (not Caltech-256)", "an image folder, not Caltech-256"),
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
