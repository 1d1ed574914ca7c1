"""timm's model conventions, on every model: what timm's own model tests and tools expect.

Every RedNet is checked through ``timm.create_model`` (the way most people adopt it):
construction-level facts on every one of them, built on the "meta" device (no memory,
no arithmetic, shapes only); values and gradients on the tiny ``test_rednet`` and on
RedNet-26 at small image sizes. The ResNet and DenseNet baselines and DedNet follow
the same conventions through :func:`involution.models.create_model`.
"""
import copy

import pytest
import torch
from test_models import synthetic_official_checkpoint
from torch import nn

from involution import Involution2d
from involution.models import create_model, list_models, model_info

# timm is in the [test] extra; skip only where it cannot be installed.
timm = pytest.importorskip("timm", reason="timm is not installed: pip install 'involution[test]'")

REDNETS = [name for name in list_models() if model_info(name).family == "rednet"]  # test_rednet too
ALL_MODELS = list_models()
# The smallest model of each family other than RedNet (the RedNets go through timm below).
BASELINES = ["test_resnet", "densenet121", "dednet121"]
META = torch.device("meta")


@pytest.fixture(scope="module", autouse=True)
def timm_registered():
    import involution.models.timm_support  # noqa: F401  (registers the RedNets with timm)


def _floating_tensors(model):
    return [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]


def _train_step(model, images):
    """One forward and backward in training mode: (output, input gradient, parameter
    gradients, buffers after the step)."""
    images = images.clone().requires_grad_()
    out = model(images)
    out.square().mean().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return out.detach(), images.grad, grads, buffers


def _assert_identical_steps(first, second):
    (out, grad_x, grads, buffers), (out2, grad_x2, grads2, buffers2) = first, second
    assert torch.equal(out, out2) and torch.equal(grad_x, grad_x2)
    assert grads.keys() == grads2.keys() and buffers.keys() == buffers2.keys()
    for name in grads:
        assert torch.equal(grads[name], grads2[name]), name
    for name in buffers:  # the batch norms' running statistics: updated once, not twice
        assert torch.equal(buffers[name], buffers2[name]), name


# -- every RedNet through timm.create_model: construction-level facts ------------------------

