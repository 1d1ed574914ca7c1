"""Transform presets: PIL RGB image -> normalised float tensor (3, image_size, image_size).

As in torchvision's ``references/classification/presets.py``, a preset is a
name for a whole pipeline, so a config or the command line chooses one word
(``--data.transforms course``) rather than a list of steps. Each preset's
training steps are one small function below; every preset shares the
deterministic evaluation pipeline (resize to ``image_size * 256 / 224``, crop
the centre), the usual ImageNet ratio.

The image becomes a uint8 tensor first, so the geometric steps run on bytes
(a quarter of the memory traffic of float32) and only the final crop is
converted to float and normalised.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

# The statistics that ImageNet-trained networks expect; we normalise with
# them too so that pretrained weights can be fine-tuned without surprises.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _eval_resize(image_size: int) -> int:
    # The usual ImageNet ratio: resize to 256 and crop 224, scaled to any size.
    return round(image_size * 256 / 224)


def _course_steps(image_size: int) -> list:
    """The original course project's augmentations, after resizing the short side and cropping the centre."""
    return [
        v2.Resize(image_size),
        v2.CenterCrop(image_size),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        # Two rotations in a row, as in the course project: up to 90 degrees in all.
        v2.RandomRotation(45),
        v2.RandomAffine(degrees=45),
    ]


def _standard_steps(image_size: int) -> list:
    """The usual ImageNet recipe."""
    return [v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()]


def _light_steps(image_size: int) -> list:
    """The evaluation view's scale with small shifts: for objects already varied in position and size."""
    return [v2.Resize(_eval_resize(image_size)), v2.RandomCrop(image_size), v2.RandomHorizontalFlip()]


def _eval_steps(image_size: int) -> list:
    return [v2.Resize(_eval_resize(image_size)), v2.CenterCrop(image_size)]


_TRAIN_STEPS = {"course": _course_steps, "standard": _standard_steps, "light": _light_steps}
TRANSFORM_PRESETS = tuple(_TRAIN_STEPS)


def check_preset(preset: str, image_size: int) -> None:
    """Raise a ValueError naming the valid choices if ``preset`` or ``image_size`` is not usable."""
    if preset not in TRANSFORM_PRESETS:
        valid = ", ".join(map(repr, TRANSFORM_PRESETS))
        raise ValueError(f"Unknown transforms preset {preset!r}; choose one of {valid}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer of at least 8 pixels, e.g. 224; got {image_size!r}.")


def build_transforms(preset: str = "course", image_size: int = 224, train: bool = True) -> v2.Compose:
    """The image pipeline: PIL RGB image -> normalised float tensor (3, image_size, image_size).

    ``"course"``: the original course project's augmentations (both flips,
    then a rotation and an affine rotation of up to 45 degrees each) after
    resizing the short side to ``image_size`` and cropping the centre.
    ``"standard"``: the usual ImageNet recipe, RandomResizedCrop + horizontal
    flip. ``"light"``: the evaluation view's scale with a random crop (small
    shifts) and a horizontal flip, for data whose objects are already varied
    in position and size (the shapes set). With ``train=False`` all give the
    deterministic evaluation pipeline: resize to ``image_size * 256 / 224``
    and crop the centre.
    """
    check_preset(preset, image_size)
    steps = _TRAIN_STEPS[preset](image_size) if train else _eval_steps(image_size)
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
