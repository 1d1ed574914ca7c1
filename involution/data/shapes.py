"""The built-in *shapes* data set: an offline image set on which test accuracy means something.

Caltech-256 cannot be downloaded everywhere (an offline machine, a locked-down cluster),
and the tiny sample set only measures memorisation: its validation crops come
from the very photographs its training crops were cut from. This module
generates, deterministically and in a few seconds, a set that measures
generalisation instead:

* **10 classes of shapes** (circle, triangle, square, ...), each image one
  shape at a random position, size, rotation and colour, drawn solid, as an
  outline or filled with a photographic texture, over a crop of a real
  photograph, with a few thin distractor strokes and a little sensor noise.
  The network must find the object and read its outline wherever it is:
  spatial structure that involution's position-specific kernels can adapt to.
* **Held-out photographs.** The photographs that ship with scikit-image and
  matplotlib are divided into two pools (:data:`PHOTO_POOLS`): one for
  training, one held out for validation and test alike, so that validation is
  a fair guide to test (both see the same kind of unseen backgrounds) while
  neither shares a photograph with training. Every random number of a split is
  drawn from its own stream (``numpy.random.SeedSequence(seed).spawn``), so no
  validation or test image shares a background crop or a random draw with any
  other image. ``sources.csv`` records every image's photograph, crop and shape, and
  :func:`render` re-creates an image from its record, so the claim can be
  checked (``tests/test_shapes.py`` does).

Layout (what :class:`~involution.data.module.Caltech256DataModule` reads)::

    <cache>/shapes-v3-seed0/
        256_ObjectCategories/01.circle/train_00000.jpg ...
        split.csv      path,split: the set's own fixed split
        sources.csv    one row per image: split, photograph, crop, shape, colours
        README.txt

Use it with ``root="shapes"`` (``--data.root shapes``): it is generated on first
use into the cache folder (``$INVOLUTION_DATA_HOME``, else
``~/.cache/involution``) and reused afterwards.
"""
from __future__ import annotations

import colorsys
import csv
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from involution.data.constants import SHAPES_ROOT_ALIAS, data_home

__all__ = ["SHAPES_ROOT_ALIAS", "SHAPE_CLASSES", "PHOTO_POOLS", "SPLIT_SIZES", "ShapeRecord",
           "shapes_root", "generate_shapes", "render", "read_sources", "data_home", "landmarks"]

VERSION = 3  # bump when the generator's output changes, so old caches are not reused
SIZE = 64  # pixels; the workbook trains at 64 px
JPEG_QUALITY = 92
SUPERSAMPLE = 4  # shapes are drawn at 4x and scaled down: smooth, antialiased edges
MAX_TILT = 25  # degrees: shapes stand roughly upright, as objects in photographs do
BACKGROUND_CONTRAST = 0.35  # how much of the photograph's contrast the background keeps

SHAPE_CLASSES = ("circle", "triangle", "square", "star", "cross",
                 "ring", "crescent", "arrow", "heart", "tee")
# Images per class and split: 4,000 train, 1,000 val, 2,500 test in all. With
# 2,500 test images a top-1 accuracy of 80% or more is known to about +-1.6 points
# (95%) or better, so two models' test scores can be told apart.
SPLIT_SIZES = {"train": 400, "val": 100, "test": 250}

# Which photographs each split may use, for backgrounds and textures alike. Training
# has its own photographs; validation and test share the held-out ones (the two stereo
# motorcycle views show one scene, so both are held out).
_HELD_OUT = ("chelsea", "immunohistochemistry", "clock", "text", "stereo_motorcycle_left",
             "stereo_motorcycle_right", "coins", "gravel", "present_blue_pack")
PHOTO_POOLS = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "brick", "grass",
              "camera", "moon", "retina", "cell", "page", "grace_hopper"),
    "val": _HELD_OUT,
    "test": _HELD_OUT,
}


# -- the photographs ----------------------------------------------------------------


def _matplotlib_sample(name: str) -> np.ndarray:
    import matplotlib.cbook
    with matplotlib.cbook.get_sample_data(name) as file:
        return np.asarray(Image.open(file).convert("RGB"))


def _photo_loaders() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data as sk
    loaders = {name: getattr(sk, name) for name in (
        "astronaut", "coffee", "rocket", "hubble_deep_field", "brick", "grass", "camera", "moon",
        "retina", "cell", "page", "chelsea", "immunohistochemistry", "clock", "text", "coins",
        "gravel")}
    loaders["stereo_motorcycle_left"] = lambda: sk.stereo_motorcycle()[0]
    loaders["stereo_motorcycle_right"] = lambda: sk.stereo_motorcycle()[1]
    loaders["grace_hopper"] = lambda: _matplotlib_sample("grace_hopper.jpg")
    loaders["present_blue_pack"] = lambda: _matplotlib_sample("Minduka_Present_Blue_Pack.png")
    return loaders


