"""The involution operator, ``involution2d``, behind one signature.

Involution (Li et al., CVPR 2021) inverts the two design choices of
convolution. A convolution shares one K x K kernel across every pixel and
learns a different kernel per channel. An involution generates a different
K x K kernel for every pixel and shares it across the channels of a group::

    out[b, c, i, j] = sum_{u, v} kernel[b, g(c), u, v, i, j]
                                 * input[b, c, i*s + u*d - p, j*s + v*d - p]

with ``g(c) = c // (C // G)``, stride ``s``, dilation ``d``, zero padding
``p``. The kernel is an *input* here; :class:`involution.layers.involution.Involution2d`
generates it from the feature map.

Implementations (all compute the same thing, see ``tests/test_functional.py``):

``"unfold"``
    The reference: the paper's formula taken literally with ``F.unfold``. It
    materialises a (B, C*K*K, H_out*W_out) tensor, K*K times the size of the
    input, so it is slow and memory-hungry; it exists to check the others.
``"loop"``
    Pure PyTorch, memory-lean: loops over the K*K kernel offsets and
    accumulates shifted views of the input, so nothing bigger than the output
    is ever allocated. Works on every device and dtype.
``"cpu"``
    A small C++ kernel compiled on first use (about a second, cached), fused
    forward and backward. The default on the CPU for float32/float64, and for
    float16/bfloat16 (stored as such, computed in float32), when a C++
    compiler is available; otherwise ``"loop"`` is used.
``"triton"``
    Triton kernels, the default on CUDA GPUs once they pass a first-use
    self-check there (else ``"loop"``, with a warning saying why).

``"loop"``, ``"cpu"`` and ``"triton"`` are ``torch.library`` custom ops with
fake implementations and registered gradients (see ``custom_op.py``), so
``torch.compile``, ``torch.export``, ``torch.jit.trace``, torch.fx and the
FLOP counter see one involution node. ONNX, which has no such operator,
records the ``"loop"`` formula in standard operations instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from involution.ops import cpu, loop, triton_kernels
from involution.ops.geometry import InvolutionGeometry, check_geometry

__all__ = ["involution2d", "unfold_involution", "IMPLEMENTATIONS", "default_impl", "mixed_precision_dtype",
           "mixed_precision"]

IMPLEMENTATIONS = ("unfold", "loop", "cpu", "triton")


def unfold_involution(input: torch.Tensor, kernel: torch.Tensor,
                       geo: InvolutionGeometry) -> torch.Tensor:
    """The reference: unfold every K x K window, weight it, sum it."""
    k = geo.kernel_size
    # (k, k), not k: under torch.jit.trace a size is a 0-d tensor, which F.unfold cannot pair.
    windows = F.unfold(input, (k, k), dilation=geo.dilation, padding=geo.padding,
                       stride=geo.stride)
    # (B, C*K*K, L) -> (B, G, C/G, K*K, H_out, W_out): channel c lives in group c // (C/G).
    windows = windows.view(geo.batch, geo.groups, geo.group_channels, k * k,
                           geo.out_height, geo.out_width)
    weights = kernel.reshape(geo.batch, geo.groups, 1, k * k, geo.out_height, geo.out_width)
    out = (windows * weights).sum(dim=3)
    return out.view(geo.batch, geo.channels, geo.out_height, geo.out_width)


def _native_cpu_available(dtype: torch.dtype) -> bool:
    return dtype in cpu.SUPPORTED_DTYPES and cpu.built()


# torch.compile calls this at trace time and keeps the answer as a constant:
# tracing into it would meet a compiler build (CPU) or a kernel self-check (GPU).
@torch.compiler.assume_constant_result
def _default_impl_for(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cuda":
        return "triton" if triton_kernels.passes_self_check(device, dtype) else "loop"
    if device.type == "cpu" and _native_cpu_available(dtype):
        return "cpu"
    return "loop"


def default_impl(input: torch.Tensor) -> str:
    """The fastest implementation for ``input``'s device and dtype.

    On a GPU the Triton kernels are chosen only once they have passed a
    self-check on that GPU and dtype (see :func:`involution.ops.triton_kernels.passes_self_check`).
    """
    return _default_impl_for(input.device, input.dtype)


def mixed_precision_dtype(device: torch.device | str) -> torch.dtype:
    """The 16-bit dtype for mixed precision on ``device``: bfloat16 where the
    hardware has it, float16 elsewhere (GPUs before Ampere, such as a T4).

    bfloat16 keeps float32's range, so it needs no loss scaling; float16 does
    (Lightning's ``"16-mixed"`` adds it). Emulated bfloat16 does not count:
    it is slow, and Triton cannot compile it for those GPUs.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def mixed_precision(device: torch.device | str) -> str:
    """Lightning's ``precision`` setting for mixed precision on ``device``."""
    return "bf16-mixed" if mixed_precision_dtype(device) == torch.bfloat16 else "16-mixed"


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX), as oneDNN sees it.

    Honours ``ONEDNN_MAX_CPU_ISA``: limited to AVX2, a CPU that has it counts as one without.
    """
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def default_precision() -> str:
    """Lightning's ``precision`` for training here when a config sets none.

    A GPU: mixed precision in its best 16-bit type. A CPU with native bfloat16:
    bfloat16 autocast, which trains the workbook's models about 1.4x (RedNet) to
    1.8x (ResNet) faster than float32. Any other CPU: float32, because emulated
    bfloat16 is slower than float32.
    """
    if torch.cuda.is_available():
        return mixed_precision("cuda")
    return "bf16-mixed" if cpu_has_native_bfloat16() else "32-true"


def _exporting_to_onnx() -> bool:
    """ONNX has no involution operator: export records plain PyTorch operations instead."""
    return torch.onnx.is_in_onnx_export()


def involution2d(input: torch.Tensor, kernel: torch.Tensor, stride=1, padding=None,
                 dilation=1, impl: str | None = None) -> torch.Tensor:
    """Apply per-pixel, channel-shared kernels to ``input``.

    Args:
        input: (B, C, H, W) feature map.
        kernel: (B, G, K, K, H_out, W_out) kernels, one per output pixel and
            group; channel ``c`` uses group ``c // (C // G)``.
        stride, dilation: int or (h, w) pair.
        padding: zero padding, int or pair; ``None`` means
            ``dilation * (K - 1) // 2`` ("same" size at stride 1).
        impl: ``"unfold"``, ``"loop"``, ``"cpu"``, ``"triton"`` or ``None``
            for the best one for ``input``'s device (see the module docs).

    Returns:
        (B, C, H_out, W_out) tensor.

    ``"loop"``, ``"cpu"`` and ``"triton"`` are ``torch.library`` custom ops
    (``torch.ops.involution.<impl>_forward``), so ``torch.compile``,
    ``torch.export`` and ``torch.jit.trace`` record them as one node. During
    ONNX export every implementation but ``"unfold"`` is recorded as the
    ``"loop"`` formula in standard operations.
    """
    geo = check_geometry(input, kernel, stride, padding, dilation)
    if impl is None:
        impl = default_impl(input)
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown impl {impl!r}; choose one of {IMPLEMENTATIONS} or None")
    if impl == "unfold":
        return unfold_involution(input, kernel, geo)
    if _exporting_to_onnx():
        return loop.loop_forward(input, kernel, geo)
    if impl == "cpu":
        cpu.check_supported(input)
        operator = cpu.cpu_forward
    elif impl == "triton":
        triton_kernels.check_supported(input)
        operator = triton_kernels.triton_forward
    else:
        operator = loop.loop_forward_op
    return operator(input, kernel, geo.stride, geo.padding, geo.dilation)

