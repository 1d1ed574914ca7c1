"""Capture the kernels an involution network generates, and draw them.

The kernels are not weights: every forward pass generates new ones from the
image. :func:`capture_kernels` records them with forward hooks on each
layer's :class:`~involution.layers.KernelGenerator`, so nothing about the
forward pass is repeated or changed.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .layers import Involution2d

__all__ = ["capture_kernels", "involution_layers"]


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
