"""Fast CPU involution: a small C++ kernel compiled on first use.

``csrc/involution_cpu.cpp`` has no PyTorch headers, so it compiles in about a
second with the system C++ compiler. The shared library is cached under
``$INVOLUTION_CACHE`` (default ``~/.cache/involution``), keyed by the source,
the compiler flags and this CPU, so later sessions load it instantly. It is
called through ctypes, which releases the GIL, and runs on
``torch.get_num_threads()`` OpenMP threads (PyTorch's own pool where
PyTorch uses libgomp).

Where no compiler exists, or compilation fails, :func:`library` returns
``None`` after one warning and ``involution2d`` falls back to the pure-PyTorch
``"loop"`` implementation.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from involution.ops.custom_op import Backend, register

SOURCE = Path(__file__).with_name("csrc") / "involution_cpu.cpp"
# float16 and bfloat16 are stored as such and computed in float32 (see csrc).
SUPPORTED_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16",
                    torch.bfloat16: "bf16"}
# -march=native: the library is built on, and cached for, the machine that runs it.
# -fassociative-math (with the two flags it needs) lets the compiler sum a
# 16-channel dot product as a vector instead of one channel after another.
FLAGS = ["-O3", "-march=native", "-fassociative-math", "-fno-signed-zeros",
         "-fno-trapping-math", "-std=c++17", "-shared", "-fPIC"]
# Threads come from OpenMP: where PyTorch runs on libgomp (Linux wheels), the
# library joins PyTorch's own thread pool (see csrc). A compiler without
# OpenMP support gets a second try without it: correct, but single-threaded.
OPENMP = "-fopenmp"


def cache_dir() -> Path:
    """Where the compiled kernel is cached: ``$INVOLUTION_CACHE``, else ``$XDG_CACHE_HOME/involution``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "involution"
    return Path(os.environ.get("INVOLUTION_CACHE", default))


def _cpu_fingerprint() -> str:
    """Identify the CPU, so a cache shared between machines never loads a foreign build."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def _build(compiler: str, flags: list[str]) -> Path:
    digest = hashlib.sha256(
        SOURCE.read_bytes() + " ".join([compiler, *flags, _cpu_fingerprint()]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"involution_cpu_{digest}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Seconds of silence otherwise, once per machine and compiler: say what is happening.
    print("involution: compiling the CPU kernel for this machine (once per machine, a few seconds) ...",
          file=sys.stderr, flush=True)
    # Build beside the target, then rename: concurrent first uses (data-loader
    # workers, parallel tests) never load a half-written file.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built)], check=True,
                       capture_output=True, text=True)
        os.replace(built, target)
    return target


def _build_with_fallback(compiler: str) -> Path:
    try:
        return _build(compiler, [*FLAGS, OPENMP])
    except subprocess.CalledProcessError:
        warnings.warn(f"involution: {compiler} cannot compile with OpenMP; the CPU kernel will "
                      "run on one thread", RuntimeWarning)
        return _build(compiler, FLAGS)


GEOMETRY_FIELDS = ("batch", "channels", "groups", "kernel", "height", "width", "out_h", "out_w",
                   "stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w")


class Geometry(ctypes.Structure):
    """The C++ ``Geometry``: the sizes of one call, field for field."""

    _fields_ = [(name, ctypes.c_int64) for name in GEOMETRY_FIELDS]

    @classmethod
    def of(cls, geo) -> Geometry:
        return cls(geo.batch, geo.channels, geo.groups, geo.kernel_size, geo.height, geo.width,
                   geo.out_height, geo.out_width, *geo.stride, *geo.padding, *geo.dilation)


class Strides(ctypes.Structure):
    """The C++ ``Strides``: every tensor's strides, in elements, by name."""

    _fields_ = [("input", ctypes.c_int64 * 4), ("kernel", ctypes.c_int64 * 6),
                ("output", ctypes.c_int64 * 4), ("grad_output", ctypes.c_int64 * 4),
                ("grad_input", ctypes.c_int64 * 4), ("grad_kernel", ctypes.c_int64 * 6)]

    @classmethod
    def of(cls, **tensors: torch.Tensor | None) -> Strides:
        """Strides of the named tensors; the others (and ``None``) stay zero."""
        strides = cls()
        for name, tensor in tensors.items():
            if tensor is not None:
                getattr(strides, name)[:] = tensor.stride()
        return strides


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    pointer = ctypes.c_void_p
    geometry, strides = ctypes.POINTER(Geometry), ctypes.POINTER(Strides)
    for suffix in SUPPORTED_DTYPES.values():
        getattr(lib, f"involution_forward_{suffix}").argtypes = [
            pointer, pointer, pointer, geometry, strides, ctypes.c_int]
        getattr(lib, f"involution_backward_{suffix}").argtypes = [
            pointer, pointer, pointer, pointer, pointer, geometry, strides, ctypes.c_int]
    return lib


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernel library, or ``None`` (with one warning) if it can't be built."""
    compiler = _compiler()
    if compiler is None:
        warnings.warn("involution: no C++ compiler found (set CXX to one); using the slower "
                      'pure-PyTorch "loop" implementation on the CPU', RuntimeWarning)
        return None
    try:
        return _declare(ctypes.CDLL(str(_build_with_fallback(compiler))))
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        warnings.warn(f"involution: compiling the CPU kernel with {compiler} failed, using the "
                      f'slower pure-PyTorch "loop" implementation instead:\n{detail}',
                      RuntimeWarning)
        return None


