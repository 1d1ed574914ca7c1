"""The involution layer: a kernel-generation branch plus the operator.

Involution's kernels are not parameters; a small branch *generates* them
from the feature map itself, one K x K kernel per pixel and group:

    kernel = span(ReLU(BN(reduce(pool(x)))))      # (B, K*K*G, H_out, W_out)

``pool`` (average pooling) only exists when the layer is strided, so the
kernel is generated at the output resolution. ``reduce`` squeezes C channels
to C / reduction_ratio; ``span`` expands them to K*K*G kernel weights per
pixel. This is exactly the official design.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from involution.layers.recompute import recompute_in_backward, recomputing
from involution.ops.functional import involution2d
from involution.ops.geometry import is_positive_int

# torch.fx (and torchvision's create_feature_extractor) records the operator as
# one node instead of tracing its argument checks, which need real sizes.
torch.fx.wrap("involution2d")

__all__ = ["Involution2d", "KernelGenerator"]


def _involution_ops() -> tuple:
    ops = torch.ops.involution
    return (ops.cpu_forward.default, ops.loop_forward.default, ops.triton_forward.default)


class KernelGenerator(nn.Module):
    """Generates one K x K kernel per output pixel and channel group.

    Returns a (B, G, K, K, H_out, W_out) tensor. It is a module of its own so
    that a forward hook on it captures the generated kernels (see
    :func:`involution.analysis.kernels.capture_kernels`) without repeating the forward.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, groups: int,
                 reduction_ratio: int):
        super().__init__()
        self.kernel_size, self.groups = kernel_size, groups
        # ceil_mode: the pooled size then equals the involution's output size
        # (H - 1) // stride + 1 for odd H too; for even H it is plain pooling.
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.reduce = Conv2dNormActivation(channels, channels // reduction_ratio, kernel_size=1)
        self.span = nn.Conv2d(channels // reduction_ratio, kernel_size * kernel_size * groups, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.span(self.reduce(self.pool(x)))
        # unflatten, not view(*shape): symbolic tracing (torch.fx) sees no sizes.
        k = self.kernel_size
        return weights.unflatten(1, (self.groups, k, k))


def _check_arguments(channels, kernel_size, stride, group_channels, reduction_ratio) -> None:
    """Refuse sizes that would fail later with a ZeroDivisionError or a tensor error."""
    official = {"kernel_size": 7, "stride": 1, "group_channels": 16, "reduction_ratio": 4}
    for name, value in [("channels", channels), ("kernel_size", kernel_size), ("stride", stride),
                        ("group_channels", group_channels), ("reduction_ratio", reduction_ratio)]:
        if not is_positive_int(value):
            hint = f" (the official value is {official[name]})" if name in official else ""
            raise ValueError(f"{name} must be a positive int{hint}, got {value!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd so the kernel is centred, got {kernel_size}; "
                         f"use {kernel_size - 1} or {kernel_size + 1}")
    if channels % group_channels != 0:
        raise ValueError(f"channels={channels} must be divisible by "
                         f"group_channels={group_channels}")
    if channels // reduction_ratio < 1:
        raise ValueError(f"reduction_ratio={reduction_ratio} leaves no channels from "
                         f"channels={channels}; use a ratio of at most {channels}")


class Involution2d(nn.Module):
    """Involution with a generated kernel, as in RedNet.

    Args:
        channels: input and output channels C (involution keeps them).
        kernel_size: K of the K x K kernels (7 in RedNet's bottlenecks).
        stride: spatial stride; the kernel is generated from the input
            average-pooled by ``stride``.
        group_channels: channels sharing one kernel; G = C / group_channels.
        reduction_ratio: channel reduction inside the kernel generator.
        impl: operator implementation passed to :func:`involution2d`
            (``None`` picks the fastest for the device).
        recompute: in training, keep only the layer's input for backward and
            generate the kernels (and the kernel generator's small
            intermediates) again there, instead of keeping them: the kernels
            are K*K*G/C times the size of the input (about 3x for RedNet's
            7x7 layers). Gradients are exactly the same; the cost is one more
            forward of the layer in backward. Off in evaluation, under
            ``torch.no_grad`` and while compiling or tracing.
    """

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1,
                 group_channels: int = 16, reduction_ratio: int = 4, impl: str | None = None,
                 recompute: bool = False):
        super().__init__()
        _check_arguments(channels, kernel_size, stride, group_channels, reduction_ratio)
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.groups = channels // group_channels
        self.impl = impl
        self.recompute = recompute
        self.kernel_generator = KernelGenerator(channels, kernel_size, stride, self.groups,
                                                reduction_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if recomputing(self):
            # The operator's output is kept: the batch norm after it keeps it anyway.
            return recompute_in_backward(self, x, forward=self._involve, keep=_involution_ops())
        return self._involve(x)

    def _involve(self, x: torch.Tensor) -> torch.Tensor:
        # Under autocast the generated kernel may come out in a lower precision
        # than x; the operator takes both in one dtype.
        kernel = self.kernel_generator(x).to(x.dtype)
        return involution2d(x, kernel, stride=self.stride, padding=(self.kernel_size - 1) // 2,
                            impl=self.impl)

    def extra_repr(self) -> str:
        return (f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}" + (", recompute=True" if self.recompute else ""))
