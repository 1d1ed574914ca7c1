"""The operator as a real PyTorch op: opcheck, compile, export, ONNX, FX, trace, FLOPs.

Kept fast on two CPU cores: small images (32 px), batch 1-2, and where a
whole RedNet-26 is too slow to compile or convert in a test (torch.compile,
ONNX) one RedNet bottleneck stands in for it; the layers are the same.
"""
import warnings

import numpy as np
import pytest
import torch
from torch.library import opcheck
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.feature_extraction import create_feature_extractor

from involution.analysis.complexity import count_complexity
from involution.layers import Involution2d
from involution.models import create_model
from involution.ops.functional import involution2d


def make_case(dtype=torch.float64, stride=2, requires_grad=True):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 7, 6, generator=generator, dtype=dtype)
    out_h, out_w = (7 - 1) // stride + 1, (6 - 1) // stride + 1
    kernel = torch.randn(2, 2, 3, 3, out_h, out_w, generator=generator, dtype=dtype)
    return x.requires_grad_(requires_grad), kernel.requires_grad_(requires_grad)


@pytest.fixture(scope="module")
def rednet26():
    torch.manual_seed(0)
    return create_model("rednet26", num_classes=10).eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("impl", ["loop", "cpu"])
@pytest.mark.parametrize("stride", [1, 2])
def test_custom_ops_pass_opcheck(impl, stride):
    """Schema, fake (meta) implementation, autograd registration, compile/export tracing."""
    operator = getattr(torch.ops.involution, f"{impl}_forward")
    x, kernel = make_case(stride=stride)
    opcheck(operator, (x, kernel, [stride, stride], [1, 1], [1, 1]))
    channels_last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    opcheck(operator, (channels_last, kernel, [stride, stride], [1, 1], [1, 1]))
    backward = getattr(torch.ops.involution, f"{impl}_backward")
    grad_output = torch.randn(2, 8, *kernel.shape[-2:], dtype=x.dtype)
    for wanted in [(True, True), (True, False), (False, True)]:
        opcheck(backward, (grad_output, x.detach(), kernel.detach(), [stride, stride], [1, 1],
                           [1, 1], *wanted))


def test_default_implementation_is_one_custom_op_node():
    x, kernel = make_case(dtype=torch.float32, requires_grad=False)
    exported = torch.export.export(_Operator(), (x, kernel))
    targets = [str(node.target) for node in exported.graph.nodes if node.op == "call_function"]
    assert targets == ["involution.cpu_forward.default"]


class _Operator(torch.nn.Module):
    def forward(self, x, kernel):
        return involution2d(x, kernel, stride=2)


def _bottleneck():
    torch.manual_seed(0)
    return create_model("rednet26", num_classes=10).layer2[0]  # stride 2, with downsample


def test_compile_fullgraph_forward_and_backward():
    """A RedNet bottleneck compiles as one graph (no break at the involution) through
    TorchDynamo and AOTAutograd, and gives eager's outputs and gradients. Inductor's
    code generation is the next test's; a whole RedNet-26 is measured in the report,
    not here (minutes to compile on two cores)."""
    block = _bottleneck().train()
    x = torch.randn(2, 256, 8, 8, generator=torch.Generator().manual_seed(2))
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.square().sum().backward()
    compiled_grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    expected = block(x)
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    for got, parameter in zip(compiled_grads, block.parameters()):
        torch.testing.assert_close(got, parameter.grad, rtol=1e-3, atol=1e-3)


