"""Recomputation in backward (the ``recompute`` option): the same gradients, the same
running statistics and the same parameter names as without it, and only in training."""
import copy

import pytest
import torch

from involution import Involution2d
from involution.models import create_model


def _train_step(module, x):
    """One forward and backward; returns the output, the gradients and the buffers."""
    x = x.clone().requires_grad_()
    out = module(x)
    out.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    return out.detach(), x.grad, grads, buffers


def _assert_same_step(plain, recomputed, x):
    out, grad_x, grads, buffers = _train_step(plain, x)
    out_r, grad_x_r, grads_r, buffers_r = _train_step(recomputed, x)
    assert torch.equal(out, out_r)
    assert torch.equal(grad_x, grad_x_r)
    assert grads.keys() == grads_r.keys() and buffers.keys() == buffers_r.keys()
    for name in grads:
        assert torch.equal(grads[name], grads_r[name]), name
    for name in buffers:  # running statistics updated once, not twice
        assert torch.equal(buffers[name], buffers_r[name]), name


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layer_gradients_are_exactly_those_without_recompute(stride, memory_format):
    torch.manual_seed(0)
    plain = Involution2d(32, kernel_size=7, stride=stride).train()
    recomputed = copy.deepcopy(plain)
    recomputed.recompute = True
    x = torch.randn(2, 32, 13, 13).contiguous(memory_format=memory_format)
    _assert_same_step(plain, recomputed, x)


def test_model_gradients_and_running_stats_are_exactly_those_without_recompute():
    torch.manual_seed(0)
    plain = create_model("test_rednet", num_classes=10).train()
    recomputed = copy.deepcopy(plain)
    recomputed.set_recompute(True)
    assert recomputed.recompute and all(b.conv2.recompute for b in recomputed.bottlenecks())
    _assert_same_step(plain, recomputed, torch.randn(2, 3, 64, 64))


def test_option_keeps_the_parameter_names_and_is_off_in_evaluation():
    plain = create_model("rednet26", recompute=False)
    recomputed = create_model("rednet26", recompute=True)
    assert list(plain.state_dict()) == list(recomputed.state_dict())
    recomputed.eval()
    x = torch.randn(1, 3, 64, 64)
    recomputed.load_state_dict(plain.state_dict())
    plain.eval()
    torch.testing.assert_close(recomputed(x), plain(x), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:A saved_tensors_hooks context")
def test_recompute_keeps_less_for_backward():
    """What autograd keeps after the forward: the kernels and the stem's maps are gone."""
    def kept_bytes(model):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randn(2, 3, 64, 64))
        return sum(storages.values())

    torch.manual_seed(0)
    plain = create_model("test_rednet", num_classes=10, recompute=False).train()
    recomputed = create_model("test_rednet", num_classes=10, recompute=True).train()
    assert kept_bytes(recomputed) < 0.8 * kept_bytes(plain)


def test_compile_and_export_trace_the_plain_forward():
    """Under torch.compile (fullgraph) and torch.export the option steps aside: one graph,
    eager's gradients, and the exported graph holds the involution op as usual."""
    torch.manual_seed(0)
    block = create_model("rednet26", num_classes=10, recompute=True).layer2[0].train()
    assert block.conv2.recompute
    x = torch.randn(2, 256, 8, 8, generator=torch.Generator().manual_seed(2))
    # aot_eager: TorchDynamo and AOTAutograd, where the option decides; Inductor's code
    # generation is test_ops_ecosystem's (its first compile costs ~20 s on a fresh machine).
    out = torch.compile(block, fullgraph=True, backend="aot_eager")(x)
    out.square().sum().backward()
    compiled_grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    block(x).square().sum().backward()  # eager, recomputing
    for got, parameter in zip(compiled_grads, block.parameters()):
        torch.testing.assert_close(got, parameter.grad, rtol=1e-3, atol=1e-3)
    exported = torch.export.export(block.eval(), (x,))
    assert any("involution" in str(n.target) for n in exported.graph.nodes)
