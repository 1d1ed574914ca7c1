"""The involution operator: implementations agree, gradients are right, errors are clear."""

import json
from pathlib import Path

import pytest
import torch

from involution.layers import Involution2d
from involution.ops.functional import check_geometry, default_impl, involution2d

FAST_IMPLS = ["loop", "cpu"]  # "triton" is tested under Triton's interpreter in test_triton.py


def make_case(batch, channels, groups, height, width, k, stride=1, dilation=1,
              dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pad = dilation * (k - 1) // 2
    out_h = (height + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    x = torch.randn(batch, channels, height, width, generator=generator, dtype=dtype)
    kernel = torch.randn(batch, groups, k, k, out_h, out_w, generator=generator, dtype=dtype)
    return x, kernel


GEOMETRIES = [
    # batch, C, G, H, W, K, stride, dilation
    (2, 16, 1, 8, 8, 3, 1, 1),     # C/G = 16
    (2, 64, 1, 7, 9, 5, 1, 1),     # C/G = 64, non-square
    (1, 8, 8, 9, 13, 7, 1, 1),     # C/G = 1
    (2, 32, 2, 11, 6, 7, 2, 1),    # stride 2, non-square, odd size
    (2, 12, 3, 10, 10, 3, 2, 1),   # stride 2, C/G = 4
    (1, 16, 4, 12, 9, 3, 1, 2),    # dilation 2
    (2, 8, 2, 13, 13, 5, 2, 2),    # stride 2 and dilation 2
    (3, 4, 4, 5, 5, 1, 1, 1),      # K = 1
]


@pytest.mark.parametrize("impl", FAST_IMPLS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
def test_implementations_agree_with_unfold_reference(impl, geometry):
    batch, channels, groups, height, width, k, stride, dilation = geometry
    x, kernel = make_case(batch, channels, groups, height, width, k, stride, dilation)
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    expected = involution2d(x, kernel, stride, None, dilation, impl="unfold")
    actual = involution2d(x, kernel, stride, None, dilation, impl=impl)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)

    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, (x, kernel), grad_out)
    actual_grads = torch.autograd.grad(actual, (x, kernel), grad_out)
    for got, want in zip(actual_grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_float32_matches_reference(impl):
    x, kernel = make_case(2, 32, 2, 14, 14, 7, stride=2, dtype=torch.float32)
    expected = involution2d(x, kernel, 2, impl="unfold")
    torch.testing.assert_close(involution2d(x, kernel, 2, impl=impl), expected,
                               rtol=1e-4, atol=1e-4)


# Half an ulp: the most a single rounding of the result can move it.
HALF_ULP = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "channels-last"])
@pytest.mark.parametrize("stride", [1, 2])
def test_16_bit_floats_are_computed_in_float32(dtype, channels_last, stride):
    """The compiled kernel takes float16/bfloat16 tensors, sums in float32 and rounds
    once: output and both gradients are the float32 results on the same (rounded)
    inputs, within half an ulp of the 16-bit format. 32 channels per group: a sum
    over two 16-channel blocks, which must not be rounded between them either."""
    x, kernel = make_case(2, 64, 2, 11, 10, 7, stride=stride, dtype=torch.float32)
    grad_out = torch.randn(2, 64, *kernel.shape[-2:], generator=torch.Generator().manual_seed(1))
    x, kernel, grad_out = (t.to(dtype) for t in (x, kernel, grad_out))
    if channels_last:
        x, grad_out = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad_out))

    def run(a, b, g):
        a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
        out = involution2d(a, b, stride, impl="cpu")
        return (out, *torch.autograd.grad(out, (a, b), g))

    expected = run(x.float(), kernel.float(), grad_out.float())
    actual = run(x, kernel, grad_out)
    for got, want in zip(actual, expected):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want, rtol=HALF_ULP[dtype] + 1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["unfold", *FAST_IMPLS])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_gradcheck(impl, stride, dilation):
    x, kernel = make_case(1, 4, 2, 6, 5, 3, stride, dilation)
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: involution2d(a, b, stride, None, dilation, impl=impl), (x, kernel))


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_gradient_of_only_one_argument(impl):
    x, kernel = make_case(1, 4, 2, 6, 6, 3)
    kernel.requires_grad_(True)  # x needs no gradient: the backward must skip it
    out = involution2d(x, kernel, impl=impl)
    (grad_kernel,) = torch.autograd.grad(out.sum(), kernel)
    (expected,) = torch.autograd.grad(involution2d(x, kernel, impl="unfold").sum(), kernel)
    torch.testing.assert_close(grad_kernel, expected)