@pytest.mark.parametrize("name", REDNETS)
def test_timm_builds_every_rednet_on_the_device_and_in_the_dtype_asked(name):
    model = timm.create_model(name, device=META, dtype=torch.bfloat16).eval()
    assert {t.device for t in [*model.parameters(), *model.buffers()]} == {META}
    assert {t.dtype for t in _floating_tensors(model)} == {torch.bfloat16}
    assert (model.num_classes, model.in_chans) == (1000, 3)
    assert model.head_hidden_size == model.num_features == model.feature_info[-1]["num_chs"]

    # The fields of pretrained_cfg that timm's model tests and data pipeline read.
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["pool_size"] == (7, 7)
    assert (cfg["num_classes"], cfg["crop_pct"], cfg["interpolation"]) == (1000, 0.875, "bilinear")
    assert (cfg["mean"], cfg["std"]) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state and cfg["classifier"] + ".weight" in state
    images = torch.empty(1, *cfg["input_size"], device=META, dtype=torch.bfloat16)
    with torch.no_grad():
        features = model.forward_features(images)
        assert features.shape == (1, model.num_features, *cfg["pool_size"])
        assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)

        # timm's feature API: every feature_info level, the last n, or only the maps.
        final, maps = model.forward_intermediates(images)
        assert final.shape == features.shape
        assert [tuple(m.shape[1:]) for m in maps] == [
            (f["num_chs"], 224 // f["reduction"], 224 // f["reduction"]) for f in model.feature_info]
        last_two = model.forward_intermediates(images, indices=2, intermediates_only=True)
        assert [m.shape for m in last_two] == [m.shape for m in maps[3:]]
        early, (first_stage,) = model.forward_intermediates(images, indices=[1], stop_early=True)
        assert early.shape == first_stage.shape == maps[1].shape

        # No classifier: pooled features; no pooling either: the feature map. On the model's
        # device and in its dtype, and a new classifier too.
        model.reset_classifier(0)
        assert model.num_classes == 0 and model(images).shape == (1, model.head_hidden_size)
        model.reset_classifier(0, "")
        assert model(images).shape == features.shape
        model.reset_classifier(7)
        head = model.get_classifier()
        assert (head.weight.device, head.weight.dtype) == (META, torch.bfloat16)
        assert model.num_classes == 7 and model(images).shape == (1, 7)

    # timm's name for the recompute option
    model.set_grad_checkpointing()
    involutions = [m for m in model.modules() if isinstance(m, Involution2d)]
    assert model.grad_checkpointing and model.recompute
    assert all(m.recompute for m in involutions if m is not model.stem[1])  # the stem's: by the model
    model.set_grad_checkpointing(False)
    assert not (model.grad_checkpointing or any(m.recompute for m in involutions))


@pytest.mark.parametrize("name", REDNETS)
def test_timm_builds_every_rednet_headless(name):
    model = timm.create_model(name, num_classes=0, global_pool="", device=META).eval()
    assert model.num_classes == 0 and isinstance(model.get_classifier(), nn.Identity)
    assert model(torch.empty(2, 3, 64, 64, device=META)).shape == (2, model.num_features, 2, 2)


@pytest.mark.parametrize("name", REDNETS)
def test_timm_refuses_an_unknown_keyword_with_a_type_error(name):
    with pytest.raises(TypeError, match=f"{name} does not accept the option colour; it accepts "):
        timm.create_model(name, colour="red")


# -- values and gradients, on the small RedNets -----------------------------------------------

@pytest.mark.parametrize("name", ["test_rednet", "rednet26"])
def test_timm_builds_a_float64_rednet_that_computes_in_float64(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=5, dtype=torch.float64).eval()
    assert {t.dtype for t in _floating_tensors(model)} == {torch.float64}
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        logits = model(images)
        assert logits.dtype == torch.float64 and logits.shape == (2, 5)
        features = model.forward_features(images)
        model.reset_classifier(0, "")
        assert torch.equal(model(images), features)
        model.reset_classifier(3)  # a classifier again: the pooling comes back with it
        head = model.get_classifier()
        assert head.weight.dtype == torch.float64 and model(images).shape == (2, 3)
        assert model.global_pool == "avg"


def test_timm_reset_classifier_keeps_the_training_mode():
    model = timm.create_model("test_rednet").train()
    model.reset_classifier(3)
    assert model.get_classifier().training
    model.eval().reset_classifier(0, "")
    assert not model.get_classifier().training


def test_forward_intermediates_follows_timm():
    torch.manual_seed(0)
    model = timm.create_model("test_rednet", num_classes=5).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, maps = model.forward_intermediates(images)
        assert torch.equal(final, model.forward_features(images)) and len(maps) == 5
        assert torch.equal(maps[-1], final)
        # indices: an int takes the last n, a list takes those (negative from the end)
        chosen = model.forward_intermediates(images, indices=[0, -2], intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(chosen, [maps[0], maps[3]])] == [True, True]
        last = model.forward_intermediates(images, indices=1, intermediates_only=True)
        assert len(last) == 1 and torch.equal(last[0], final)
        # stop_early: the forward ends at the last map asked for, and returns it as the output
        early, (layer2,) = model.forward_intermediates(images, indices=[2], stop_early=True)
        assert torch.equal(early, layer2) and torch.equal(layer2, maps[2])
        # norm has nothing to apply here: a ResNet has no final norm
        normed, _ = model.forward_intermediates(images, norm=True)
        assert torch.equal(normed, final)
    with pytest.raises(ValueError, match="feature index 5 is out of range"):
        model.forward_intermediates(images, indices=[5])
    with pytest.raises(ValueError, match="last 6 feature maps, of 5"):
        model.forward_intermediates(images, indices=6)
    with pytest.raises(ValueError, match="output_fmt 'NHWC'.* only 'NCHW'"):
        model.forward_intermediates(images, output_fmt="NHWC")


def test_timm_features_only_through_forward_intermediates():
    """timm's feature getter wrapper: features_only by forward_intermediates."""
    torch.manual_seed(0)
    backbone = timm.create_model("test_rednet", features_only=True, feature_cls="getter",
                                 out_indices=(1, 2, 3, 4)).eval()
    assert backbone.feature_info.channels() == [64, 128, 256, 512]
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4),
                                              (1, 512, 2, 2)]