def test_inductor_generates_code_around_the_operator_from_its_layouts():
    """Inductor writes the code before and after the op from its fake implementation's
    shapes and strides (channels-last in, channels-last out for the compiled kernel):
    the output and both gradients must still be eager's. One small function, since
    Inductor's first compile on a machine costs about 20 s however little it compiles."""
    def around(x, kernel):
        return involution2d(x.relu(), kernel.sigmoid(), stride=2).sin()

    x, kernel = make_case(dtype=torch.float32)
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    results = []
    for function in (torch.compile(around, fullgraph=True), around):
        out = function(x, kernel)
        results.append([out, *torch.autograd.grad(out.square().sum(), (x, kernel))])
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_export_rednet26(rednet26, image):
    exported = torch.export.export(rednet26, (image,))
    involutions = [n for n in exported.graph.nodes if "involution" in str(n.target)]
    assert len(involutions) == 9  # the stem's and one per bottleneck (2 per stage x 4)
    torch.testing.assert_close(exported.module()(image), rednet26(image))


def test_jit_trace_rednet26(rednet26, image):
    with warnings.catch_warnings():
        # The argument checks compare traced sizes: fine for the traced input size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates jit.trace itself
        traced = torch.jit.trace(rednet26, (image,), check_trace=False)
    assert "involution::cpu_forward" in str(traced.inlined_graph)
    torch.testing.assert_close(traced(image), rednet26(image))


@pytest.mark.parametrize("impl", ["unfold", "loop", "cpu"])
def test_jit_trace_every_implementation_of_a_layer(impl):
    layer = Involution2d(32, kernel_size=7, stride=2, impl=impl).eval()
    x = torch.randn(1, 32, 9, 9, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(layer, (x,), check_trace=False)
    torch.testing.assert_close(traced(x), layer(x))


def test_fx_feature_extraction_needs_no_flags(rednet26, image):
    extractor = create_feature_extractor(rednet26, {"layer1": "c2", "layer4": "c5"})
    features = extractor(image)
    assert features["c2"].shape == (1, 256, 8, 8) and features["c5"].shape == (1, 2048, 1, 1)
    torch.testing.assert_close(features["c5"], rednet26.forward_features(image))
    calls = [n for n in extractor.graph.nodes if n.target is involution2d]
    assert len(calls) == 9  # one node per involution, not its argument checks


def _onnxruntime_output(module, x, path):
    """Export ``module`` to ONNX, check it holds standard operators only, run it."""
    import onnx
    import onnxruntime

    torch.onnx.export(module, (x,), dynamo=True).save(str(path))
    domains = {node.domain for node in onnx.load(str(path)).graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard operators: {domains}"
    session = onnxruntime.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    """A RedNet bottleneck (its 3x3 conv replaced by a 7x7 involution) exports
    as standard ONNX operators and onnxruntime computes what PyTorch does.
    (A whole RedNet-26 exports too, in minutes on two cores: see the report.)"""
    block = _bottleneck().eval()
    x = torch.randn(1, 256, 8, 8, generator=torch.Generator().manual_seed(3))
    got = _onnxruntime_output(block, x, tmp_path / "bottleneck.onnx")
    np.testing.assert_allclose(got, block(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_onnx_export_of_the_unfold_reference(tmp_path):
    layer = Involution2d(32, kernel_size=7, stride=2, impl="unfold").eval()
    x = torch.randn(1, 32, 9, 9, generator=torch.Generator().manual_seed(5))
    got = _onnxruntime_output(layer, x, tmp_path / "layer.onnx")
    np.testing.assert_allclose(got, layer(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_flop_counter_counts_the_involution():
    layer = Involution2d(32, kernel_size=7, stride=2)
    x = torch.randn(2, 32, 16, 16, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    flops = counter.get_flop_counts()["Global"]
    involution_macs = out.numel() * 7 * 7
    assert flops[torch.ops.involution.cpu_forward] == 2 * involution_macs
    # The whole layer (kernel generator convs + involution) agrees with the
    # package's own count, at two FLOPs per multiply-add.
    assert counter.get_total_flops() == 2 * 2 * count_complexity(layer, (32, 16, 16)).macs
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_flop_counts()["Global"][torch.ops.involution.cpu_backward] \
        == 2 * 2 * involution_macs  # both gradients
