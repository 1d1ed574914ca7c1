"""Make the built-in sample set, ``involution/data/sample_data``, from public sample photographs.

The sample set lets the notebooks, the command line and the tests run in
seconds without the 1.2 GB Caltech-256 download. It has Caltech-256's folder
layout (``256_ObjectCategories/NNN.name/NNN_XXXX.jpg``) but is NOT
Caltech-256: each class is one or two real photographs that ship with
scikit-image (``skimage.data``) and matplotlib, and its images are different
random crops of them. A network can tell these classes apart easily, so the
set checks that the plumbing works; its accuracy means nothing for
Caltech-256.

Deterministic: the crops come from a seeded generator and the JPEG encoder is
deterministic, so running the script again (with the same Pillow) rewrites
byte-identical files. It also writes the sample set's own fixed split,
``involution/data/sample_data/split.csv`` (stratified 80/10/10, seed 0: 120/20/20
images), which the data module uses for ``root="sample"``. Run from the
repository root::

    .venv/bin/python scripts/make_sample_set.py
"""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.cbook
import numpy as np
from PIL import Image, ImageOps
from skimage import data as skimage_data

from involution.data import (
    CATEGORIES_DIRNAME,
    DEFAULT_SPLIT,
    OWN_SPLIT_FILENAME,
    SAMPLE_SET_NOTICE,
    make_split,
    sample_data_root,
    save_split,
)

SEED = 2021  # the year of the paper; any fixed number would do
IMAGES_PER_CLASS = 16
LONGER_SIDE = 128  # Caltech-256 images vary in size; these do too, up to this side
JPEG_QUALITY = 90


def _grace_hopper() -> np.ndarray:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        return np.asarray(Image.open(file).convert("RGB"))


# Class folder -> the photographs it is cut from. Grayscale sources stay
# grayscale JPEGs: Caltech-256 has those too, and the loader must cope.
CLASSES = {
    "001.astronaut": [skimage_data.astronaut],
    "002.cat": [skimage_data.chelsea],
    "003.coffee-mug": [skimage_data.coffee],
    "004.rocket": [skimage_data.rocket],
    "005.motorbike": [lambda: skimage_data.stereo_motorcycle()[0], lambda: skimage_data.stereo_motorcycle()[1]],
    "006.galaxy": [skimage_data.hubble_deep_field],
    "007.grace-hopper": [_grace_hopper],
    "008.cameraman": [skimage_data.camera],
    "009.coins": [skimage_data.coins],
    "010.moon": [skimage_data.moon],
}


def random_view(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (45-100 % of the area, aspect 3:4 to 4:3), maybe mirrored, shrunk."""
    width, height = photo.size
    area = rng.uniform(0.45, 1.0) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = min(width, round(np.sqrt(area * aspect)))
    crop_h = min(height, round(np.sqrt(area / aspect)))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    view = photo.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    scale = LONGER_SIDE / max(view.size)
    return view.resize((max(1, round(view.width * scale)), max(1, round(view.height * scale))), Image.LANCZOS)


def write_class(folder: Path, class_index: int, sources, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    photos = [Image.fromarray(load()) for load in sources]  # mode "L" or "RGB"
    for number in range(1, IMAGES_PER_CLASS + 1):
        photo = photos[(number - 1) % len(photos)]
        name = f"{class_index:03d}_{number:04d}.jpg"  # Caltech-256's file naming
        random_view(photo, rng).save(folder / name, quality=JPEG_QUALITY)


def write_readme(root: Path) -> None:
    counts = f"{len(CLASSES)} classes x {IMAGES_PER_CLASS} images"
    (root / "README.txt").write_text(
        "The built-in sample set of the involution package\n"
        "==================================================\n\n"
        f"{SAMPLE_SET_NOTICE}\n\n"
        f"{counts}, in Caltech-256's folder layout ({CATEGORIES_DIRNAME}/NNN.name/NNN_XXXX.jpg),\n"
        f"each a random crop of a public sample photograph, at most {LONGER_SIDE} px, JPEG quality {JPEG_QUALITY}.\n"
        "The photographs ship with scikit-image (skimage.data: astronaut, chelsea, coffee,\n"
        "rocket, stereo_motorcycle, hubble_deep_field, camera, coins, moon) and matplotlib\n"
        "(sample_data/grace_hopper.jpg); see their documentation for credits and licences.\n"
        "The cameraman, coins and moon classes are grayscale JPEGs, as some Caltech-256 images are.\n"
        f"{OWN_SPLIT_FILENAME} is the set's own fixed split: stratified 80/10/10 with seed 0, 120/20/20 images.\n\n"
        "Use it with Caltech256DataModule(root='sample') or --data.root sample. It exists so that\n"
        "notebooks, the command line and the tests run in seconds; train on the real\n"
        "Caltech-256 (see data/README.md) for any result worth reporting.\n\n"
        "Made by scripts/make_sample_set.py (deterministic); do not edit by hand.\n"
    )


def main() -> None:
    root = sample_data_root()
    categories = root / CATEGORIES_DIRNAME
    shutil.rmtree(categories, ignore_errors=True)  # so that renamed classes do not linger
    rng = np.random.default_rng(SEED)
    for class_index, (folder, sources) in enumerate(CLASSES.items(), start=1):
        write_class(categories / folder, class_index, sources, rng)
    write_readme(root)

    paths = sorted(p.relative_to(categories).as_posix() for p in categories.glob("*/*.jpg"))
    split_path = root / OWN_SPLIT_FILENAME
    save_split(make_split(paths, DEFAULT_SPLIT, seed=0), split_path)
    size = sum(p.stat().st_size for p in categories.glob("*/*.jpg"))
    print(f"Wrote {len(paths)} images ({size / 1e6:.2f} MB) to {categories} and the split {split_path}.")


if __name__ == "__main__":
    main()
