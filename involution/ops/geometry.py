"""The sizes of one involution call: checked once, named, and shared by every backend.

:func:`check_geometry` validates the arguments of
:func:`~involution.ops.functional.involution2d` and derives the output size; every
implementation, and the fake (shape-only) implementations that
``torch.compile`` and ``torch.export`` use, start from its answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.modules.utils import _pair

__all__ = ["InvolutionGeometry", "check_geometry", "is_positive_int"]


@dataclass(frozen=True)
class InvolutionGeometry:
    """Sizes of one involution call, checked and derived once."""

    batch: int
    channels: int
    groups: int
    kernel_size: int
    height: int
    width: int
    out_height: int
    out_width: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def group_channels(self) -> int:
        return self.channels // self.groups


def is_positive_int(value) -> bool:
    """True for 1, 2, 3...; False for 0, negatives, floats and bools."""
    # bool is an int in Python: True would pass as a size of 1.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_pair(value, name: str) -> tuple[int, int]:
    pair = _pair(value)
    if len(pair) != 2 or not all(is_positive_int(v) for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair


def check_geometry(input: torch.Tensor, kernel: torch.Tensor, stride=1, padding=None,
                   dilation=1) -> InvolutionGeometry:
    """Validate the arguments of :func:`involution2d` and derive all sizes.

    Every mismatch raises a ``ValueError`` that names the offending sizes.
    """
    if not isinstance(input, torch.Tensor) or not isinstance(kernel, torch.Tensor):
        raise ValueError("input and kernel must be torch.Tensors, got "
                         f"{type(input).__name__} and {type(kernel).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must be 4-D (B, C, H, W), got shape {tuple(input.shape)}")
    if kernel.dim() != 6:
        raise ValueError("kernel must be 6-D (B, G, K, K, H_out, W_out), got shape "
                         f"{tuple(kernel.shape)}")
    if not input.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if kernel.dtype != input.dtype:
        raise ValueError(f"kernel dtype {kernel.dtype} differs from input dtype {input.dtype}; "
                         "cast one of them, e.g. kernel.to(input.dtype)")
    if kernel.device != input.device:
        raise ValueError(f"kernel is on {kernel.device} but input is on {input.device}; "
                         "move both to the same device")
    batch, channels, height, width = input.shape
    k_batch, groups, k_h, k_w, out_h, out_w = kernel.shape
    if k_batch != batch:
        raise ValueError(f"kernel batch size {k_batch} differs from input batch size {batch}")
    if k_h != k_w:
        raise ValueError(f"kernel must be square (K x K), got {k_h} x {k_w} "
                         f"in kernel shape {tuple(kernel.shape)}")
    if groups < 1 or channels % groups != 0:
        raise ValueError(f"input channels C={channels} must be divisible by the kernel's "
                         f"group count G={groups} (kernel shape {tuple(kernel.shape)})")
    stride = _positive_pair(stride, "stride")
    dilation = _positive_pair(dilation, "dilation")
    if padding is None:
        padding = tuple(d * (k_h - 1) // 2 for d in dilation)
    padding = _pair(padding)
    if len(padding) != 2 or any(not isinstance(p, int) or p < 0 for p in padding):
        raise ValueError(f"padding must be a non-negative int or a pair of them, got {padding!r}")
    expected = tuple(
        (size + 2 * p - d * (k_h - 1) - 1) // s + 1
        for size, p, d, s in zip((height, width), padding, dilation, stride)
    )
    if expected[0] < 1 or expected[1] < 1:
        raise ValueError(f"input of size {height}x{width} is too small for a {k_h}x{k_h} kernel "
                         f"with padding {padding} and dilation {dilation}")
    if (out_h, out_w) != expected:
        raise ValueError(
            f"kernel spatial size {out_h}x{out_w} does not match the output size "
            f"{expected[0]}x{expected[1]} of a {height}x{width} input with kernel size {k_h}, "
            f"stride {stride}, padding {padding}, dilation {dilation}")
    return InvolutionGeometry(batch, channels, groups, k_h, height, width, out_h, out_w,
                              stride, padding, dilation)
