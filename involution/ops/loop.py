"""Pure-PyTorch, memory-lean involution: one pass per kernel offset.

For each of the K*K offsets (u, v) the input window seen by every output
pixel is just a strided view of the zero-padded input, so

    out += kernel[:, :, u, v] * padded_input[shifted view]

accumulates the result without ever materialising the K*K-times larger
unfolded tensor. The backward pass is written out by hand for the same
reason: autograd would otherwise allocate a full-size gradient for every view.
This runs on any device and dtype; it is the fallback where no faster
kernel exists.

In float16 and bfloat16 the K*K products are formed and summed in float32
and rounded once at the end, as unfold's ``sum`` does: rounding the running
sum to bfloat16 after each of the 49 terms made the output 2.4 times less
accurate than unfold's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from involution.ops.custom_op import Backend, register


def _padded_groups(input: torch.Tensor, geo) -> torch.Tensor:
    """Zero-pad the input and view it as (B, G, C/G, H_pad, W_pad)."""
    pad_h, pad_w = geo.padding
    padded = F.pad(input, (pad_w, pad_w, pad_h, pad_h))
    return padded.view(geo.batch, geo.groups, geo.group_channels, *padded.shape[-2:])


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16, the dtype itself for float32/float64."""
    return torch.promote_types(dtype, torch.float32)


def _offset_window(padded: torch.Tensor, geo, u: int, v: int) -> torch.Tensor:
    """The input pixels that kernel offset (u, v) multiplies, as an output-sized view."""
    (stride_h, stride_w), (dil_h, dil_w) = geo.stride, geo.dilation
    top, left = u * dil_h, v * dil_w
    return padded[..., top: top + stride_h * (geo.out_height - 1) + 1: stride_h,
                  left: left + stride_w * (geo.out_width - 1) + 1: stride_w]


def loop_forward(input: torch.Tensor, kernel: torch.Tensor, geo) -> torch.Tensor:
    """The forward pass in plain PyTorch operations.

    Also the decomposition used where an opaque operator cannot go: ONNX
    export traces this function into pads, strided slices and multiply-adds.
    """
    padded = _padded_groups(input, geo)
    out = input.new_zeros(geo.batch, geo.groups, geo.group_channels, geo.out_height,
                          geo.out_width, dtype=_accumulation_dtype(input.dtype))
    for u in range(geo.kernel_size):
        for v in range(geo.kernel_size):
            # kernel[:, :, u, v] is (B, G, H_out, W_out): broadcast over the group's channels.
            # A half-precision product is formed in out's float32 before it is added.
            out.addcmul_(_offset_window(padded, geo, u, v), kernel[:, :, u, v].unsqueeze(2))
    return out.to(input.dtype).view(geo.batch, geo.channels, geo.out_height, geo.out_width)


def _forward(input, kernel, geo, output) -> None:
    output.copy_(loop_forward(input, kernel, geo))


def _backward(grad_output, input, kernel, geo, grad_input, grad_kernel) -> None:
    accumulation = _accumulation_dtype(input.dtype)
    grad_output = grad_output.reshape(geo.batch, geo.groups, geo.group_channels, geo.out_height,
                                      geo.out_width).to(accumulation)
    padded = _padded_groups(input, geo)
    grad_padded = torch.zeros_like(padded, dtype=accumulation) if grad_input is not None else None
    for u in range(geo.kernel_size):
        for v in range(geo.kernel_size):
            if grad_input is not None:
                _offset_window(grad_padded, geo, u, v).addcmul_(
                    grad_output, kernel[:, :, u, v].unsqueeze(2))
            if grad_kernel is not None:
                # Summed over the group's channels in float32, rounded once on assignment.
                window = _offset_window(padded, geo, u, v)
                grad_kernel[:, :, u, v] = (grad_output * window).sum(dim=2)
    if grad_input is not None:
        pad_h, pad_w = geo.padding
        grad_input.copy_(grad_padded.view(geo.batch, geo.channels, *padded.shape[-2:])
                         [..., pad_h: pad_h + geo.height, pad_w: pad_w + geo.width])


loop_forward_op = register(Backend("loop", _forward, _backward))
