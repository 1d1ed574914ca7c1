"""Classify your own images with a trained model: :func:`predict` and :func:`transforms_for`.

::

    >>> import involution
    >>> results = involution.predict("runs/NAME/VERSION/checkpoints/best.ckpt", ["photo.jpg", "photos/"])
    >>> results[0].labels, results[0].probabilities      # the top 5, best first
    (['hot dog', 'dog', ...], [0.87, 0.05, ...])

The model may be a model object, a training checkpoint (``python -m involution
fit``'s ``best.ckpt``), or a folder written by ``save_pretrained`` (or a Hugging
Face Hub id): the last two bring their class names and the preprocessing the
model was evaluated with, which :func:`transforms_for` builds from the model's
``pretrained_cfg``, in the manner of torchvision's ``weights.transforms()``.
Images are read as the data module reads them (:func:`~involution.data.images.load_rgb_image`:
any mode to 8-bit RGB, upright, transparency on white), and one that cannot be
read is an error naming the file.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torchvision.transforms import InterpolationMode, v2

from involution.data.constants import EVAL_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD
from involution.data.images import CorruptImageError, UnsupportedPixelsError, load_rgb_image
from involution.data.locate import IMAGE_EXTENSIONS

__all__ = ["ImagePrediction", "ImageError", "predict", "transforms_for", "find_images"]

_INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                   "nearest": InterpolationMode.NEAREST}


class ImageError(ValueError):
    """An image named for prediction is missing or cannot be read; the message names it (``path``: what was named)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = path


def transforms_for(model: nn.Module) -> v2.Compose:
    """The evaluation transform of ``model``, from its ``pretrained_cfg``: PIL image (or uint8 tensor)
    -> normalised float tensor (3, H, W), as torchvision's ``weights.transforms()``.

    The short side is resized to ``input_size / crop_pct`` (``interpolation``, antialiased),
    the centre ``input_size`` is cropped, and the image is scaled to [0, 1] and normalised
    with ``mean`` and ``std``. For a trained run's model (:func:`involution.models.hub.model_from_checkpoint`,
    ``from_pretrained``) this is the data module's evaluation transform at the run's image size;
    for a model just built, ImageNet's 224 px one.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    _, height, width = cfg.get("input_size", (3, 224, 224))
    crop_pct = cfg.get("crop_pct", EVAL_CROP_PCT)
    if cfg.get("crop_mode", "center") != "center":
        raise ValueError(f"crop_mode {cfg['crop_mode']!r} is not supported: only 'center'")
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r} is not supported: one of {', '.join(_INTERPOLATIONS)}")
    resize = round(height / crop_pct) if height == width else (round(height / crop_pct), round(width / crop_pct))
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize, interpolation=_INTERPOLATIONS[interpolation], antialias=True),
        v2.CenterCrop((height, width)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(cfg.get("mean", IMAGENET_MEAN)), list(cfg.get("std", IMAGENET_STD))),
    ])


@dataclass
class ImagePrediction:
    """One image's top classes, best first; or, where it could not be read, ``error``."""

    path: Path
    labels: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str | None:
        """The most probable class's name."""
        return self.labels[0] if self.labels else None

    @property
    def probability(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None

    def line(self) -> str:
        """``path: name 87.1%, name 5.0%, ...`` or ``path: error: ...``."""
        if self.error:
            return f"error: {self.error}"
        ranked = ", ".join(f"{name} {p:.1%}" for name, p in zip(self.labels, self.probabilities))
        return f"{self.path}: {ranked}"


def _is_pattern(text: str) -> bool:
    return glob.has_magic(text)


def find_images(paths: Iterable[str | os.PathLike]) -> list[Path | ImageError]:
    """The image files that ``paths`` name, in order: a file as itself (whatever its name), a folder
    as the image files in it and its subfolders (sorted; hidden ones left out), a glob pattern
    (``"photos/*.png"``, ``"**"`` recursive) as its matches; an image named twice is kept the
    first time. A path that is missing, or names nothing, is an :class:`ImageError` in its place."""
    found: list[Path | ImageError] = []
    for entry in paths:
        text = os.fspath(entry)
        path = Path(text).expanduser()
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file()
                            and p.suffix.lower() in IMAGE_EXTENSIONS
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            found += images or [ImageError(f"{text} holds no image files ({kinds})", text)]
        elif path.exists():
            found.append(path)
        elif _is_pattern(text):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file())
            found += matches or [ImageError(f"no file matches {text}", text)]
        else:
            found.append(ImageError(f"{text}: no such file or folder", text))
    seen: set[Path] = set()
    unique = []
    for item in found:
        key = item.resolve() if isinstance(item, Path) else None
        if key is None or key not in seen:
            unique.append(item)
            seen.add(key)
    return unique


