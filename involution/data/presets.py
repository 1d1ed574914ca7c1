"""Transform presets: PIL RGB image -> normalised float tensor (3, image_size, image_size).

As in torchvision's ``references/classification/presets.py``, a preset is a
name for a whole pipeline, so a config or the command line chooses one word
(``--data.transforms course``) rather than a list of steps. Each preset's
training steps are one small function below; every preset shares the
deterministic evaluation pipeline (resize to ``image_size * 256 / 224``, crop
the centre), the usual ImageNet ratio.

The image becomes a uint8 tensor first, so the geometric steps run on bytes
(a quarter of the memory traffic of float32) and only the final crop is
converted to float and normalised; the course preset's two rotations are one
lookup in the bytes (:class:`RandomRotations`), where torchvision's
rotations each convert to float for a ``grid_sample``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# The statistics that ImageNet-trained networks expect; we normalise with
# them too so that pretrained weights can be fine-tuned without surprises.
from involution.data.constants import EVAL_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD


def eval_resize(image_size: int) -> int:
    """The short side evaluation resizes to before its centre crop of ``image_size``.

    The usual ImageNet ratio, resize to 256 and crop 224, scaled to any size.
    """
    return round(image_size / EVAL_CROP_PCT)


def _rotation_lookup(height: int, width: int, angles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, the flat index of the input pixel it shows, and whether that is inside the frame.

    Walks back from each output pixel through the rotations, the last one
    first, rounding to a pixel at every step as nearest-neighbour sampling
    does, and notes when a step leaves the frame. In float32, as
    torchvision's sampling grid, so the rounding agrees with it except at
    exact ties between two pixels.
    """
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    centre_row, centre_col = np.float32((height - 1) / 2), np.float32((width - 1) / 2)
    inside = np.ones((height, width), dtype=bool)
    for angle in reversed(angles):
        cos, sin = np.float32(math.cos(math.radians(angle))), np.float32(math.sin(math.radians(angle)))
        y, x = rows - centre_row, cols - centre_col
        # Rows grow downwards, so a counter-clockwise turn on screen is clockwise in (row, col).
        rows, cols = np.rint(cos * y + sin * x + centre_row), np.rint(cos * x - sin * y + centre_col)
        inside &= (rows >= 0) & (rows <= height - 1) & (cols >= 0) & (cols <= width - 1)
    source = np.clip(rows, 0, height - 1).astype(np.intp) * width + np.clip(cols, 0, width - 1).astype(np.intp)
    return source.ravel(), inside.ravel()


