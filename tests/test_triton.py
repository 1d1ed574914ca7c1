"""The Triton kernels agree with the unfold reference, on the CPU via Triton's interpreter.

CI has no GPU, so the kernels run under ``TRITON_INTERPRET=1``, which executes
them in Python on CPU tensors. Triton reads that variable when the kernels are
defined (at import), so the checks run in one fresh interpreter process started
with it set (starting one costs seconds, more than most checks); the pytest
process itself stays in normal mode. The interpreter is slow: the shapes are
small, but chosen so that every kernel runs more than one pixel block, a partly
masked channel block and a split channel axis.
"""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from involution.ops.functional import involution2d

# Runs in the interpreter process: argv[1] is JSON {dtype name: [case, ...]}. The
# reference is impl="unfold" in float64 on the same (rounded) inputs, so the
# tolerance measures the Triton kernels' own error. Prints "ok" or "FAIL" per case.
CHECK_CASES = r"""
import json, sys, torch
from involution.ops import triton_kernels
from involution.ops.functional import involution2d

assert triton_kernels.INTERPRETED and triton_kernels.available(), "TRITON_INTERPRET=1 did not reach Triton"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4, "float16": 2e-3, "bfloat16": 1.6e-2}
for dtype_name, case in [(d, c) for d, cases in json.loads(sys.argv[1]).items() for c in cases]:
    dtype, tolerance = getattr(torch, dtype_name), TOLERANCE[dtype_name]
    g = torch.Generator().manual_seed(0)
    batch, channels, groups, height, width, k = (case[n] for n in "B C G H W K".split())
    stride, dilation = case.get("stride", 1), case.get("dilation", 1)
    (s_h, s_w), (d_h, d_w) = [v if isinstance(v, list) else [v, v] for v in (stride, dilation)]
    p_h, p_w = case.get("padding", [d_h * (k - 1) // 2, d_w * (k - 1) // 2])
    out_h = (height + 2 * p_h - d_h * (k - 1) - 1) // s_h + 1
    out_w = (width + 2 * p_w - d_w * (k - 1) - 1) // s_w + 1
    x = torch.randn(batch, channels, height, width, generator=g).to(dtype)
    kernel = torch.randn(batch, groups, k, k, out_h, out_w, generator=g).to(dtype)
    grad_out = torch.randn(batch, channels, out_h, out_w, generator=g).to(dtype)
    if case.get("channels_last"):  # the operator must make its inputs contiguous
        x = x.contiguous(memory_format=torch.channels_last)
    wanted = case.get("grads", ["input", "kernel"])
    args = dict(stride=tuple(stride) if isinstance(stride, list) else stride,
                padding=(p_h, p_w), dilation=tuple(dilation) if isinstance(dilation, list)
                else dilation)
    results = {}
    for impl, t in (("triton", dtype), ("unfold", torch.float64)):
        xi = x.detach().to(t).requires_grad_("input" in wanted)
        ki = kernel.detach().to(t).requires_grad_("kernel" in wanted)
        out = involution2d(xi, ki, impl=impl, **args)
        leaves = [v for n, v in (("input", xi), ("kernel", ki)) if n in wanted]
        grads = torch.autograd.grad(out, leaves, grad_out.to(t)) if leaves else ()
        results[impl] = [out.detach(), *grads]
    names = ["output", *[f"grad {n}" for n in wanted]]
    try:
        for name, got, want in zip(names, results["triton"], results["unfold"]):
            assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}"
            torch.testing.assert_close(got.double(), want, rtol=tolerance, atol=tolerance,
                                       msg=lambda m: f"{name}: {m}")
        print("ok  ", dtype_name, case, flush=True)
    except AssertionError as error:
        print("FAIL", dtype_name, case, "\n", error, flush=True)
"""