@lru_cache(maxsize=None)
def load_photo(name: str) -> Image.Image:
    """One pool photograph as an RGB image (grayscale ones are kept gray: tinting adds colour)."""
    array = _photo_loaders()[name]()
    if array.dtype != np.uint8:
        array = (255 * (array.astype(np.float64) / max(1, array.max()))).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


# -- one image, described -----------------------------------------------------------


@dataclass(frozen=True)
class ShapeRecord:
    """Everything that decides one image: :func:`render` draws it from this alone."""

    path: str             # relative to 256_ObjectCategories, e.g. "01.circle/train_00000.jpg"
    split: str
    label: str            # the shape's class
    photo: str            # background photograph (from the split's pool)
    crop: tuple[int, int, int, int]  # background box in the photograph (left, top, right, bottom)
    flip: bool            # background mirrored
    tint: tuple[float, float, float]  # per-channel gain on the background
    center: tuple[float, float]       # shape centre, as fractions of the image side
    radius: float                     # shape radius, as a fraction of the image side
    angle: float                      # rotation in degrees
    fill: str                         # "solid", "outline" or "texture"
    color: tuple[int, int, int]       # fill or outline colour
    texture_photo: str                # photograph of the texture fill ("" if none)
    texture_crop: tuple[int, int, int, int]
    strokes: tuple[tuple[float, ...], ...]  # distractor lines: (x0, y0, x1, y1, width, r, g, b)
    noise_seed: int
    noise_std: float


# Outlines of the classes, as polygons on the unit circle (before rotation and scaling).
def _regular(n: int, phase: float = -90.0) -> list[tuple[float, float]]:
    return [(math.cos(math.radians(phase + 360 * k / n)), math.sin(math.radians(phase + 360 * k / n)))
            for k in range(n)]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    outline = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        a = math.radians(-90 + 180 * k / points)
        outline.append((r * math.cos(a), r * math.sin(a)))
    return outline


def _heart(points: int = 48) -> list[tuple[float, float]]:
    outline = []
    for k in range(points):
        t = 2 * math.pi * k / points
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        outline.append((x / 17, (y + 2.5) / 17))
    return outline


