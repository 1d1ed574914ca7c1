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
from torch.autograd.function import once_differentiable


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


class _LoopInvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, kernel, geo):
        ctx.geo = geo
        ctx.save_for_backward(input, kernel)
        padded = _padded_groups(input, geo)
        out = input.new_zeros(geo.batch, geo.groups, geo.group_channels, geo.out_height,
                              geo.out_width, dtype=_accumulation_dtype(input.dtype))
        for u in range(geo.kernel_size):
            for v in range(geo.kernel_size):
                # kernel[:, :, u, v] is (B, G, H_out, W_out): broadcast over the group's channels.
                # A half-precision product is formed in out's float32 before it is added.
                out.addcmul_(_offset_window(padded, geo, u, v), kernel[:, :, u, v].unsqueeze(2))
        return out.to(input.dtype).view(geo.batch, geo.channels, geo.out_height, geo.out_width)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        input, kernel = ctx.saved_tensors
        geo = ctx.geo
        need_input, need_kernel = ctx.needs_input_grad[:2]
        accumulation = _accumulation_dtype(input.dtype)
        grad_out = grad_out.reshape(geo.batch, geo.groups, geo.group_channels, geo.out_height,
                                    geo.out_width).to(accumulation)
        padded = _padded_groups(input, geo)
        grad_padded = torch.zeros_like(padded, dtype=accumulation) if need_input else None
        grad_kernel = torch.empty_like(kernel) if need_kernel else None
        for u in range(geo.kernel_size):
            for v in range(geo.kernel_size):
                if need_input:
                    _offset_window(grad_padded, geo, u, v).addcmul_(
                        grad_out, kernel[:, :, u, v].unsqueeze(2))
                if need_kernel:
                    # Summed over the group's channels in float32, rounded once on assignment.
                    window = _offset_window(padded, geo, u, v)
                    grad_kernel[:, :, u, v] = (grad_out * window).sum(dim=2)
        grad_input = None
        if need_input:
            pad_h, pad_w = geo.padding
            grad_input = grad_padded.view(
                geo.batch, geo.channels, *padded.shape[-2:]
            )[..., pad_h: pad_h + geo.height, pad_w: pad_w + geo.width].to(input.dtype)
        return grad_input, grad_kernel, None


def loop_involution(input: torch.Tensor, kernel: torch.Tensor, geo) -> torch.Tensor:
    return _LoopInvolution.apply(input, kernel, geo)