def rotate_nearest(image: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
    """``image`` (C, H, W) on the CPU rotated by each angle in turn, as one lookup: any dtype, uint8 included.

    Each rotation is by ``angle`` degrees counter-clockwise about the centre,
    samples the nearest pixel and fills what comes from outside the frame
    with 0, as torchvision's ``rotate`` with nearest interpolation does: the
    same pixels, except where a source position falls on a tie between two
    pixels and float rounding may pick the other one (18 of 2 million pixels
    in 40 random pairs of course rotations at 224 px; ``tests/test_data.py``
    checks it). With nearest sampling, successive rotations compose exactly into
    one table of source pixels (:func:`_rotation_lookup`), so the image is
    read once, in its own dtype, where torchvision converts a uint8 image to
    float for a ``grid_sample`` at every step.
    """
    channels, height, width = image.shape
    source, inside = _rotation_lookup(height, width, angles)
    pixels = image.numpy(force=True).reshape(channels, height * width)
    rotated = np.take(pixels, source, axis=1) * inside.astype(pixels.dtype)
    result = torch.from_numpy(rotated.reshape(channels, height, width))
    return tv_tensors.wrap(result, like=image) if isinstance(image, tv_tensors.TVTensor) else result


class RandomRotations(torch.nn.Module):
    """Rotations in turn, each by an angle drawn uniformly from [-d, d] for each ``d`` in ``degrees``.

    One pass over the image (see :func:`rotate_nearest`). ``clockwise`` says,
    per rotation, whether its angle is measured clockwise: torchvision's
    ``RandomAffine`` does so, its ``RandomRotation`` does not. With
    ``RandomRotations((45, 45), clockwise=(False, True))`` and the same seed,
    the output is exactly that of ``RandomRotation(45)`` followed by
    ``RandomAffine(degrees=45)`` (nearest pixel, black fill): the same random
    draws, in the same order, and the same pixels up to rounding ties
    (see :func:`rotate_nearest`).
    """

    def __init__(self, degrees: Sequence[float], clockwise: Sequence[bool] | None = None) -> None:
        super().__init__()
        self.degrees = tuple(degrees)
        self.clockwise = tuple(clockwise) if clockwise is not None else (False,) * len(self.degrees)
        if len(self.clockwise) != len(self.degrees):
            raise ValueError(f"clockwise needs one entry per rotation ({len(self.degrees)}); got {clockwise!r}.")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        draws = [float(torch.empty(1).uniform_(-d, d)) for d in self.degrees]
        return rotate_nearest(image, [-a if cw else a for a, cw in zip(draws, self.clockwise)])

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, clockwise={self.clockwise}"


def _course_steps(image_size: int) -> list:
    """The original course project's augmentations, after resizing the short side and cropping the centre."""
    return [
        v2.Resize(image_size),
        v2.CenterCrop(image_size),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        # Two rotations in a row, as in the course project (RandomRotation(45), then
        # RandomAffine(degrees=45)): up to 90 degrees in all, in one pass over the bytes.
        RandomRotations((45, 45), clockwise=(False, True)),
    ]


def _standard_steps(image_size: int) -> list:
    """The usual ImageNet recipe."""
    return [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]


def _light_steps(image_size: int) -> list:
    """The evaluation view's scale with small shifts: for objects already varied in position and size."""
    return [v2.Resize(eval_resize(image_size)), v2.RandomCrop(image_size), v2.RandomHorizontalFlip()]


def _eval_steps(image_size: int) -> list:
    return [v2.Resize(eval_resize(image_size)), v2.CenterCrop(image_size)]


_TRAIN_STEPS = {"course": _course_steps, "standard": _standard_steps, "light": _light_steps}
TRANSFORM_PRESETS = tuple(_TRAIN_STEPS)


def check_preset(preset: str, image_size: int) -> None:
    """Raise a ValueError naming the valid choices if ``preset`` or ``image_size`` is not usable."""
    if preset not in TRANSFORM_PRESETS:
        valid = ", ".join(map(repr, TRANSFORM_PRESETS))
        raise ValueError(f"Unknown transforms preset {preset!r}; choose one of {valid}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer of at least 8 pixels, e.g. 224; got {image_size!r}.")


def build_transforms(
    preset: str = "course", image_size: int = 224, train: bool = True, normalize: bool = True
) -> v2.Compose:
    """The image pipeline: PIL RGB image -> normalised float tensor (3, image_size, image_size).

    ``"course"``: the original course project's augmentations (both flips,
    then a rotation and an affine rotation of up to 45 degrees each) after
    resizing the short side to ``image_size`` and cropping the centre.
    ``"standard"``: the usual ImageNet recipe, RandomResizedCrop + horizontal
    flip. ``"light"``: the evaluation view's scale with a random crop (small
    shifts) and a horizontal flip, for data whose objects are already varied
    in position and size (the shapes set). With ``train=False`` all give the
    deterministic evaluation pipeline: resize to ``image_size * 256 / 224``
    and crop the centre. ``normalize=False`` stops at the uint8 image: a
    batch of those is a quarter of the bytes to move, and
    :func:`normalize_batch` finishes it in one vectorised step.
    """
    check_preset(preset, image_size)
    steps = _TRAIN_STEPS[preset](image_size) if train else _eval_steps(image_size)
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)] if normalize else []
    return v2.Compose([v2.ToImage(), *steps, *finish])  # geometric steps run on uint8 tensors


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> float32 in [0, 1], normalised: the last steps of a preset, for a whole batch."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("normalize_batch expects uint8 images (B, 3, H, W); "
                         f"got {images.dtype} {tuple(images.shape)}.")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


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