def _image_error(path: Path, error: CorruptImageError) -> ImageError:
    """The data module's message for an unreadable image, without its pointer to ``check-data``
    (which lists the unreadable images of a data set, not of a folder of photos)."""
    cause = error.__cause__
    if isinstance(cause, UnsupportedPixelsError):
        return ImageError(f"Cannot use image {path}: {cause}. Make it an ordinary 8-bit RGB or grey image "
                          "(PNG or JPEG)", path)
    if isinstance(cause, PermissionError) or cause is None:
        return ImageError(str(error), path)
    return ImageError(f"Cannot read image {path}: {cause}. The file is corrupt, truncated, or not an image", path)


def _load(path: Path, transform) -> torch.Tensor:
    try:
        image = load_rgb_image(path)
    except CorruptImageError as error:
        raise _image_error(path, error) from error
    return transform(image)


def predict(model, paths: str | os.PathLike | Sequence[str | os.PathLike], topk: int = 5, *,
            batch_size: int = 16, device: torch.device | str | None = None,
            errors: str = "raise") -> list[ImagePrediction]:
    """The ``topk`` most probable classes of each image that ``paths`` names.

    Args:
        model: a model (its ``pretrained_cfg`` gives the preprocessing and class names), a
            training checkpoint file, or a ``save_pretrained`` folder or hub id.
        paths: image files, folders (their images, recursively) and glob patterns; one
            path or several.
        topk: how many classes per image (at most the model's).
        batch_size: images run through the model at a time.
        device: where to run (default: where the model is).
        errors: ``"raise"`` raises :class:`ImageError` for the first image that is missing or
            unreadable; ``"report"`` returns it as an :class:`ImagePrediction` with ``error`` set
            and goes on.

    Returns:
        One :class:`ImagePrediction` per image, in the order of ``paths`` (a folder's and a
        pattern's images sorted).
    """
    from involution.models.hub import model_from_source

    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive int, got {topk!r}")
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', got {errors!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    model = model_from_source(model, device=device)
    if device is None:
        device = next(model.parameters()).device
    transform = transforms_for(model)
    names = list((getattr(model, "pretrained_cfg", None) or {}).get("label_names") or [])
    results: list[ImagePrediction] = []
    batch: list[tuple[ImagePrediction, torch.Tensor]] = []

    def run_batch() -> None:
        if not batch:
            return
        images = torch.stack([image for _, image in batch]).to(device)
        with torch.inference_mode():
            probabilities = model(images).float().softmax(dim=1)
        values, indices = probabilities.topk(min(topk, probabilities.shape[1]), dim=1)
        for (result, _), row_values, row_indices in zip(batch, values.tolist(), indices.tolist()):
            result.indices = row_indices
            result.probabilities = row_values
            result.labels = [names[i] if i < len(names) else str(i) for i in row_indices]
        batch.clear()

    was_training = model.training
    model.eval()
    try:
        for item in find_images(paths):
            if isinstance(item, ImageError):
                if errors == "raise":
                    raise item
                results.append(ImagePrediction(Path(item.path), error=str(item)))
                continue
            result = ImagePrediction(item)
            results.append(result)
            try:
                batch.append((result, _load(item, transform)))
            except ImageError as error:
                if errors == "raise":
                    raise
                result.error = str(error)
            if len(batch) >= batch_size:
                run_batch()
        run_batch()
    finally:
        model.train(was_training)
    return results
