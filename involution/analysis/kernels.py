"""The kernels an involution network generates: capture them, summarise them.

The kernels are not weights: every forward pass generates new ones from the
image. :func:`capture_kernels` records them with forward hooks on each
layer's :class:`~involution.layers.involution.KernelGenerator`, so nothing about the
forward pass is repeated or changed; :func:`kernel_summary` reduces a layer's
kernels to one number per pixel, and :func:`summary_at_pixels` reads that number
at chosen pixels of the input. (The figures that draw them are the
workbook's, :mod:`involution.workbook.kernel_figures`.)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from involution.layers import Involution2d

__all__ = ["capture_kernels", "involution_layers", "KERNEL_SUMMARIES", "kernel_summary", "check_kernel",
           "grid_position", "summary_at_pixels", "relative_variation"]


def involution_layers(model: nn.Module) -> dict[str, Involution2d]:
    """Every involution layer of ``model`` by name, in forward order for RedNets."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Involution2d)}
    # named_modules lists the RedNet stem last (it is added after torchvision's
    # layers); put it first so the order follows the forward pass.
    stem = {n: m for n, m in layers.items() if n.startswith(("stem", "model.stem"))}
    return {**stem, **{n: m for n, m in layers.items() if n not in stem}}


@contextmanager
def capture_kernels(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record every involution layer's generated kernels during forward passes.

    Yields a dict filled, after a forward pass inside the ``with`` block, with
    ``{layer name: kernel}``; each kernel is a detached CPU tensor of shape
    (B, G, K, K, H_out, W_out)::

        with capture_kernels(model) as kernels:
            model(images)
        kernels["layer1.0.conv2"].shape   # (B, 4, 7, 7, 56, 56) for RedNet at 224
    """
    kernels: dict[str, torch.Tensor] = {}

    def recorder(name):
        def record(module, inputs, kernel):
            kernels[name] = kernel.detach().float().cpu()
        return record

    hooks = [layer.kernel_generator.register_forward_hook(recorder(name))
             for name, layer in involution_layers(model).items()]
    try:
        yield kernels
    finally:
        for hook in hooks:
            hook.remove()


KERNEL_SUMMARIES = ("norm", "sum", "deviation")


def check_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """``kernel`` as a detached float32 CPU tensor, or a ValueError if it is not (B, G, K, K, H, W)."""
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 6:
        shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
        raise ValueError(f"expected generated kernels of shape (B, G, K, K, H, W), got {shape}")
    if kernel.shape[2] != kernel.shape[3]:
        raise ValueError(f"kernels must be square (K x K), got shape {tuple(kernel.shape)}")
    return kernel.detach().float().cpu()


def kernel_summary(kernel: torch.Tensor, summary: str = "deviation") -> torch.Tensor:
    """One number per pixel for a layer's generated kernels: (B, G, K, K, H, W) -> (B, H, W).

    ``"norm"``: the root-mean-square of the pixel's kernel weights (all groups),
    how strongly the kernel weights its neighbourhood.
    ``"sum"``: the sum of the K x K weights, averaged over the groups; the
    kernel's gain on a flat patch (1 for a pure smoothing kernel).
    ``"deviation"``: the root-mean-square difference between the pixel's
    kernel and the image's average kernel of that layer: zero everywhere for a
    convolution, whose kernel is the same at every pixel, so it shows where
    involution is spatially specific.
    """
    kernel = check_kernel(kernel)
    batch, groups, k, _, height, width = kernel.shape
    flat = kernel.reshape(batch, groups * k * k, height, width)
    if summary == "norm":
        return flat.pow(2).mean(dim=1).sqrt()
    if summary == "sum":
        return kernel.sum(dim=(2, 3)).mean(dim=1)
    if summary == "deviation":
        mean_kernel = flat.mean(dim=(2, 3), keepdim=True)
        return (flat - mean_kernel).pow(2).mean(dim=1).sqrt()
    raise ValueError(f"unknown kernel summary {summary!r}; choose one of {KERNEL_SUMMARIES}")


def grid_position(pixel: tuple[int, int], image_shape: tuple[int, int],
                  grid_shape: Sequence[int]) -> tuple[int, int]:
    """The cell of a layer's (H, W) kernel map that covers input pixel ``(row, col)``.

    A layer's kernel map is the input downsampled by the layer's total stride, so
    pixel (row, col) of a (height, width) image falls in cell (row * H / height, col * W / width).
    """
    row, col = pixel
    height, width = image_shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel {pixel} lies outside the {height}x{width} image")
    return int(row * grid_shape[0] / height), int(col * grid_shape[1] / width)


def summary_at_pixels(kernels: Mapping[str, torch.Tensor], pixels: Sequence[tuple[int, int]], image_size: int,
                      summary: str = "deviation", index: int = 0) -> dict[str, list[float]]:
    """Each layer's :func:`kernel_summary` at input pixels ``(row, col)`` of a square image ``index``."""
    values = {}
    for name, kernel in kernels.items():
        summary_map = kernel_summary(kernel, summary)[index]
        cells = [grid_position(pixel, (image_size, image_size), summary_map.shape) for pixel in pixels]
        values[name] = [float(summary_map[cell]) for cell in cells]
    return values


def relative_variation(kernels: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """How much each layer's kernels vary over an image *for their size*: one number per image.

    The image's mean ``"deviation"`` divided by its mean ``"norm"`` (:func:`kernel_summary`),
    so that kernels that are merely larger (a trained network's usually are) do not look
    more varied: 0 for a convolution, whose kernel is the same at every pixel.
    Returns ``{layer: (B,) tensor}``.
    """
    return {name: kernel_summary(kernel, "deviation").mean(dim=(1, 2))
            / kernel_summary(kernel, "norm").mean(dim=(1, 2)).clamp_min(torch.finfo(kernel.dtype).tiny)
            for name, kernel in kernels.items()}