def test_unfold_reference_matches_hand_computed_example():
    # One image, two channels sharing one group, 3x3 input, 3x3 kernels, padding 1.
    image = torch.tensor([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]])
    x = torch.stack([image, 10 * image]).unsqueeze(0)            # (1, 2, 3, 3)
    kernel = torch.zeros(1, 1, 3, 3, 3, 3)                         # (B, G, K, K, H, W)
    kernel[0, 0, :, :, 1, 1] = 1.0   # centre pixel: sum of the whole image
    kernel[0, 0, :, :, 0, 0] = 1.0   # top-left: only the 2x2 inside the image counts
    kernel[0, 0, 2, 0, 0, 1] = 2.0   # pixel (0, 1), bottom-left tap -> input (1, 0)
    kernel[0, 0, 1, 1, 2, 2] = -1.0  # pixel (2, 2), centre tap -> input (2, 2)
    out = involution2d(x, kernel, impl="unfold")
    expected = torch.tensor([[12., 8., 0.], [0., 45., 0.], [0., 0., -9.]])
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[0, 1], 10 * expected)  # the kernel is shared by channels


def test_stride_two_picks_every_other_pixel():
    x = torch.arange(16.).view(1, 1, 4, 4)
    kernel = torch.full((1, 1, 1, 1, 2, 2), 2.0)
    out = involution2d(x, kernel, stride=2, impl="unfold")
    torch.testing.assert_close(out[0, 0], 2 * torch.tensor([[0., 2.], [8., 10.]]))


def test_channels_use_their_own_group_kernel():
    x = torch.ones(1, 4, 3, 3)
    kernel = torch.zeros(1, 2, 1, 1, 3, 3)
    kernel[:, 0] = 1.0
    kernel[:, 1] = 3.0
    for impl in ["unfold", *FAST_IMPLS]:
        out = involution2d(x, kernel, impl=impl)
        assert out[0, :2].eq(1).all() and out[0, 2:].eq(3).all(), impl


@pytest.mark.parametrize("make_args,message", [
    (lambda: (torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 3, 3, 4, 5)),
     "kernel spatial size 4x5 does not match the output size 5x5"),
    (lambda: (torch.zeros(1, 6, 5, 5), torch.zeros(1, 4, 3, 3, 5, 5)),
     "C=6 must be divisible by the kernel's group count G=4"),
    (lambda: (torch.zeros(1, 4, 5), torch.zeros(1, 1, 3, 3, 5, 5)),
     "input must be 4-D (B, C, H, W), got shape (1, 4, 5)"),
    (lambda: (torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 3, 5, 5)),
     "kernel must be 6-D"),
    (lambda: (torch.zeros(2, 4, 5, 5), torch.zeros(1, 1, 3, 3, 5, 5)),
     "kernel batch size 1 differs from input batch size 2"),
    (lambda: (torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 3, 5, 5, 5)),
     "kernel must be square"),
    (lambda: (torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 3, 3, 5, 5, dtype=torch.float64)),
     "kernel dtype torch.float64 differs from input dtype torch.float32"),
    (lambda: (torch.zeros(1, 4, 5, 5, dtype=torch.int64), torch.zeros(1, 1, 3, 3, 5, 5)),
     "input must be a floating-point tensor"),
])
def test_mismatches_raise_value_errors_naming_sizes(make_args, message):
    x, kernel = make_args()
    with pytest.raises(ValueError) as error:
        involution2d(x, kernel)
    assert message in str(error.value)


def test_stride_mismatch_names_stride():
    with pytest.raises(ValueError, match=r"stride \(2, 2\)"):
        involution2d(torch.zeros(1, 4, 8, 8), torch.zeros(1, 1, 3, 3, 8, 8), stride=2)


def test_unknown_impl_and_bad_stride():
    x, kernel = make_case(1, 4, 1, 5, 5, 3, dtype=torch.float32)
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        involution2d(x, kernel, impl="fast")
    with pytest.raises(ValueError, match="stride must be a positive int"):
        check_geometry(x, kernel, stride=0)


def test_default_impl_on_cpu_is_the_compiled_kernel():
    x = torch.zeros(1, 4, 5, 5)
    assert default_impl(x) == "cpu"
    assert default_impl(x.bfloat16()) == "cpu"  # 16-bit floats too, computed in float32
    assert default_impl(x.half()) == "cpu"
    assert default_impl(x.to(torch.int32)) == "loop"


