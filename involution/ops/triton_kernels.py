"""GPU involution in Triton: a forward kernel and two backward kernels.

What the operator costs
-----------------------
Involution is memory-bound: each multiply-add reads one input value and one
kernel value, and there is nothing like a convolution's weight matrix to keep
the arithmetic units busy. The speed of a GPU implementation is therefore
decided by how often each byte is fetched. A naive kernel (one thread per
output element, as in the paper's CuPy code) loads every kernel value C/G
times, once for each channel that shares it, and re-reads every input value
K*K times from global memory.

The tiling used here
--------------------
Every kernel below is launched as one *program* per (batch element, group,
block of pixels, block of the group's channels; the kernel gradient takes all
of a group's channels in one program). A program works on a
``[CG_BLOCK, PIX_BLOCK]`` tile: rows are channels of one group, columns are
consecutive pixels of the flattened H x W plane. Then:

* the K x K kernel of a pixel is loaded once and reused, from registers, by
  all the group's channels in the tile (the column broadcast
  ``weight[None, :]``);
* for a fixed kernel offset (u, v) the pixels of the tile read consecutive
  input addresses (at stride 1), so the loads are coalesced, and the K*K
  overlapping reads of one input value are served mostly by the L1/L2 caches
  rather than DRAM;
* sums live in registers, in float32 (float64 for float64 tensors), and each
  result is stored exactly once: no atomics, no zero-initialised outputs.

Pixels are blocked along the *flattened* plane rather than in 2-D squares, so
the small late-stage feature maps of a ResNet-like network (14x14, 7x7) waste
no lanes on padding.

The three kernels, for ``out[c, i, j] = sum_{u,v} w[g(c), u, v, i, j] *
x[c, i*s + u*d - p, j*s + v*d - p]`` (batch index left out):

``_forward_kernel``
    Gathers, for each offset, the input value under each output pixel.
``_kernel_grad_kernel``
    ``dL/dw[g, u, v, i, j] = sum_{c in g} dL/dout[c, i, j] * x[c, ...]``: the
    same tile, reduced over its channel axis (``tl.sum(axis=0)``), so one
    program owns all channels of a group and stores each gradient once.
``_input_grad_kernel``
    The transpose of the forward pass, written as a *gather* over input pixels
    so that no two programs write the same address: input pixel ``q``
    receives from the output pixel ``t / s`` with ``t = q + p - u*d`` for
    every offset whose ``t`` is non-negative, divisible by ``s`` and inside
    the output.

Interpreter mode
----------------
With ``TRITON_INTERPRET=1`` Triton runs these kernels in Python, on CPU
tensors, which is how the tests check them on machines without a GPU. Triton
reads the variable when a kernel is *defined*, that is when this module is
first imported, so it must be set before that (best: before Python starts).
Without Triton installed the module still imports; :func:`available` is then
``False``.
"""
from __future__ import annotations

import os
import warnings
from contextlib import nullcontext

import torch
from torch._subclasses.fake_tensor import unset_fake_temporarily

from involution.ops.custom_op import Backend, register

try:
    import triton
    import triton.language as tl
except Exception:  # not installed, or an installation that fails to import
    triton = tl = None


def _interpreter_requested() -> bool:
    if triton is None:
        return False
    knobs = getattr(triton, "knobs", None)  # triton >= 3.4 reads its settings here
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# Frozen at import, like the kernels below: they are interpreted or compiled
# depending on the mode in force when they were defined, not when called.
INTERPRETED = _interpreter_requested()


def _jit(fn):
    """``triton.jit``, or the plain function where Triton is missing (never launched then)."""
    return fn if triton is None else triton.jit(fn)


def available() -> bool:
    """Whether the Triton kernels can run here: on CUDA, or in interpreter mode."""
    try:
        return triton is not None and (INTERPRETED or torch.cuda.is_available())
    except Exception:  # a broken CUDA setup must not break the caller's fallback logic
        return False


