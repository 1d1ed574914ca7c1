"""The involution layer: a kernel-generation branch plus the operator.

Involution's kernels are not parameters; a small branch *generates* them
from the feature map itself, one K x K kernel per pixel and group:

    kernel = span(ReLU(BN(reduce(pool(x)))))      # (B, K*K*G, H_out, W_out)

``pool`` (average pooling) only exists when the layer is strided, so the
kernel is generated at the output resolution. ``reduce`` squeezes C channels
to C / reduction_ratio; ``span`` expands them to K*K*G kernel weights per
pixel. This is exactly the official design (see shared reference anchors).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, noop_context_fn
from torchvision.ops import Conv2dNormActivation

from .functional import involution2d, is_positive_int

# torch.fx (and torchvision's create_feature_extractor) records the operator as
# one node instead of tracing its argument checks, which need real sizes.
torch.fx.wrap("involution2d")

__all__ = ["Involution2d", "KernelGenerator", "recompute_in_backward", "recomputing"]


def _fx_tracing() -> bool:
    fx = torch.fx._symbolic_trace
    return getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)()


def _tracing() -> bool:
    """Whether a tracer or compiler, not eager PyTorch, runs the forward: they record the
    plain forward (torch.compile's partitioner makes its own saving decisions)."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or _fx_tracing() or torch.onnx.is_in_onnx_export())


def recomputing(module: nn.Module) -> bool:
    """Whether ``module``'s forward should recompute its intermediates in backward now:
    asked for (``module.recompute``), training, with autograd on, in eager mode."""
    return (getattr(module, "recompute", False) and module.training and torch.is_grad_enabled()
            and not _tracing())


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def _running_stats_swapped(norms: list[nn.Module], spares: list[dict]):
    # The batch norms normalise with the batch's own statistics, exactly as in the first
    # run, and update the spare copies of their running statistics, thrown away after.
    kept = [{name: getattr(norm, name) for name in spare} for norm, spare in zip(norms, spares)]
    for norm, spare in zip(norms, spares):
        for name, buffer in spare.items():
            setattr(norm, name, buffer)
    try:
        yield
    finally:
        for norm, buffers in zip(norms, kept):
            for name, buffer in buffers.items():
                setattr(norm, name, buffer)


def _keeping(ops: frozenset):
    """A selective-checkpoint policy: the outputs of ``ops`` are kept, the rest recomputed."""
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in ops else CheckpointPolicy.PREFER_RECOMPUTE
    return create_selective_checkpoint_contexts(policy)


def recompute_in_backward(module: nn.Module, *inputs: torch.Tensor, forward=None,
                          keep: tuple = ()) -> torch.Tensor:
    """``module(*inputs)`` (or ``forward(*inputs)``, a function of ``module``), keeping
    none of its intermediate tensors for backward: backward runs it a second time to get
    them back (non-reentrant ``torch.utils.checkpoint``), so the gradients are exactly
    those of the plain call.

    The batch norms inside ``module`` update their running statistics in the first run
    only: the second one normalises with the same batch statistics and leaves the
    buffers alone, so a step with recomputation changes the model exactly as one without.

    ``keep``: operators (``torch.ops`` overloads) whose outputs are kept from the first
    run rather than computed again: those that are expensive to run, or whose outputs
    the code after ``module`` keeps for its own backward anyway.
    """
    function = module if forward is None else forward
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.training and m.track_running_stats]
    # Made here, outside the checkpoint: a copy made while recomputing would be an
    # operation the first run did not have.
    spares = [{name: getattr(norm, name).clone() for name in _RUNNING_STATS
               if getattr(norm, name) is not None} for norm in norms]
    runs = 0

    def run(*args):
        nonlocal runs
        runs += 1
        if runs == 1:
            return function(*args)
        with _running_stats_swapped(norms, spares):
            return function(*args)

    ops = frozenset(keep)
    context_fn = (lambda: _keeping(ops)) if ops else noop_context_fn
    return checkpoint(run, *inputs, use_reentrant=False, context_fn=context_fn)


def _involution_ops() -> tuple:
    ops = torch.ops.involution
    return (ops.cpu_forward.default, ops.loop_forward.default, ops.triton_forward.default)


class KernelGenerator(nn.Module):
    """Generates one K x K kernel per output pixel and channel group.

    Returns a (B, G, K, K, H_out, W_out) tensor. It is a module of its own so
    that a forward hook on it captures the generated kernels (see
    :func:`involution.viz.capture_kernels`) without repeating the forward.
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
