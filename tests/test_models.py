"""RedNet/ResNet/DedNet: exact official sizes, official checkpoints, options, torch.hub."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from involution import Involution2d, KernelGenerator
from involution.models import (
    STAGE_BLOCKS,
    RedNet,
    ResNet,
    convert_official_state_dict,
    create_model,
    list_models,
    load_official_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_SHAPES = REPO / "tests" / "data" / "official_rednet_state_dict.json"
OFFICIAL_REDNETS = json.loads(OFFICIAL_SHAPES.read_text())["models"]


def official_shapes(name):
    return OFFICIAL_REDNETS[name]


def synthetic_official_checkpoint(name, seed=0):
    """Random tensors with every name and shape of the official mmcls checkpoint."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(name).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(0, 10_000, shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator)
    return {"meta": {"note": "synthetic"}, "state_dict": state}


@pytest.mark.parametrize("name", sorted(OFFICIAL_REDNETS))
def test_every_official_tensor_lands_in_its_place(name):
    checkpoint = synthetic_official_checkpoint(name, seed=len(name))
    model = load_official_checkpoint(create_model(name), checkpoint)
    ours = model.state_dict()
    converted = convert_official_state_dict(checkpoint["state_dict"])
    assert set(converted) == set(ours), "the official names must map one-to-one onto ours"
    for official_key, our_key in zip(checkpoint["state_dict"], converted):
        assert torch.equal(ours[our_key], checkpoint["state_dict"][official_key]), official_key


def test_key_mapping_examples():
    converted = convert_official_state_dict({
        "backbone.stem.0.conv.weight": 0, "backbone.stem.1.conv2.conv.bias": 1,
        "backbone.layer3.2.conv2.conv1.bn.running_var": 2, "backbone.layer1.0.conv1.weight": 3,
        "backbone.layer2.0.downsample.1.bias": 4, "head.fc.weight": 5,
    })
    assert list(converted) == [
        "stem.0.0.weight", "stem.1.kernel_generator.span.bias",
        "layer3.2.conv2.kernel_generator.reduce.1.running_var", "layer1.0.conv1.weight",
        "layer2.0.downsample.1.bias", "fc.weight",
    ]


def test_caltech_head_is_reinitialised_with_a_warning(tmp_path):
    checkpoint = synthetic_official_checkpoint("rednet26")
    path = tmp_path / "rednet26.pth"
    torch.save(checkpoint, path)
    torch.manual_seed(0)
    fresh_fc = create_model("rednet26", num_classes=257).fc.weight.clone()
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="1000-class head, the model 257 classes"):
        model = create_model("rednet26", num_classes=257, pretrained=path)
    assert torch.equal(model.fc.weight, fresh_fc)
    assert torch.equal(model.stem[0][0].weight,
                       checkpoint["state_dict"]["backbone.stem.0.conv.weight"])


def test_checkpoint_of_another_depth_is_refused():
    with pytest.raises(ValueError, match="unexpected"):
        load_official_checkpoint(create_model("rednet26"), synthetic_official_checkpoint("rednet38"))


def test_missing_checkpoint_file_says_where_weights_are(tmp_path):
    with pytest.raises(FileNotFoundError, match="github.com/d-li14/involution"):
        create_model("rednet50", pretrained=tmp_path / "nope.pth")


def test_pretrained_only_for_models_with_official_weights(tmp_path):
    with pytest.raises(ValueError, match="resnet26 has no official weights"):
        create_model("resnet26", pretrained=tmp_path / "x.pth")


def test_torchvision_resnet_weights_load_as_they_are():
    # What pretrained=True downloads for resnet50: torchvision's file, in our names already.
    from torchvision.models import resnet50
    torch.manual_seed(0)
    theirs = resnet50().state_dict()
    ours = load_official_checkpoint(create_model("resnet50"), theirs).state_dict()
    assert all(torch.equal(ours[key], value) for key, value in theirs.items())


def test_registry():
    assert list_models() == sorted(
        [f"{family}{depth}" for family in ("rednet", "resnet") for depth in (26, 38, 50, 101, 152)]
        + ["dednet121", "densenet121", "test_rednet", "test_resnet"])
    with pytest.raises(ValueError, match="unknown model 'rednet27'"):
        create_model("rednet27")
    # A typo gets the names it is close to first.
    with pytest.raises(ValueError, match="unknown model 'rednet_26'; did you mean 'rednet26'"):
        create_model("rednet_26")