# torch.compile calls this at trace time and keeps the answer: tracing into a
# compiler build (file system calls, subprocesses) would break the graph.
@torch.compiler.assume_constant_result
def built() -> bool:
    """Whether the kernel library is built and loaded (building it if need be)."""
    return library() is not None


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _like_input(input: torch.Tensor, geo) -> torch.Tensor:
    """An empty output in the input's memory format (channels-last stays channels-last)."""
    channels_last = (input.is_contiguous(memory_format=torch.channels_last)
                     and not input.is_contiguous())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((geo.batch, geo.channels, geo.out_height, geo.out_width),
                       dtype=input.dtype, device=input.device, memory_format=memory_format)


# The kernel reads and writes every tensor through its strides: nothing is copied or reordered.
def _forward(input, kernel, geo, output) -> None:
    function = getattr(library(), f"involution_forward_{SUPPORTED_DTYPES[input.dtype]}")
    function(input.data_ptr(), kernel.data_ptr(), output.data_ptr(), Geometry.of(geo),
             Strides.of(input=input, kernel=kernel, output=output), torch.get_num_threads())


def _backward(grad_output, input, kernel, geo, grad_input, grad_kernel) -> None:
    # The C++ code writes every element of both gradients.
    function = getattr(library(), f"involution_backward_{SUPPORTED_DTYPES[input.dtype]}")
    function(input.data_ptr(), kernel.data_ptr(), grad_output.data_ptr(), _pointer(grad_input),
             _pointer(grad_kernel), Geometry.of(geo),
             Strides.of(input=input, kernel=kernel, grad_output=grad_output,
                        grad_input=grad_input, grad_kernel=grad_kernel),
             torch.get_num_threads())


cpu_forward = register(Backend("cpu", _forward, _backward, new_output=_like_input,
                               device_types=("cpu",)))


def check_supported(input: torch.Tensor) -> None:
    """Refuse, with the reason, what the C++ kernel cannot run."""
    if input.device.type != "cpu":
        raise ValueError(f'impl="cpu" needs CPU tensors, got {input.device}; use impl=None')
    if input.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f'impl="cpu" supports {list(SUPPORTED_DTYPES)}, got {input.dtype}; '
                         'use impl="loop" or impl=None')
    if not built():
        raise RuntimeError('impl="cpu" is unavailable because its kernel could not be compiled '
                           '(see the warning above); use impl="loop" or impl=None')