CASES = {
    "float32": [
        {"B": 2, "C": 6, "G": 6, "H": 9, "W": 13, "K": 3},                   # C/G = 1
        {"B": 2, "C": 32, "G": 2, "H": 9, "W": 13, "K": 5, "stride": 2},    # C/G = 16
        {"B": 2, "C": 64, "G": 1, "H": 9, "W": 13, "K": 3, "dilation": 2},  # C/G = 64: split
        {"B": 2, "C": 48, "G": 1, "H": 9, "W": 13, "K": 3, "stride": 2,     # 48 = 32 + 16:
         "dilation": 2, "channels_last": True},                             # masked 2nd block
        {"B": 2, "C": 24, "G": 2, "H": 9, "W": 13, "K": 3,                  # per-axis pairs,
         "stride": [2, 1], "dilation": [1, 2], "padding": [0, 3]},          # C/G = 12
        {"B": 2, "C": 8, "G": 2, "H": 5, "W": 7, "K": 1},                   # K = 1
        {"B": 2, "C": 8, "G": 2, "H": 6, "W": 5, "K": 3, "grads": ["input"]},
        {"B": 2, "C": 8, "G": 2, "H": 6, "W": 5, "K": 3, "grads": ["kernel"]},
        {"B": 0, "C": 8, "G": 2, "H": 6, "W": 5, "K": 3},                   # empty batch
    ],
    "float64": [{"B": 2, "C": 24, "G": 1, "H": 13, "W": 9, "K": 7, "stride": 2, "dilation": 2}],
    # Half precision: loads in 16 bits, sums in float32, one rounding at the store.
    "float16": [{"B": 2, "C": 32, "G": 2, "H": 9, "W": 13, "K": 3, "stride": 2}],
    "bfloat16": [{"B": 2, "C": 32, "G": 2, "H": 9, "W": 13, "K": 3}],
}


