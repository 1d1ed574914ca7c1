"""One path from a kernel to a real PyTorch operator, shared by every backend.

Each fast implementation (``cpu``, ``loop``, ``triton_kernels``) only says how to
compute: a forward that fills a ready-made output and a backward that fills
ready-made gradients. :func:`register` turns that into two
``torch.library`` custom ops, ``involution::<name>_forward`` and
``involution::<name>_backward``, with

* a schema, so ``torch.jit.trace``, ``torch.export`` and ``torch.compile``
  record one opaque node instead of tracing into ctypes or Triton calls;
* a fake implementation, which only allocates: it gives compile and export
  the output's shape, dtype and strides without running anything. It calls
  the same allocation functions as the real one, so the two cannot disagree;
* a registered autograd formula (the backward op), so the gradients are the
  hand-written fused ones under eager, compile and export alike;
* a flop formula, so ``torch.utils.flop_counter`` counts the involution's
  multiply-adds (two FLOPs each, PyTorch's convention for convolutions).

Tested with ``torch.library.opcheck`` in ``tests/test_ops_ecosystem.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import register_flop_formula

from involution.ops.geometry import InvolutionGeometry, check_geometry

__all__ = ["Backend", "register"]

FORWARD_SCHEMA = "(Tensor input, Tensor kernel, int[2] stride, int[2] padding, int[2] dilation)" \
                 " -> Tensor"
# A gradient that nobody asked for is not computed and comes back as None.
BACKWARD_SCHEMA = ("(Tensor grad_output, Tensor input, Tensor kernel, int[2] stride, "
                   "int[2] padding, int[2] dilation, bool input_grad, bool kernel_grad)"
                   " -> (Tensor?, Tensor?)")


def _contiguous_output(input: torch.Tensor, geo: InvolutionGeometry) -> torch.Tensor:
    return input.new_empty(geo.batch, geo.channels, geo.out_height, geo.out_width)


@dataclass(frozen=True)
class Backend:
    """How one implementation computes; :func:`register` does the rest.

    ``forward(input, kernel, geo, output)`` fills ``output``;
    ``backward(grad_output, input, kernel, geo, grad_input, grad_kernel)``
    fills the gradient tensors it is given (either may be ``None``: not
    wanted). Both are only called on non-empty problems. ``new_output``
    allocates the output (its memory format is the backend's choice);
    gradients are allocated like the tensor they belong to.
    """

    name: str
    forward: Callable[..., None]
    backward: Callable[..., None]
    new_output: Callable[[torch.Tensor, InvolutionGeometry], torch.Tensor] = _contiguous_output
    device_types: tuple[str, ...] | None = None  # None: any device


def _allocate_gradients(input, kernel, input_grad: bool, kernel_grad: bool):
    return (torch.empty_like(input) if input_grad else None,
            torch.empty_like(kernel) if kernel_grad else None)


def _involution_macs(input_shape, kernel_shape) -> int:
    """Multiply-adds of one forward: K*K per output element."""
    batch, channels = input_shape[:2]
    kernel_size, out_height, out_width = kernel_shape[3:]
    return batch * channels * out_height * out_width * kernel_size * kernel_size


def register(backend: Backend):
    """Register ``backend`` as custom ops; returns the forward op to call."""
    forward_name = f"involution::{backend.name}_forward"
    backward_name = f"involution::{backend.name}_backward"

    def forward(input, kernel, stride, padding, dilation):
        geo = check_geometry(input, kernel, stride, padding, dilation)
        output = backend.new_output(input, geo)
        if output.numel() > 0:
            backend.forward(input, kernel, geo, output)
        return output

    def backward(grad_output, input, kernel, stride, padding, dilation, input_grad, kernel_grad):
        geo = check_geometry(input, kernel, stride, padding, dilation)
        grad_input, grad_kernel = _allocate_gradients(input, kernel, input_grad, kernel_grad)
        if grad_output.numel() > 0:
            backend.backward(grad_output, input, kernel, geo, grad_input, grad_kernel)
        else:  # an empty batch: nothing to launch, and every gradient is zero
            for grad in (grad_input, grad_kernel):
                if grad is not None:
                    grad.zero_()
        return grad_input, grad_kernel

    forward_op = torch.library.custom_op(forward_name, forward, mutates_args=(),
                                         device_types=backend.device_types,
                                         schema=FORWARD_SCHEMA)
    backward_op = torch.library.custom_op(backward_name, backward, mutates_args=(),
                                          device_types=backend.device_types,
                                          schema=BACKWARD_SCHEMA)

    @forward_op.register_fake
    def _(input, kernel, stride, padding, dilation):
        return backend.new_output(input, check_geometry(input, kernel, stride, padding, dilation))

    @backward_op.register_fake
    def _(grad_output, input, kernel, stride, padding, dilation, input_grad, kernel_grad):
        return _allocate_gradients(input, kernel, input_grad, kernel_grad)

    def setup_context(ctx, inputs, output):
        input, kernel, *ctx.geometry = inputs
        ctx.save_for_backward(input, kernel)

    def gradient(ctx, grad_output):
        input, kernel = ctx.saved_tensors
        grads = backward_op(grad_output, input, kernel, *ctx.geometry,
                            *ctx.needs_input_grad[:2])
        return (*grads, None, None, None)

    forward_op.register_autograd(gradient, setup_context=setup_context)

    def no_double_backward(ctx, *grads):
        # Without this, create_graph=True failed at once with torch's bare "no autograd formula".
        raise NotImplementedError(
            f"involution's {backend.name!r} implementation has no double backward (the gradient of a "
            "gradient, as a gradient penalty or torch.autograd.grad(..., create_graph=True) then .backward() "
            "needs); use impl='unfold' (involution2d or Involution2d), whose backward is made of PyTorch "
            "operations")

    backward_op.register_autograd(no_double_backward, setup_context=lambda ctx, inputs, output: None)

    @register_flop_formula(getattr(torch.ops.involution, f"{backend.name}_forward"))
    def _(input_shape, kernel_shape, *args, **kwargs):
        return 2 * _involution_macs(input_shape, kernel_shape)

    @register_flop_formula(getattr(torch.ops.involution, f"{backend.name}_backward"))
    def _(grad_output_shape, input_shape, kernel_shape, stride, padding, dilation, input_grad,
          kernel_grad, **kwargs):
        # Each gradient asked for costs as many multiply-adds as the forward.
        return 2 * (input_grad + kernel_grad) * _involution_macs(input_shape, kernel_shape)

    return forward_op