# Without a C++ compiler the default falls back to "loop": tested in a bare environment in
# tests/test_packaging.py (test_bare_core_install_works_and_says_what_is_missing).


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_channels_last_and_strided_tensors_need_no_copies(impl):
    """Channels-last input, a kernel viewed from a channels-last conv output, an
    expanded output gradient (as .sum() produces): all read through strides."""
    batch, channels, groups, size, k, stride = 2, 32, 2, 9, 5, 2
    out = (size - 1) // stride + 1
    x = torch.randn(batch, channels, size, size, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    span = torch.randn(batch, groups * k * k, out, out, dtype=torch.float64)
    span = span.contiguous(memory_format=torch.channels_last).requires_grad_()
    kernel = span.view(batch, groups, k, k, out, out)
    assert not kernel.is_contiguous()
    result = involution2d(x, kernel, stride, impl=impl)
    expected = involution2d(x, kernel, stride, impl="unfold")
    torch.testing.assert_close(result, expected)
    if impl == "cpu":
        assert result.is_contiguous(memory_format=torch.channels_last)
    for got, want in zip(torch.autograd.grad(result.sum(), (x, span)),
                         torch.autograd.grad(expected.sum(), (x, span))):
        torch.testing.assert_close(got, want)


def test_compiled_kernel_gives_the_same_bits_on_one_thread_and_on_several():
    """Each thread owns whole (image, group) slices, so the split never changes a sum.

    The suite's workers run on one thread each (conftest.py): this test is
    where the kernel's threads are exercised and checked.
    """
    x, kernel = make_case(3, 32, 2, 11, 10, 7, stride=2, dtype=torch.float32)
    x.requires_grad_()
    kernel.requires_grad_()
    grad = torch.randn(3, 32, 6, 5)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            output = involution2d(x, kernel, 2, impl="cpu")
            results.append((output, *torch.autograd.grad(output, (x, kernel), grad)))
    finally:
        torch.set_num_threads(before)
    for one, several in zip(*results):
        assert torch.equal(one, several)


def _notebook_01_layer():
    """The from-scratch ``MyInvolution`` that notebook 01 teaches, taken from the notebook itself."""
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "01_involution_kernel.ipynb"
    notebook = json.loads(notebook.read_text())
    (source,) = ["".join(cell["source"]) for cell in notebook["cells"]
                 if cell["cell_type"] == "code" and "class MyInvolution(" in "".join(cell["source"])]
    namespace = {"F": torch.nn.functional}
    exec(source, namespace)
    return namespace["MyInvolution"]


@pytest.mark.parametrize("channels,kernel_size,stride,size", [(128, 7, 2, 28), (64, 3, 1, 9), (32, 5, 2, 11)])
def test_notebook_01s_own_layer_computes_what_involution2d_does(channels, kernel_size, stride, size):
    torch.manual_seed(0)
    package = Involution2d(channels, kernel_size=kernel_size, stride=stride).double()
    mine = _notebook_01_layer()(channels, kernel_size, stride).double()
    mine.load_state_dict(package.kernel_generator.state_dict())  # the same weights, by name
    x = torch.randn(2, channels, size, size, dtype=torch.float64, requires_grad=True)
    for mode in ("train", "eval"):  # batch statistics, then the running ones
        package.train(mode == "train"), mine.train(mode == "train")
        ours, theirs = mine(x), package(x)
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(torch.autograd.grad(ours.sum(), x), torch.autograd.grad(theirs.sum(), x))


@pytest.mark.parametrize("impl", ["cpu", "loop"])
def test_double_backward_works_with_unfold_and_elsewhere_says_to_use_it(impl):
    # It failed at once with torch's bare "no autograd formula", documented nowhere.
    def gradient_penalty(use):
        torch.manual_seed(0)
        x = torch.randn(1, 16, 5, 5, dtype=torch.float64, requires_grad=True)
        kernel = torch.randn(1, 1, 3, 3, 5, 5, dtype=torch.float64, requires_grad=True)
        (grad_x,) = torch.autograd.grad(involution2d(x, kernel, impl=use).square().sum(), x, create_graph=True)
        grad_x.square().sum().backward()
        return kernel.grad
    assert gradient_penalty("unfold").abs().sum() > 0
    with pytest.raises(NotImplementedError, match=f"{impl!r} implementation has no double backward.*impl='unfold'"):
        gradient_penalty(impl)


def test_the_first_compile_says_so_in_one_line_and_a_cached_build_says_nothing(tmp_path, monkeypatch, capsys):
    # The first forward compiled the C++ kernel for about 6 s with no word.
    import subprocess

    from involution.ops import cpu
    monkeypatch.setenv("INVOLUTION_CACHE", str(tmp_path))

    def fake_compiler(command, **kwargs):
        Path(command[command.index("-o") + 1]).write_bytes(b"built")
    monkeypatch.setattr(subprocess, "run", fake_compiler)
    cpu._build("c++", ["-O2"])
    err = capsys.readouterr().err
    assert err.startswith("involution: compiling the CPU kernel for this machine") and err.count("\n") == 1
    cpu._build("c++", ["-O2"])
    assert capsys.readouterr().err == ""