@pytest.mark.parametrize("name", ["test_rednet", "rednet26"])
def test_timm_grad_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    plain = timm.create_model(name, num_classes=5, dtype=torch.float64).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    _assert_identical_steps(_train_step(plain, images), _train_step(checkpointed, images))
    # and through forward_intermediates, as timm's feature wrappers call it
    assert torch.equal(*(model.forward_intermediates(images)[0] for model in (plain, checkpointed)))


def test_timm_layer_wise_learning_rate_decay_groups_stem_blocks_and_head():
    model = timm.create_model("test_rednet", num_classes=5)
    assert model.no_weight_decay() == set()
    assert model.group_matcher() == {"stem": r"^stem\.", "blocks": r"^layer(\d+)\.(\d+)"}
    assert model.group_matcher(coarse=True)["blocks"] == r"^layer(\d+)"
    from timm.optim import create_optimizer_v2
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scale_of = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            scale_of[parameter] = group["lr_scale"]
    # stem, one group per block (one block per stage in the tiny model), then the head
    assert sorted(set(scale_of.values())) == [0.5 ** n for n in range(5, -1, -1)]
    assert scale_of[model.stem[0][0].weight] == 0.5 ** 5
    assert scale_of[model.layer1[0].conv1.weight] == 0.5 ** 4
    assert scale_of[model.layer4[0].conv3.weight] == 0.5 ** 1
    assert scale_of[model.fc.weight] == 1.0
    assert len(scale_of) == len(list(model.parameters()))


def test_timm_in_chans_builds_a_stem_for_those_channels():
    model = timm.create_model("test_rednet", in_chans=1, num_classes=4).eval()
    assert model.in_chans == 1 and model.stem[0][0].in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


# -- the same conventions on the baselines and DedNet, through create_model ------------------

@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_is_built_on_the_device_and_in_the_dtype_asked(name):
    model = create_model(name, num_classes=7, device="meta", dtype=torch.float16)
    assert {t.device for t in [*model.parameters(), *model.buffers()]} == {META}
    assert {t.dtype for t in _floating_tensors(model)} == {torch.float16}
    assert (model.num_classes, model.in_chans, model.global_pool) == (7, 3, "avg")
    assert model.head_hidden_size == model.num_features
    cfg = model.pretrained_cfg
    assert cfg["pool_size"] == (7, 7) and cfg["input_size"] == (3, 224, 224)
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state and cfg["classifier"] + ".weight" in state
    assert cfg["classifier"] == model.get_classifier(name_only=True)
    model.reset_classifier(0, "")
    model.reset_classifier(3)
    head = model.get_classifier()
    assert (head.weight.device, head.weight.dtype, head.out_features) == (META, torch.float16, 3)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_an_unknown_option_is_a_type_error_that_names_it(name):
    with pytest.raises(TypeError, match=f"^{name} does not accept the option colour; it accepts "):
        create_model(name, colour="red")


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_headless_features_and_grad_checkpointing(name):
    torch.manual_seed(0)
    # In training mode: batch statistics (an untrained model's running ones overflow DedNet's
    # activations), and no dropout, so the outputs repeat exactly.
    model = create_model(name, num_classes=0, global_pool="", dtype=torch.float64).train()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)  # two: batch norm trains on 1x1 maps
    with torch.no_grad():
        unpooled = model(images)
        assert unpooled.shape == (2, model.num_features, 1, 1)
        final, maps = model.forward_intermediates(images)
        assert torch.equal(final, unpooled)
        assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info]
        (early,) = model.forward_intermediates(images, indices=[1], stop_early=True,
                                               intermediates_only=True)
        assert torch.equal(early, maps[1])
    model.reset_classifier(4)
    plain = model
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    assert checkpointed.grad_checkpointing
    _assert_identical_steps(_train_step(plain, images), _train_step(checkpointed, images))