# --------------------------------------------------------------------------
# Kernels. Shared conventions:
#   * ``batch_group`` = b * G + g. Channel c' of group g in batch element b is
#     plane (b * C + g * C/G + c') = batch_group * C/G + c' of the input seen as
#     (B*C, H, W), so no separate b and g are needed. Plane offsets are int64:
#     B*C*H*W can exceed 2**31 for large batches.
#   * The grid is 1-D (axis 0 allows 2**31 - 1 programs; axes 1 and 2 only
#     65535, which B*G alone can exceed). Pixel blocks vary fastest, so
#     programs running side by side share their halo rows in L2.
#   * Strides are compile-time constants: at stride 1 the divisibility tests
#     of the input gradient vanish. K is one too, but the K*K offsets are a
#     plain ``range`` loop, not ``tl.static_range``: fully unrolled, the
#     compiler hoists all K*K tile loads ahead of the adds and, at K = 7,
#     spills kilobytes of registers to local memory.
# --------------------------------------------------------------------------

@_jit
def _program_tile(pixels, channel_blocks, PIX_BLOCK: tl.constexpr):
    """Which tile this program owns: its ``batch_group``, its block of the
    group's channels and its block of ``pixels`` pixels (with their mask).
    Pixel blocks vary fastest, then channel blocks, then batch_group."""
    num_pix_blocks = tl.cdiv(pixels, PIX_BLOCK)
    pid = tl.program_id(0)
    channel_block = (pid // num_pix_blocks) % channel_blocks
    batch_group = (pid // (num_pix_blocks * channel_blocks)).to(tl.int64)
    pixel = (pid % num_pix_blocks) * PIX_BLOCK + tl.arange(0, PIX_BLOCK)
    return batch_group, channel_block, pixel, pixel < pixels


@_jit
def _forward_kernel(
    input_ptr, kernel_ptr, output_ptr,
    group_channels, height, width, out_height, out_width,
    pad_h, pad_w, dil_h, dil_w,
    K: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    CG_BLOCK: tl.constexpr, PIX_BLOCK: tl.constexpr, ACC_DTYPE: tl.constexpr,
):
    out_pixels = out_height * out_width
    batch_group, channel_block, pixel, pixel_ok = _program_tile(  # output pixels, columns
        out_pixels, tl.cdiv(group_channels, CG_BLOCK), PIX_BLOCK)
    out_i = pixel // out_width
    out_j = pixel % out_width
    channel = channel_block * CG_BLOCK + tl.arange(0, CG_BLOCK)  # group channels, rows
    channel_ok = channel < group_channels
    plane = batch_group * group_channels + channel
    input_rows = input_ptr + plane[:, None] * (height * width)
    kernel_row = kernel_ptr + batch_group * (K * K * out_pixels) + pixel

    acc = tl.zeros((CG_BLOCK, PIX_BLOCK), dtype=ACC_DTYPE)
    for u in range(K):
        in_i = out_i * STRIDE_H + u * dil_h - pad_h
        row_ok = pixel_ok & (in_i >= 0) & (in_i < height)
        for v in range(K):
            in_j = out_j * STRIDE_W + v * dil_w - pad_w
            ok = row_ok & (in_j >= 0) & (in_j < width)  # False on the zero padding
            # One kernel value per pixel, broadcast to every channel row of the tile.
            weight = tl.load(kernel_row + (u * K + v) * out_pixels, mask=ok, other=0.0)
            x = tl.load(input_rows + (in_i * width + in_j)[None, :],
                        mask=channel_ok[:, None] & ok[None, :], other=0.0)
            acc += x.to(ACC_DTYPE) * weight.to(ACC_DTYPE)[None, :]

    output_rows = output_ptr + plane[:, None] * out_pixels
    tl.store(output_rows + pixel[None, :], acc.to(output_ptr.dtype.element_ty),
             mask=channel_ok[:, None] & pixel_ok[None, :])


@_jit
def _kernel_grad_kernel(
    input_ptr, grad_output_ptr, grad_kernel_ptr,
    group_channels, height, width, out_height, out_width,
    pad_h, pad_w, dil_h, dil_w,
    K: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    CG_BLOCK: tl.constexpr, PIX_BLOCK: tl.constexpr, ACC_DTYPE: tl.constexpr,
):
    # No channel blocks in the grid: the gradient of a kernel value sums over all
    # channels of its group, so one program loops over them and stores once.
    out_pixels = out_height * out_width
    batch_group, _, pixel, pixel_ok = _program_tile(out_pixels, 1, PIX_BLOCK)
    out_i = pixel // out_width
    out_j = pixel % out_width
    first_plane = batch_group * group_channels
    grad_kernel_row = grad_kernel_ptr + batch_group * (K * K * out_pixels) + pixel

    for u in range(K):
        in_i = out_i * STRIDE_H + u * dil_h - pad_h
        row_ok = pixel_ok & (in_i >= 0) & (in_i < height)
        for v in range(K):
            in_j = out_j * STRIDE_W + v * dil_w - pad_w
            ok = row_ok & (in_j >= 0) & (in_j < width)
            acc = tl.zeros((PIX_BLOCK,), dtype=ACC_DTYPE)
            # Usually a single iteration (C/G <= CG_BLOCK). The grad_output tile is
            # the same for every offset; after the first one it comes from cache.
            for channel_start in range(0, group_channels, CG_BLOCK):
                channel = channel_start + tl.arange(0, CG_BLOCK)
                channel_ok = channel < group_channels
                plane = first_plane + channel
                grad = tl.load(grad_output_ptr + plane[:, None] * out_pixels + pixel[None, :],
                               mask=channel_ok[:, None] & pixel_ok[None, :], other=0.0)
                x = tl.load(input_ptr + plane[:, None] * (height * width)
                            + (in_i * width + in_j)[None, :],
                            mask=channel_ok[:, None] & ok[None, :], other=0.0)
                acc += tl.sum(grad.to(ACC_DTYPE) * x.to(ACC_DTYPE), axis=0)
            tl.store(grad_kernel_row + (u * K + v) * out_pixels,
                     acc.to(grad_kernel_ptr.dtype.element_ty), mask=pixel_ok)


@_jit
def _input_grad_kernel(
    kernel_ptr, grad_output_ptr, grad_input_ptr,
    group_channels, height, width, out_height, out_width,
    pad_h, pad_w, dil_h, dil_w,
    K: tl.constexpr, STRIDE_H: tl.constexpr, STRIDE_W: tl.constexpr,
    CG_BLOCK: tl.constexpr, PIX_BLOCK: tl.constexpr, ACC_DTYPE: tl.constexpr,
):
    # The tile's columns are *input* pixels here: each program gathers every
    # contribution to its own pixels, so the store needs no atomics.
    in_pixels = height * width
    out_pixels = out_height * out_width
    batch_group, channel_block, pixel, pixel_ok = _program_tile(
        in_pixels, tl.cdiv(group_channels, CG_BLOCK), PIX_BLOCK)
    in_i = pixel // width
    in_j = pixel % width
    channel = channel_block * CG_BLOCK + tl.arange(0, CG_BLOCK)
    channel_ok = channel < group_channels
    plane = batch_group * group_channels + channel
    grad_output_rows = grad_output_ptr + plane[:, None] * out_pixels
    kernel_base = kernel_ptr + batch_group * (K * K * out_pixels)

    acc = tl.zeros((CG_BLOCK, PIX_BLOCK), dtype=ACC_DTYPE)
    for u in range(K):
        # Output row whose tap u reads input row in_i: out_i * S + u * d - p == in_i.
        # For t_i < 0, // and % round differently compiled and interpreted; no
        # matter, those lanes are masked by t_i >= 0. At stride S only one tap
        # in S per axis matches a given pixel: the others are masked loads,
        # which cost instructions but no memory traffic.
        t_i = in_i + pad_h - u * dil_h
        out_i = t_i // STRIDE_H
        row_ok = pixel_ok & (t_i >= 0) & (t_i % STRIDE_H == 0) & (out_i < out_height)
        for v in range(K):
            t_j = in_j + pad_w - v * dil_w
            out_j = t_j // STRIDE_W
            ok = row_ok & (t_j >= 0) & (t_j % STRIDE_W == 0) & (out_j < out_width)
            out_pixel = out_i * out_width + out_j
            weight = tl.load(kernel_base + (u * K + v) * out_pixels + out_pixel,
                             mask=ok, other=0.0)
            grad = tl.load(grad_output_rows + out_pixel[None, :],
                           mask=channel_ok[:, None] & ok[None, :], other=0.0)
            acc += grad.to(ACC_DTYPE) * weight.to(ACC_DTYPE)[None, :]

    grad_input_rows = grad_input_ptr + plane[:, None] * in_pixels
    tl.store(grad_input_rows + pixel[None, :], acc.to(grad_input_ptr.dtype.element_ty),
             mask=channel_ok[:, None] & pixel_ok[None, :])


# --------------------------------------------------------------------------
# Launch configuration.
#
# A tile holds at most TILE_ELEMENTS values. For a 16 x 64 tile over 4 warps
# (128 threads) Triton gives each thread one pixel column and 8 of its 16
# channels, so each thread loads its pixel's kernel value once and uses it 8
# times (two warps share a column: the second load hits L1), and the kernel
# gradient's channel sum is 8 in-thread adds plus one exchange through shared
# memory. Compiled for sm_90 this needs about 90 registers and no spills, so 5
# programs fit on an SM: a memory-bound kernel wants many loads in flight more
# than it wants big tiles (a 2048 tile needs ~135 registers, 3 programs/SM).
# C/G is 16 in RedNet, giving 16 x 64 tiles; C/G = 1 gets 1024-pixel rows,
# C/G >= 32 gets 32 x 32. Bigger groups are split over more programs (forward,
# input gradient) or looped over (kernel gradient). A block never exceeds the
# next power of two of the plane, so a 7 x 7 map does not idle 1024 lanes.
# These numbers come from register counts, not from a timing sweep on a GPU:
# TILE_ELEMENTS and NUM_WARPS are the first things to tune on real hardware.
# --------------------------------------------------------------------------
TILE_ELEMENTS = 1024
MAX_CHANNEL_BLOCK = 32
MIN_PIX_BLOCK = 32  # one warp's width
NUM_WARPS = 4


def _next_power_of_2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _block_sizes(group_channels: int, pixels: int) -> tuple[int, int]:
    """(CG_BLOCK, PIX_BLOCK) for a plane of ``pixels`` pixels. Both are powers of
    two, as ``tl.arange`` requires; the masks in the kernels cover the rest."""
    channel_block = min(_next_power_of_2(group_channels), MAX_CHANNEL_BLOCK)
    pix_block = min(TILE_ELEMENTS // channel_block, _next_power_of_2(pixels))
    return channel_block, max(pix_block, MIN_PIX_BLOCK)


def _accumulator_dtype(dtype: torch.dtype):
    # float16 / bfloat16 products are summed in float32; float64 stays float64.
    return tl.float64 if dtype == torch.float64 else tl.float32


def _launch(kernel, tensors, geo, pixels: int, split_channels: bool) -> None:
    """Launch one of the three kernels (they share their argument list) with one
    program per (batch, group, pixel block[, channel block])."""
    channel_block, pix_block = _block_sizes(geo.group_channels, pixels)
    programs = geo.batch * geo.groups * _cdiv(pixels, pix_block)
    if split_channels:
        programs *= _cdiv(geo.group_channels, channel_block)
    kernel[(programs,)](
        *tensors,
        geo.group_channels, geo.height, geo.width, geo.out_height, geo.out_width,
        *geo.padding, *geo.dilation,
        K=geo.kernel_size, STRIDE_H=geo.stride[0], STRIDE_W=geo.stride[1],
        CG_BLOCK=channel_block, PIX_BLOCK=pix_block,
        ACC_DTYPE=_accumulator_dtype(tensors[0].dtype), num_warps=NUM_WARPS,
    )


def _on_device(tensor: torch.Tensor):
    """Triton launches on the *current* CUDA device: make it ``tensor``'s."""
    return torch.cuda.device(tensor.device) if tensor.device.type == "cuda" else nullcontext()


def _launch_into(result: torch.Tensor, kernel, inputs, geo, pixels: int,
                 split_channels: bool) -> None:
    """Launch ``kernel`` to fill ``result``; the kernels write contiguous planes,
    so a non-contiguous ``result`` is filled through a contiguous stand-in."""
    target = result if result.is_contiguous() else torch.empty_like(
        result, memory_format=torch.contiguous_format)
    _launch(kernel, (*inputs, target), geo, pixels, split_channels)
    if target is not result:
        result.copy_(target)


def _forward(input, kernel, geo, output) -> None:
    with _on_device(input):
        _launch_into(output, _forward_kernel, (input.contiguous(), kernel.contiguous()), geo,
                     pixels=geo.out_height * geo.out_width, split_channels=True)


def _backward(grad_output, input, kernel, geo, grad_input, grad_kernel) -> None:
    # Each kernel writes every element of its gradient exactly once: no zeroing.
    input, kernel, grad_output = input.contiguous(), kernel.contiguous(), grad_output.contiguous()
    with _on_device(input):
        if grad_input is not None:
            _launch_into(grad_input, _input_grad_kernel, (kernel, grad_output), geo,
                         pixels=geo.height * geo.width, split_channels=True)
        if grad_kernel is not None:
            _launch_into(grad_kernel, _kernel_grad_kernel, (input, grad_output), geo,
                         pixels=geo.out_height * geo.out_width, split_channels=False)


# A plain custom op, not torch.library.triton_op: triton_op cannot trace a
# kernel in interpreter mode (an InterpretedFunction), so neither compile nor
# export could be tested on a machine without a GPU.
triton_forward = register(Backend("triton", _forward, _backward))


def check_supported(input: torch.Tensor) -> None:
    """Refuse, with the reason, what the Triton kernels cannot run here."""
    if triton is None:
        raise RuntimeError('impl="triton" needs the triton package, which is not installed '
                           '(or failed to import); use impl="loop" or impl=None')
    if input.device.type != "cuda" and not (INTERPRETED and input.device.type == "cpu"):
        raise ValueError(
            f'impl="triton" needs CUDA tensors, got {input.device}. To run the Triton kernels '
            "on the CPU, set TRITON_INTERPRET=1 before Python starts (Triton's interpreter, "
            "slow, for testing); otherwise use impl=None")


# --------------------------------------------------------------------------
# First-use self-check.
#
# The kernels are tested under the interpreter and on one GPU model; a user's
# GPU may lack a compiler, be too old, or not support a dtype (bfloat16 on a
# T4). So before the Triton kernels become the default for a (GPU, dtype)
# pair, they run one small problem, forward and both gradients, against the
# "loop" implementation in float64. Any error or mismatch makes "loop" the
# default there, with one warning that says why.
# --------------------------------------------------------------------------
SELF_CHECK_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-3,
                        torch.bfloat16: 1.6e-2}
_self_check_results: dict[tuple[str, torch.dtype], bool] = {}


def _self_check_problem(device, dtype):
    """A small problem that exercises a stride, a masked pixel block and two groups."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 32, 9, 11), (2, 2, 3, 3, 5, 6), (2, 32, 5, 6)]  # input, kernel, grad_output
    return [torch.randn(shape, generator=generator).to(device, dtype) for shape in shapes]


def _output_and_gradients(operator, input, kernel, grad_output):
    input, kernel = (t.detach().requires_grad_() for t in (input, kernel))
    output = operator(input, kernel, (2, 2), (1, 1), (1, 1))
    return (output, *torch.autograd.grad(output, (input, kernel), grad_output))


def self_check_failure(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the Triton kernels fail on ``device`` in ``dtype``, or ``None`` if they pass."""
    from involution.ops.loop import loop_forward_op
    problem = _self_check_problem(device, dtype)
    try:
        results = _output_and_gradients(triton_forward, *problem)
    except Exception as error:  # any failure at all means: do not use these kernels here
        return f"running them raised {type(error).__name__}: {str(error).strip()[:500]}"
    expected = _output_and_gradients(loop_forward_op, *(t.double() for t in problem))
    tolerance = SELF_CHECK_TOLERANCE.get(dtype, 1e-4)
    for name, got, want in zip(("output", "input gradient", "kernel gradient"), results,
                               expected):
        error = (got.double() - want).abs().max().item() if got.isfinite().all() else float("inf")
        if not error <= tolerance * (1 + want.abs().max().item()):
            return (f"their {name} differs from the loop implementation's by up to {error:.3g} "
                    f"(tolerance {tolerance:g})")
    return None


def passes_self_check(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the Triton kernels may be the default on ``device`` for ``dtype``.

    Checked once per (device, dtype) in a session (see :func:`self_check_failure`);
    ``False`` without a check where Triton cannot run at all.
    """
    key = (str(device), dtype)
    if key not in _self_check_results:
        # The first use may come inside torch.no_grad, inference_mode or a
        # torch.compile trace (fake tensors): the check needs real tensors and autograd.
        with unset_fake_temporarily(), torch.inference_mode(False), torch.enable_grad():
            failure = self_check_failure(device, dtype) if available() else None
        if failure is not None:
            warnings.warn(f"involution: the Triton kernels failed their self-check on {device} "
                          f"in {dtype}: {failure}. Using the slower \"loop\" implementation "
                          "there instead; pass impl=\"triton\" to force them.", RuntimeWarning)
        _self_check_results[key] = available() and failure is None
    return _self_check_results[key]