def run_python(script: str, *args: str, **env_changes: str):
    return subprocess.run([sys.executable, "-c", script, *args], env=dict(os.environ, **env_changes),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def interpreted():
    """What one interpreter process printed for CHECK_CASES and then CHECK_SELF_CHECK_AND_OPS."""
    result = run_python(CHECK_CASES + CHECK_SELF_CHECK_AND_OPS, json.dumps(CASES),
                        TRITON_INTERPRET="1")
    return f"{result.stdout}\n{result.stderr}"


def test_interpreted_kernels_match_unfold_reference(interpreted):
    cases = [line for line in interpreted.splitlines() if line.startswith(("ok  ", "FAIL"))]
    assert len(cases) == sum(map(len, CASES.values())), interpreted  # every case ran
    assert all(line.startswith("ok") for line in cases), interpreted


def test_plain_cpu_session_is_unavailable_and_says_why(monkeypatch):
    from involution.ops import triton_kernels
    # A plain CPU session, whatever the environment of this test run: no
    # TRITON_INTERPRET (re-read here as the module does at import), no GPU.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(triton_kernels, "INTERPRETED", triton_kernels._interpreter_requested())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert triton_kernels.INTERPRETED is False
    assert triton_kernels.available() is False
    x, kernel = torch.zeros(1, 4, 5, 5), torch.zeros(1, 2, 3, 3, 5, 5)
    with pytest.raises(ValueError, match="needs CUDA tensors, got cpu.*TRITON_INTERPRET=1"):
        involution2d(x, kernel, impl="triton")


# Without the triton package: tested in a bare environment in tests/test_packaging.py
# (test_bare_core_install_works_and_says_what_is_missing).


CUDA_GEOMETRIES = [
    # batch, C, G, H, W, K, stride, dilation
    (4, 64, 4, 56, 56, 7, 1, 1),    # RedNet stage 1
    (2, 256, 16, 28, 30, 7, 2, 1),  # stride 2, non-square
    (2, 96, 1, 14, 14, 3, 1, 2),    # C/G = 96: three channel blocks
    (2, 24, 24, 7, 7, 5, 1, 1),     # C/G = 1, tiny map
]


# Needs a CUDA GPU; deselected by default (pyproject addopts), run with `pytest -m gpu`.
@pytest.mark.gpu
def test_cuda_kernels_match_unfold_reference():
    for dtype, tolerance in [(torch.float32, 1e-4), (torch.float64, 1e-10),
                             (torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)]:
        for batch, channels, groups, height, width, k, stride, dilation in CUDA_GEOMETRIES:
            g = torch.Generator().manual_seed(0)
            pad = dilation * (k - 1) // 2
            out_h = (height + 2 * pad - dilation * (k - 1) - 1) // stride + 1
            out_w = (width + 2 * pad - dilation * (k - 1) - 1) // stride + 1
            x = torch.randn(batch, channels, height, width, generator=g)
            kernel = torch.randn(batch, groups, k, k, out_h, out_w, generator=g)
            grad_out = torch.randn(batch, channels, out_h, out_w, generator=g)
            results = []
            for impl, t in (("triton", dtype), ("unfold", torch.float64)):
                xi, ki = (v.cuda().to(dtype).to(t).requires_grad_() for v in (x, kernel))
                out = involution2d(xi, ki, stride, None, dilation, impl=impl)
                grads = torch.autograd.grad(out, (xi, ki), grad_out.cuda().to(dtype).to(t))
                results.append([out, *grads])
            where = f"{dtype}, geometry {(batch, channels, groups, height, width, k)}"
            for name, got, want in zip(["output", "grad input", "grad kernel"], *results):
                assert got.dtype == dtype, f"{where}: {name} has dtype {got.dtype}"
                torch.testing.assert_close(got.double(), want, rtol=tolerance, atol=tolerance,
                                           msg=lambda m: f"{where}: {name}: {m}")


# --- First-use self-check on a GPU, simulated on the CPU --------------------

class SimulatedCompileError(RuntimeError):
    """Stands in for what an old GPU or a missing compiler raises."""


@pytest.fixture
def simulated_gpu(monkeypatch):
    """The self-check of "cuda:0", with the CPU running the problem and the
    Triton operator replaced by the test: no GPU, no Triton compiler needed."""
    from involution.ops import triton_kernels
    monkeypatch.setattr(triton_kernels, "available", lambda: True)
    monkeypatch.setattr(triton_kernels, "_self_check_results", {})
    make_problem = triton_kernels._self_check_problem
    monkeypatch.setattr(triton_kernels, "_self_check_problem",
                        lambda device, dtype: make_problem("cpu", dtype))
    calls = []

    def use_as_triton(operator):
        def counted(*args):
            calls.append(args)
            return operator(*args)
        monkeypatch.setattr(triton_kernels, "triton_forward", counted)
    return use_as_triton, calls


def _choose_for_gpu():
    from involution.ops.functional import _default_impl_for
    return _default_impl_for(torch.device("cuda:0"), torch.float32)


def _assert_results_come_from_loop(impl):
    from involution.ops.loop import loop_forward_op
    x, kernel = torch.randn(1, 8, 6, 6), torch.randn(1, 2, 3, 3, 6, 6)
    assert impl == "loop"
    torch.testing.assert_close(involution2d(x, kernel, impl=impl),
                               loop_forward_op(x, kernel, (1, 1), (1, 1), (1, 1)), rtol=0, atol=0)


def test_failing_triton_compile_falls_back_to_loop_with_one_warning(simulated_gpu):
    use_as_triton, calls = simulated_gpu

    def failing_compile(*args):
        raise SimulatedCompileError("ptxas fatal: Value 'sm_75' is not defined")
    use_as_triton(failing_compile)
    with pytest.warns(RuntimeWarning) as caught:
        impl = _choose_for_gpu()
    assert [str(w.message) for w in caught] == [(
        "involution: the Triton kernels failed their self-check on cuda:0 in torch.float32: "
        "running them raised SimulatedCompileError: ptxas fatal: Value 'sm_75' is not defined. "
        'Using the slower "loop" implementation there instead; pass impl="triton" to force '
        "them.")]
    _assert_results_come_from_loop(impl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checked once: no second warning, no second run
        assert _choose_for_gpu() == "loop"
    assert len(calls) == 1


def test_wrong_triton_result_falls_back_to_loop_with_one_warning(simulated_gpu):
    from involution.ops.loop import loop_forward_op
    use_as_triton, _ = simulated_gpu
    use_as_triton(lambda *args: loop_forward_op(*args) * 1.01)  # 1% off: a wrong kernel
    with pytest.warns(RuntimeWarning, match=r"self-check on cuda:0 in torch\.float32: their "
                      r"output differs from the loop implementation's by up to [0-9.]+ "
                      r"\(tolerance 0\.0001\)\. Using the slower \"loop\" implementation"):
        impl = _choose_for_gpu()
    _assert_results_come_from_loop(impl)


def test_correct_triton_result_keeps_triton(simulated_gpu):
    from involution.ops.loop import loop_forward_op
    use_as_triton, _ = simulated_gpu
    use_as_triton(loop_forward_op)
    # First use inside no_grad and inside a compile-like trace (fake tensors):
    # the check still runs on real tensors with autograd.
    with warnings.catch_warnings(), torch.no_grad(), FakeTensorMode():
        warnings.simplefilter("error")
        assert _choose_for_gpu() == "triton"


@pytest.mark.parametrize("bf16_hardware,expected", [(True, torch.bfloat16),
                                                     (False, torch.float16)])
def test_mixed_precision_uses_float16_where_bfloat16_is_missing(monkeypatch, bf16_hardware,
                                                                expected):
    from involution.ops.functional import mixed_precision, mixed_precision_dtype
    # A T4: bfloat16 only emulated, which "supported" counts unless told not to.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: bf16_hardware or including_emulation)
    assert mixed_precision_dtype("cuda") == expected
    assert mixed_precision("cuda") == {torch.bfloat16: "bf16-mixed",
                                       torch.float16: "16-mixed"}[expected]
    assert mixed_precision_dtype("cpu") == torch.bfloat16


# Runs after CHECK_CASES, in the same process.
CHECK_SELF_CHECK_AND_OPS = r"""
from torch.library import opcheck
from involution.ops.loop import loop_forward_op

# The self-check itself passes on the interpreter, for every dtype it may meet.
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    assert triton_kernels.self_check_failure(torch.device("cpu"), dtype) is None, dtype
# float16, the mixed-precision dtype of GPUs without bfloat16, against loop in float16:
# both sum in float32 and round once, so they agree to float16's rounding.
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 32, 10, 9, generator=g).half()
kernel = torch.randn(2, 2, 3, 3, 10, 9, generator=g).half()
grad = torch.randn(2, 32, 10, 9, generator=g).half()
results = []
for operator in (triton_kernels.triton_forward, loop_forward_op):
    xi, ki = x.clone().requires_grad_(), kernel.clone().requires_grad_()
    out = operator(xi, ki, (1, 1), (1, 1), (1, 1))
    results.append([out, *torch.autograd.grad(out, (xi, ki), grad)])
for got, want in zip(*results):
    assert got.dtype == torch.float16
    torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)
# The registered op: schema, fake implementation, autograd, tracing.
x, kernel = torch.randn(1, 4, 5, 5).requires_grad_(), torch.randn(1, 2, 3, 3, 3, 3)
opcheck(torch.ops.involution.triton_forward, (x, kernel.requires_grad_(), [2, 2], [1, 1], [1, 1]))
print("self-check and op checks passed")
"""


def test_interpreted_float16_self_check_and_opcheck(interpreted):
    assert "self-check and op checks passed" in interpreted, interpreted