def test_rednet_structure_matches_the_official_description():
    model = create_model("rednet50")
    involutions = [m for m in model.modules() if isinstance(m, Involution2d)]
    assert len(involutions) == 1 + sum(STAGE_BLOCKS[50])  # stem + one per bottleneck
    stem = model.stem[1]
    assert (stem.channels, stem.kernel_size, stem.stride, stem.groups) == (32, 3, 1, 2)
    first_strided = model.layer2[0].conv2
    assert (first_strided.channels, first_strided.kernel_size, first_strided.stride,
            first_strided.groups) == (128, 7, 2, 8)
    assert isinstance(first_strided.kernel_generator.pool, nn.AvgPool2d)
    assert all(block.bn3.weight.eq(0).all() for block in model.bottlenecks())
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (7, 7) for m in model.modules())


def test_ablation_options():
    model = create_model("rednet26", kernel_size=3, group_channels=8, reduction_ratio=2,
                         drop_rate=0.2, zero_init_residual=False)
    block = model.layer1[0].conv2
    assert (block.kernel_size, block.groups) == (3, 64 // 8)
    assert block.kernel_generator.reduce[0].out_channels == 32
    assert model.dropout.p == 0.2
    assert model.layer1[0].bn3.weight.eq(1).all()
    with pytest.raises(ValueError, match="divisible by group_channels=24"):
        create_model("rednet26", group_channels=24)
    with pytest.raises(ValueError, match="planes must be a positive int .* got 0"):
        create_model("resnet26", planes=0)
    narrow = create_model("rednet26", planes=32)  # half the width: involutions of 32..256 channels
    assert [layer[0].conv2.channels for layer in narrow.children() if isinstance(layer, nn.Sequential)
            and layer is not narrow.stem] == [32, 64, 128, 256]


@pytest.mark.parametrize("name", ["rednet26", "resnet26"])
def test_small_input_option_keeps_the_deepest_map_at_4x4_for_64px_images(name):
    official = create_model(name, num_classes=10)
    small = create_model(name, num_classes=10, planes=16, small_input=True)
    x = torch.randn(2, 3, 64, 64)
    official_maps = [m.shape[-1] for m in official.forward_intermediates(x, intermediates_only=True)]
    small_maps = [m.shape[-1] for m in small.forward_intermediates(x, intermediates_only=True)]
    assert official_maps == [32, 16, 8, 4, 2]  # the official stem: a 2x2 deepest map at 64 px
    assert small_maps == [32, 32, 16, 8, 4]  # no stem max pool: every stage at twice the side
    assert [info["reduction"] for info in small.feature_info] == [2, 2, 4, 8, 16]
    assert [64 // info["reduction"] for info in small.feature_info] == small_maps
    assert isinstance(small.maxpool, nn.Identity) and not isinstance(official.maxpool, nn.Identity)
    # Only the pool goes: the same parameters as the same width with the official stem.
    assert sum(p.numel() for p in small.parameters()) == sum(
        p.numel() for p in create_model(name, num_classes=10, planes=16).parameters())
    assert small(x).shape == (2, 10)
    with pytest.raises(ValueError, match="small_input must be True or False"):
        create_model(name, small_input="yes")


def test_small_input_variant_keeps_the_official_rednet_block():
    block = create_model("rednet26", planes=16, small_input=True).layer3[0].conv2
    assert (block.kernel_size, block.channels // block.groups) == (7, 16)
    assert block.kernel_generator.reduce[0].out_channels == block.channels // 4


def test_odd_sized_feature_maps_work_with_strided_involution():
    layer = Involution2d(32, kernel_size=7, stride=2)
    assert layer(torch.randn(1, 32, 13, 11)).shape == (1, 32, 7, 6)


def test_generated_kernels_can_be_captured_with_a_hook():
    layer = Involution2d(32, kernel_size=7, stride=2, group_channels=16)
    captured = []
    layer.kernel_generator.register_forward_hook(lambda m, i, out: captured.append(out))
    layer(torch.randn(2, 32, 10, 10))
    assert isinstance(layer.kernel_generator, KernelGenerator)
    assert captured[0].shape == (2, 2, 7, 7, 5, 5)


def test_dednet_replaces_every_dense_3x3_conv():
    model = create_model("dednet121")
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert sum(isinstance(m, Involution2d) for m in model.modules()) == 6 + 12 + 24 + 16


def test_resnet_baselines_are_torchvision_resnets():
    from torchvision.models import resnet50
    assert isinstance(create_model("resnet26"), ResNet)
    ours, theirs = create_model("resnet50"), resnet50()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert isinstance(create_model("rednet26"), RedNet)


def test_torch_hub_local_entry_points():
    model = torch.hub.load(str(REPO), "rednet26", source="local", num_classes=257)
    assert isinstance(model, RedNet) and model.fc.out_features == 257