def test_densenet_norm_gives_the_last_map_its_final_norm():
    torch.manual_seed(0)
    model = create_model("densenet121").eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        final, maps = model.forward_intermediates(images)
        (normed,) = model.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)
    assert torch.equal(final, model.forward_features(images))
    assert not torch.equal(maps[-1], final) and torch.equal(normed, final)


def test_baselines_group_matchers_cover_every_parameter_in_order():
    from timm.models import group_parameters
    for name, first in [("test_resnet", "conv1.weight"), ("densenet121", "features.conv0.weight")]:
        model = create_model(name)
        groups = group_parameters(model, model.group_matcher())
        names = [n for n, _ in model.named_parameters()]
        assert sorted(n for group in groups.values() for n in group) == sorted(names)
        ordered = [group for _, group in sorted(groups.items())]
        assert first in ordered[0] and model.get_classifier(name_only=True) + ".weight" in ordered[-1]
        if name == "densenet121":  # a transition joins the last layer of its block
            position = {n: i for i, group in enumerate(ordered) for n in group}
            assert (position["features.denseblock1.denselayer5.conv2.weight"]
                    < position["features.denseblock1.denselayer6.conv2.weight"]
                    == position["features.transition1.conv.weight"]
                    < position["features.denseblock2.denselayer1.conv1.weight"])


def test_pretrained_into_a_headless_model_drops_the_classifier():
    checkpoint = synthetic_official_checkpoint("rednet26")
    model = create_model("rednet26", num_classes=0, pretrained=checkpoint)
    assert torch.equal(model.stem[0][0].weight, checkpoint["state_dict"]["backbone.stem.0.conv.weight"])
    assert isinstance(model.fc, nn.Identity)


def test_pretrained_weights_need_the_channels_they_were_trained_on():
    with pytest.raises(ValueError, match="official weights are for 3-channel images.*in_chans=3"):
        create_model("rednet26", in_chans=1, pretrained=synthetic_official_checkpoint("rednet26"))


def test_the_options_record_leaves_out_the_arguments_every_model_takes():
    # num_classes, in_chans, global_pool, device and dtype are every model's: not options
    assert model_info("densenet121").options == ("drop_rate",)
    with pytest.raises(ValueError, match="global_pool='' .*num_classes=0"):
        create_model("test_rednet", num_classes=5, global_pool="")
    with pytest.raises(ValueError, match="global_pool must be 'avg' or ''"):
        create_model("test_rednet", global_pool="max")


@pytest.mark.parametrize("name", ["rednet26", "resnet26", "dednet121"])
def test_reset_classifier_keeps_every_module_in_the_models_mode_device_and_dtype(name):
    model = create_model(name, num_classes=10, device="meta", dtype=torch.bfloat16).eval()
    for num_classes, global_pool in ((0, ""), (0, "avg"), (5, None)):
        model.reset_classifier(num_classes, global_pool)
        assert not any(module.training for module in model.modules()), (num_classes, global_pool)
        assert {(p.device.type, p.dtype) for p in model.parameters()} == {("meta", torch.bfloat16)}
    model.train().reset_classifier(3)
    assert all(module.training for module in model.modules())