def _within_unit_circle(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale an outline so that its farthest point is at distance 1: every class then
    fits in the same circle of the drawn radius, which the placement keeps in view."""
    farthest = max(math.hypot(x, y) for x, y in points)
    return [(x / farthest, y / farthest) for x, y in points]


_POLYGONS = {name: _within_unit_circle(points) for name, points in {
    "triangle": _regular(3),
    "square": _regular(4, phase=-45),
    "star": _star(),
    "heart": _heart(),
    "tee": [(-1, -0.9), (1, -0.9), (1, -0.35), (0.3, -0.35), (0.3, 1), (-0.3, 1), (-0.3, -0.35),
            (-1, -0.35)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
}.items()}


def _shape_mask(record: ShapeRecord) -> Image.Image:
    """The shape as an antialiased 8-bit mask of the image's size."""
    big = SIZE * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = record.center[0] * big, record.center[1] * big
    radius = record.radius * big
    outline_width = max(SUPERSAMPLE, round(0.18 * radius))
    angle = math.radians(record.angle)
    cos, sin = math.cos(angle), math.sin(angle)

    def place(points):
        return [(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in points]

    def box(r):
        return [cx - r, cy - r, cx + r, cy + r]

    if record.label in _POLYGONS:
        points = place(_POLYGONS[record.label])
        if record.fill == "outline":
            draw.line([*points, points[0], points[1]], fill=255, width=outline_width, joint="curve")
        else:
            draw.polygon(points, fill=255)
    elif record.label == "circle":
        draw.ellipse(box(radius), fill=255 if record.fill != "outline" else None,
                     outline=255, width=outline_width)
    elif record.label == "ring":
        # A ring is a thick circle outline whatever the fill; its hole shows the background.
        draw.ellipse(box(radius), fill=255)
        draw.ellipse(box(0.55 * radius), fill=0)
    elif record.label == "crescent":
        draw.ellipse(box(radius), fill=255)
        shift = 0.45 * radius
        draw.ellipse([cx - radius + shift * cos, cy - radius + shift * sin,
                      cx + radius + shift * cos, cy + radius + shift * sin], fill=0)
    else:
        raise ValueError(f"unknown shape class {record.label!r}; expected one of {SHAPE_CLASSES}")
    return mask.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def _photo_patch(photo: str, crop: tuple[int, int, int, int]) -> Image.Image:
    return load_photo(photo).crop(crop).resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def render(record: ShapeRecord) -> Image.Image:
    """Draw one image from its record: background, shape, distractor strokes, noise."""
    background = _background(record.photo, record.crop, record.flip, record.tint)

    if record.fill == "texture":
        foreground = _photo_patch(record.texture_photo, record.texture_crop)
        # Tint the texture towards the colour so it stands out a little from the background.
        foreground = Image.blend(foreground, Image.new("RGB", (SIZE, SIZE), record.color), 0.4)
    else:
        foreground = Image.new("RGB", (SIZE, SIZE), record.color)
    image = Image.composite(foreground, background, _shape_mask(record))

    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1, width, r, g, b in record.strokes:
        draw.line([x0 * SIZE, y0 * SIZE, x1 * SIZE, y1 * SIZE], fill=(int(r), int(g), int(b)),
                  width=int(width))
    image = image.filter(ImageFilter.GaussianBlur(0.4))
    noise = np.random.default_rng(record.noise_seed).normal(0, record.noise_std, (SIZE, SIZE, 3))
    pixels = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


# -- drawing the records --------------------------------------------------------------


def _random_crop(rng: np.random.Generator, photo: str) -> tuple[int, int, int, int]:
    """A square box covering 25-70% of the photograph's shorter side, anywhere in it."""
    width, height = load_photo(photo).size
    side = int(rng.uniform(0.25, 0.7) * min(width, height))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


def _random_color(rng: np.random.Generator, dark: bool | None = None) -> tuple[int, int, int]:
    """A random colour; ``dark`` True/False keeps its brightness low/high (contrast with the background)."""
    brightness = rng.uniform(0.1, 0.45) if dark else rng.uniform(0.6, 1.0) if dark is False \
        else rng.uniform(0.25, 1.0)
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 1.0), brightness)
    return round(255 * r), round(255 * g), round(255 * b)


