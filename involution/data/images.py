"""Reading images: any file a class folder may hold -> 8-bit, 3-channel RGB, or a clear error.

Some Caltech-256 JPEGs are grayscale and a few are CMYK; images added by hand
can be 16-bit, palette or transparent PNGs. Every image is decoded fully and
converted to the colours a viewer shows (see :func:`load_rgb_image`). A file
that does not decode is an error that names it and the ``check-data``
command that lists every such file: it is never skipped quietly.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from involution.data.locate import CHECK_DATA_HINT


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


# An image more elongated than this is refused: the transforms scale its shorter side to
# the model's input, so a 1,000,000 x 1 line would become 224,000,000 x 224 pixels.
MAX_ASPECT_RATIO = 100


def _check_proportions(image: Image.Image) -> None:
    width, height = image.size
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        longer, shorter = ("wide", "tall") if width > height else ("tall", "wide")
        side = 224 * max(width, height) / max(1, min(width, height))
        raise UnsupportedPixelsError(
            f"it is {width} x {height} pixels, more than {MAX_ASPECT_RATIO} times as {longer} as it is "
            f"{shorter}: with its shorter side scaled to 224 pixels for the model it would be "
            f"{side:,.0f} pixels long ({side * 224 * 12 / 1e9:,.1f} GB as floats). Crop it"
        )


def load_rgb_image(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Image.Image:
    """Decode an image fully and return it as 8-bit, 3-channel RGB (see :func:`_to_rgb`), upright.

    Grayscale ("L") and CMYK JPEGs exist in Caltech-256; images added by
    hand can be 16-bit, palette or transparent PNGs too. Converting forces
    the whole file to be decoded, so a truncated file fails here rather than
    later. PIL's LOAD_TRUNCATED_IMAGES stays off on purpose: a half-gray
    image is a silent data bug. A photo whose EXIF says it is stored turned
    (a phone's) is turned upright, as a viewer shows it; an image far longer
    than wide (see :data:`MAX_ASPECT_RATIO`) is refused.
    """
    # Without a root, name the 256_ObjectCategories folder: check-data accepts it too.
    where = data_root if data_root is not None else Path(path).parent.parent
    check_data_hint = CHECK_DATA_HINT.format(root=where)
    try:
        with Image.open(path) as image:
            _check_proportions(image)
            return _to_rgb(ImageOps.exif_transpose(image))
    except UnsupportedPixelsError as error:
        raise CorruptImageError(
            f"Cannot use image {path}: {error}. Make it an ordinary 8-bit RGB or grey image (PNG or JPEG), "
            f"or delete it. `{check_data_hint}` lists every such file."
        ) from error
    except PermissionError as error:  # an OSError too, but nothing is wrong with the file's contents
        raise CorruptImageError(
            f"Cannot read image {path}: permission denied. The file may be whole, but this user may not read "
            "it: make it readable (chmod a+r) or run as a user who can."
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