def _background(photo: str, crop: tuple[int, int, int, int], flip: bool,
                tint: tuple[float, float, float]) -> Image.Image:
    """The background: a crop of the photograph, mirrored, tinted and softened.

    Its contrast is halved (blended with its own mean colour): the photograph's
    structure stays, but the shape remains the most salient thing in the image.
    """
    background = _photo_patch(photo, crop)
    if flip:
        background = background.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(background, dtype=np.float32) * np.asarray(tint, dtype=np.float32)
    pixels = BACKGROUND_CONTRAST * pixels + (1 - BACKGROUND_CONTRAST) * pixels.mean(axis=(0, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _draw_record(rng: np.random.Generator, split: str, label: str, path: str) -> ShapeRecord:
    pool = PHOTO_POOLS[split]
    photo = pool[rng.integers(len(pool))]
    crop, flip = _random_crop(rng, photo), bool(rng.integers(2))
    tint = tuple(float(v) for v in rng.uniform(0.6, 1.3, 3))
    # The shape is dark on a bright background and bright on a dark one.
    dark = float(np.asarray(_background(photo, crop, flip, tint).convert("L")).mean()) > 128
    radius = float(rng.uniform(0.22, 0.36))
    # Every outline lies within the drawn radius (see _within_unit_circle); the margin
    # keeps it inside the centre crop that evaluation keeps (about 88% of the side).
    margin = radius + 0.06
    center = (float(rng.uniform(margin, 1 - margin)), float(rng.uniform(margin, 1 - margin)))
    fill = str(rng.choice(["solid", "outline", "texture"], p=[0.7, 0.15, 0.15]))
    texture_photo = pool[rng.integers(len(pool))] if fill == "texture" else ""
    strokes = tuple(
        (*(float(v) for v in rng.uniform(0, 1, 4)), float(rng.integers(1, 3)), *_random_color(rng))
        for _ in range(rng.integers(0, 3)))
    return ShapeRecord(
        path=path, split=split, label=label, photo=photo, crop=crop, flip=flip, tint=tint,
        center=center, radius=radius, angle=float(rng.uniform(-MAX_TILT, MAX_TILT)), fill=fill,
        color=_random_color(rng, dark), texture_photo=texture_photo,
        texture_crop=_random_crop(rng, texture_photo) if texture_photo else (0, 0, 0, 0),
        strokes=strokes, noise_seed=int(rng.integers(2**63)), noise_std=float(rng.uniform(2, 6)))


def class_folder(index: int, label: str) -> str:
    """The folder name of class ``index``, in Caltech-256's style: ``01.circle``."""
    return f"{index + 1:02d}.{label}"


def draw_records(seed: int = 0, sizes: Mapping[str, int] | None = None) -> list[ShapeRecord]:
    """Every image's record, split by split; each split draws from its own random stream.

    ``sizes`` (images per class and split, default :data:`SPLIT_SIZES`) only
    decides how many records are drawn: a smaller set is a prefix of the full one.
    """
    sizes = sizes or SPLIT_SIZES
    streams = dict(zip(("train", "val", "test"), np.random.SeedSequence(seed).spawn(3)))
    records = []
    for split, per_class in sizes.items():
        rng = np.random.default_rng(streams[split])
        for number in range(per_class * len(SHAPE_CLASSES)):
            index = number % len(SHAPE_CLASSES)  # classes interleaved: every class sees the same draws' range
            label = SHAPE_CLASSES[index]
            path = f"{class_folder(index, label)}/{split}_{number // len(SHAPE_CLASSES):05d}.jpg"
            records.append(_draw_record(rng, split, label, path))
    return records


# -- the files ---------------------------------------------------------------------------


def _record_row(record: ShapeRecord) -> dict[str, str]:
    return {f.name: json.dumps(getattr(record, f.name)) if not isinstance(getattr(record, f.name), str)
            else getattr(record, f.name) for f in fields(ShapeRecord)}


def read_sources(root: str | os.PathLike) -> list[ShapeRecord]:
    """The records of a generated set, from its ``sources.csv``."""
    def value(field, text):
        if field.type == "str":
            return text
        parsed = json.loads(text)
        return tuple(map(tuple, parsed)) if field.name == "strokes" else \
            tuple(parsed) if isinstance(parsed, list) else parsed

    with open(Path(root) / "sources.csv", newline="", encoding="utf-8") as file:
        return [ShapeRecord(**{f.name: value(f, row[f.name]) for f in fields(ShapeRecord)})
                for row in csv.DictReader(file)]


_README = """The built-in shapes set of the involution package (generated, NOT Caltech-256)
=============================================================================

{classes} classes of shapes ({names}), one shape per {size}x{size} image at a random position,
size, rotation and colour, drawn solid, as an outline or filled with a photographic texture,
over a crop of a real photograph. Images per split: {counts}.

Backgrounds and textures of the training images come from their own photographs; validation
and test share the held-out ones (so that validation is a fair guide to test). Each split
draws its random numbers from its own stream, so no validation or test image shares a
photograph with any training image, nor a crop or a random draw with any other image:
{pools}
The photographs ship with scikit-image (skimage.data) and matplotlib (sample_data); see their
documentation for credits and licences.

split.csv lists each image's split; sources.csv records how every image was made, and
involution.data.shapes.render(record) draws it again. Made by involution.data.shapes.generate_shapes
(seed {seed}); delete this folder to have it generated again.
"""


def generate_shapes(destination: str | os.PathLike, seed: int = 0,
                    sizes: Mapping[str, int] | None = None) -> Path:
    """Write the data set into ``destination`` (which must not exist yet); return it.

    Written into a temporary sibling folder first and renamed when complete,
    so an interrupted generation never leaves a set that looks finished.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(destination.parent)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=destination.parent))
    # mkdtemp makes the folder private (0700); the set is shared like any folder made here.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    sizes = sizes or SPLIT_SIZES
    try:
        records = draw_records(seed, sizes)
        categories = staging / "256_ObjectCategories"
        for index, label in enumerate(SHAPE_CLASSES):
            (categories / class_folder(index, label)).mkdir(parents=True)
        for record in records:
            render(record).save(categories / record.path, quality=JPEG_QUALITY)
        with open(staging / "split.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(["path", "split"])
            writer.writerows(sorted((r.path, r.split) for r in records))
        with open(staging / "sources.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=[f.name for f in fields(ShapeRecord)],
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows(_record_row(r) for r in records)
        counts = ", ".join(f"{split} {n * len(SHAPE_CLASSES)}" for split, n in sizes.items())
        pools = "".join(f"  {split}: {', '.join(PHOTO_POOLS[split])}\n" for split in sizes)
        (staging / "README.txt").write_text(_README.format(
            classes=len(SHAPE_CLASSES), names=", ".join(SHAPE_CLASSES), size=SIZE, counts=counts,
            pools=pools, seed=seed))
        try:
            os.replace(staging, destination)
        except OSError:
            # Another process (a DDP rank, a second notebook) finished the same set first.
            if not (destination / "split.csv").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


STAGING_PREFIX = ".generating-"
# A staging folder of another machine (a data home on a network disk) is taken as abandoned
# only when this old: its process cannot be looked up from here.
ABANDONED_AFTER_S = 24 * 3600


def _staging_prefix() -> str:
    return f"{STAGING_PREFIX}{os.getpid()}@{socket.gethostname()}."


def _remove_abandoned_staging(folder: Path) -> None:
    """Delete the staging folders of generations that were killed midway.

    A staging folder is named ``.generating-<process id>@<host>.<random>``: one
    of this machine whose process no longer runs is deleted, one of another
    machine (or of an unknown name) only after :data:`ABANDONED_AFTER_S`.
    Another process generating at the same time keeps its folder.
    """
    for staging in folder.glob(f"{STAGING_PREFIX}*"):
        pid, _, rest = staging.name.removeprefix(STAGING_PREFIX).partition("@")
        here = pid.isdigit() and rest.rpartition(".")[0] == socket.gethostname()
        try:
            abandoned = (not _process_runs(int(pid)) if here
                         else time.time() - staging.stat().st_mtime > ABANDONED_AFTER_S)
        except OSError:  # removed meanwhile
            continue
        if abandoned:
            shutil.rmtree(staging, ignore_errors=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # another user's process, or no such number here
        return True
    return True


def _shown(path: Path) -> str:
    """``path`` with the home folder written as ``~``: outputs name no user's folders."""
    try:
        return "~/" + path.resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def shapes_root(seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """The generated set's folder in the cache; generated there on first use (a few seconds)."""
    folder = Path(cache_dir or data_home()) / f"shapes-v{VERSION}-seed{seed}"
    if folder.parent.is_dir():
        _remove_abandoned_staging(folder.parent)  # a generation killed midway, even once the set exists
    # The folder appears whole (generate_shapes renames it into place when done), so
    # one that exists is complete; processes starting together may each generate it.
    if not (folder / "split.csv").is_file():
        print(f"Generating the built-in shapes set into {_shown(folder)} (first use only, a few "
              "seconds) ...")
        generate_shapes(folder, seed)
    return folder


def landmarks(record: ShapeRecord, image_size: int = SIZE) -> dict[str, tuple[int, int]]:
    """Three telling pixels of an image, as (row, col) in its evaluation view, well apart.

    ``"inside"``: the shape's centre (inside a hollow shape too, where the
    background shows through); ``"outline"``: the point of its outline farthest
    from that centre, kept at least an eighth of the image from its border (so
    that its window is not mostly padding); ``"background"``: the corner (inset
    by a sixth) farthest from the other two. Coordinates are where the evaluation
    transform (:func:`involution.data.presets.build_transforms` with ``train=False``:
    resize, then centre crop to ``image_size``) puts them, so they can mark the
    kernels of a network that saw the image that way.
    """
    from involution.data.presets import eval_resize
    inside = np.asarray(_shape_mask(record)) > 127
    padded = np.pad(inside, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge_rows, edge_cols = np.nonzero(inside & ~interior)
    centre_row, centre_col = record.center[1] * SIZE, record.center[0] * SIZE
    margin = SIZE / 8
    away = ((edge_rows >= margin) & (edge_rows <= SIZE - 1 - margin)
            & (edge_cols >= margin) & (edge_cols <= SIZE - 1 - margin))
    if away.any():  # a shape that fills the image has no outline point away from its border
        edge_rows, edge_cols = edge_rows[away], edge_cols[away]
    farthest = np.argmax((edge_rows - centre_row) ** 2 + (edge_cols - centre_col) ** 2)
    inset = SIZE / 6
    corners = [(r, c) for r in (inset, SIZE - 1 - inset) for c in (inset, SIZE - 1 - inset)]
    outline = edge_rows[farthest], edge_cols[farthest]
    # The corner farthest from both other landmarks (a shape that fills the image is near every corner).
    background = max(corners, key=lambda p: min((p[0] - r) ** 2 + (p[1] - c) ** 2
                                                 for r, c in ((centre_row, centre_col), outline)))
    resized = eval_resize(image_size)
    scale, offset = resized / SIZE, (resized - image_size) / 2

    def view(row: float, col: float) -> tuple[int, int]:
        return (int(np.clip(round(row * scale - offset), 0, image_size - 1)),
                int(np.clip(round(col * scale - offset), 0, image_size - 1)))

    return {"inside": view(centre_row, centre_col),
            "outline": view(*outline),
            "background": view(*background)}
