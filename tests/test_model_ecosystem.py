"""Every registered model, and the conventions of timm and torchvision it follows.

Build checks run over every name of ``list_models()``; forward and backward
passes over the smallest model of each family (the tiny ``test_*`` models for
RedNet and ResNet, as timm's test models), at small image sizes.
"""
import dataclasses
import hashlib

import pytest
import torch
from test_models import synthetic_official_checkpoint
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN

from involution.models import DenseNet, RedNet, ResNet, create_model, list_models, model_info, registry
from involution.models.registry import OfficialWeights

ALL_MODELS = list_models()


def _smallest_of_each_family() -> list[str]:
    infos = [model_info(name) for name in ALL_MODELS]
    families = {info.family for info in infos}
    return sorted(min((i for i in infos if i.family == family), key=lambda i: i.depth).name
                  for family in families)


SMALL_MODELS = _smallest_of_each_family()


def test_the_small_models_cover_every_family():
    assert SMALL_MODELS == ["dednet121", "densenet121", "test_rednet", "test_resnet"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_build_matches_the_record(name):
    info = model_info(name)
    model = create_model(name, num_classes=7)
    assert model.pretrained_cfg == info.pretrained_cfg()
    assert model.get_classifier().out_features == 7
    assert model.num_features == model.get_classifier().in_features
    assert model.feature_info[-1]["num_chs"] == model.num_features
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    for feature in model.feature_info:
        model.get_submodule(feature["module"])  # names a real module
    if info.reported is not None and info.reported.params is not None:
        model.reset_classifier(1000)
        assert sum(p.numel() for p in model.parameters()) == info.reported.params


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_forward_backward_and_feature_info(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    images = torch.randn(2, 3, 32, 32)
    shapes = {}

    def record(module_name):
        def hook(module, inputs, output):
            shapes[module_name] = output.shape
        return hook

    hooks = [model.get_submodule(f["module"]).register_forward_hook(record(f["module"]))
             for f in model.feature_info]
    logits = model(images)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "every parameter is used"
    assert [shapes[f["module"]][1:] for f in model.feature_info] == [
        (f["num_chs"], 32 // f["reduction"], 32 // f["reduction"]) for f in model.feature_info]
    # Still in training mode (batch statistics, no dropout), so outputs repeat exactly; an
    # untrained model's running statistics say nothing (DedNet's activations overflow).
    with torch.no_grad():
        features = model.forward_features(images)
        assert torch.allclose(model.forward_head(features), logits, atol=1e-6)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        model.reset_classifier(3)
        assert model.forward_head(features).shape == (2, 3)
        model.reset_classifier(0)  # as in timm: no classifier, the pooled features come out
        assert torch.equal(model.forward_head(features), pooled)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_options_a_model_does_not_take_are_refused_by_name(name):
    info = model_info(name)
    with pytest.raises(TypeError) as error:  # as Python's for an unexpected keyword, and timm's
        create_model(name, colour="red")
    assert str(error.value) == (f"{name} does not accept the option colour; it accepts "
                                f"{', '.join(info.options)} (and num_classes, in_chans, "
                                "global_pool, device, dtype)")


def test_records_say_what_each_model_accepts():
    assert model_info("rednet26").options == ("kernel_size", "group_channels", "reduction_ratio",
                                              "drop_rate", "zero_init_residual", "planes",
                                              "recompute", "small_input")
    assert model_info("resnet26").options == ("drop_rate", "zero_init_residual", "planes", "small_input")
    assert model_info("dednet121").options == ("drop_rate", "kernel_size")
    assert model_info("densenet121").options == ("drop_rate",)
    with pytest.raises(TypeError, match="dednet121 does not accept the option group_channels; "
                                        "it accepts drop_rate, kernel_size"):
        create_model("dednet121", group_channels=8)


def test_image_classifier_refuses_an_option_the_model_lacks():
    # This used to end in a raw TypeError deep inside the builder.
    from involution.train.module import ImageClassifier
    with pytest.raises(TypeError, match="dednet121 does not accept the option group_channels"):
        ImageClassifier("dednet121", group_channels=8)
    with pytest.raises(TypeError, match="resnet26 does not accept the option kernel_size"):
        ImageClassifier("resnet26", kernel_size=3)


def test_records_hold_the_reported_figures_and_weights():
    rednet = model_info("rednet26")
    assert (rednet.family, rednet.label, rednet.depth) == ("rednet", "RedNet-26", 26)
    assert (rednet.reported.params_m, rednet.reported.gflops, rednet.reported.top1,
            rednet.reported.top5) == (9.23, 1.73, 75.96, 93.19)
    assert rednet.reported.citation.startswith("reported by Li et al. (CVPR 2021)")
    cfg = rednet.pretrained_cfg()
    assert cfg["url"] is None and "github.com/d-li14/involution" in cfg["page"]
    assert (cfg["input_size"], cfg["mean"], cfg["std"]) == (
        (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert cfg["reported_top1"] == 75.96
    resnet = model_info("resnet50").pretrained_cfg()
    assert resnet["url"] == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert resnet["hash_prefix"] == "0676ba61" and resnet["reported_top1"] == 76.13
    assert model_info("resnet26").weights is None and model_info("dednet121").reported is None
    assert model_info("test_rednet").family == "rednet"


def test_list_models_filters_with_wildcards_as_timm():
    assert list_models("rednet*") == ["rednet101", "rednet152", "rednet26", "rednet38", "rednet50"]
    assert list_models(["dednet*", "densenet*"]) == ["dednet121", "densenet121"]
    assert list_models("*net26") == ["rednet26", "resnet26"]
    assert list_models(exclude="test_*") == [n for n in ALL_MODELS if not n.startswith("test_")]
    assert list_models("nothing*") == []


def test_children_run_in_registration_order_so_backbone_with_fpn_works():
    torch.manual_seed(0)
    model = create_model("rednet26").eval()
    assert [name for name, _ in model.named_children()] == [
        "stem", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "dropout", "fc"]
    images = torch.randn(1, 3, 64, 64)
    stages = {f"layer{i}": f"C{i + 1}" for i in range(1, 5)}
    with torch.no_grad():
        getter = IntermediateLayerGetter(model, stages)
        assert torch.equal(getter(images)["C5"], model.forward_features(images))
        backbone = BackboneWithFPN(model, stages, in_channels_list=[256, 512, 1024, 2048],
                                   out_channels=64).eval()
        pyramid = backbone(images)
    assert {name: tuple(f.shape) for name, f in getter(images).items()} == {
        "C2": (1, 256, 16, 16), "C3": (1, 512, 8, 8), "C4": (1, 1024, 4, 4), "C5": (1, 2048, 2, 2)}
    assert {name: tuple(f.shape) for name, f in pyramid.items()} == {
        "C2": (1, 64, 16, 16), "C3": (1, 64, 8, 8), "C4": (1, 64, 4, 4), "C5": (1, 64, 2, 2),
        "pool": (1, 64, 1, 1)}


def test_resnet_children_run_in_registration_order_too():
    model = create_model("test_resnet")
    assert [name for name, _ in model.named_children()] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
        "dropout", "fc"]
    assert isinstance(model, ResNet) and not isinstance(model, RedNet)
    assert isinstance(create_model("dednet121"), DenseNet)


# -- official weights: pretrained=True -------------------------------------------------------

def test_pretrained_true_says_where_to_get_the_rednet_weights():
    with pytest.raises(ValueError) as error:
        create_model("rednet26", pretrained=True)
    message = str(error.value)
    assert message.startswith("rednet26's official weights have no direct download: get the "
                              "RedNet-26 checkpoint from https://github.com/d-li14/involution")
    assert "create_model('rednet26', pretrained='path/to/rednet26.pth')" in message


def test_pretrained_for_a_model_without_official_weights_is_refused():
    with pytest.raises(ValueError, match="resnet26 has no official weights to load; models with "
                                         "them: rednet101, .*resnet50"):
        create_model("resnet26", pretrained=True)


@pytest.fixture
def hub_dir(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def _offer_weights(monkeypatch, tmp_path, name, state_dict, hash_prefix=None):
    """Give ``name`` a direct download: a file:// URL named as torch.hub expects."""
    source = tmp_path / "source.pth"
    torch.save(state_dict, source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    served = source.rename(tmp_path / f"{name}-{hash_prefix or digest[:8]}.pth")
    info = model_info(name)
    weights = OfficialWeights(page="a test", checkpoint_format="torchvision", url=served.as_uri())
    monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(info, weights=weights))
    return served


def test_pretrained_true_downloads_once_and_checks_the_hash(monkeypatch, tmp_path, hub_dir):
    torch.manual_seed(1)
    official = create_model("test_resnet").state_dict()
    served = _offer_weights(monkeypatch, tmp_path, "test_resnet", official)
    model = create_model("test_resnet", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in official.items())
    cached = hub_dir / "checkpoints" / served.name
    assert cached.read_bytes() == served.read_bytes()
    served.unlink()  # a second build reads the cache, not the URL
    create_model("test_resnet", pretrained=True)


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(monkeypatch, tmp_path, hub_dir):
    served = _offer_weights(monkeypatch, tmp_path, "test_resnet",
                            create_model("test_resnet").state_dict(), hash_prefix="00000000")
    with pytest.raises(ValueError, match="is corrupt .*invalid hash value"):
        create_model("test_resnet", pretrained=True)
    assert not (hub_dir / "checkpoints" / served.name).exists()


def test_an_unreachable_download_says_what_to_do(monkeypatch, tmp_path, hub_dir):
    served = _offer_weights(monkeypatch, tmp_path, "test_resnet", {})
    served.unlink()  # as if offline: the address answers nothing
    with pytest.raises(ValueError, match=r"could not download test_resnet's official weights "
                                         r"from file://.*pass its path: create_model"):
        create_model("test_resnet", pretrained=True)


# -- timm -----------------------------------------------------------------------------------

# timm is in the [test] extra; skip only where it cannot be installed.
timm = pytest.importorskip("timm", reason="timm is not installed: pip install 'involution[test]'")


@pytest.fixture(scope="module")
def timm_registered():
    from involution.models import timm_support
    return timm_support.TIMM_MODELS


def test_timm_registers_the_rednets_only(timm_registered):
    assert timm_registered == list_models("rednet*") + ["test_rednet"]
    assert timm.list_models("rednet*") == ["rednet26", "rednet38", "rednet50", "rednet101",
                                           "rednet152"]
    assert type(timm.create_model("resnet26")).__module__.startswith("timm.")  # timm's own


def test_timm_create_model(timm_registered):
    model = timm.create_model("rednet26", num_classes=257)
    assert isinstance(model, RedNet) and model.fc.out_features == 257
    assert model.pretrained_cfg["origin_url"].startswith("https://github.com/d-li14/involution")
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)
    assert timm.create_model("test_rednet", num_classes=0).fc.__class__ is nn.Identity


def test_timm_features_only_with_out_indices(timm_registered):
    model = timm.create_model("rednet26", features_only=True, out_indices=(1, 2, 3, 4)).eval()
    assert model.feature_info.channels() == [256, 512, 1024, 2048]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [
        (1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]


def test_timm_pretrained_explains_and_loads_a_local_file(timm_registered, tmp_path):
    with pytest.raises(ValueError, match="no direct download: get the RedNet-26 checkpoint"):
        timm.create_model("rednet26", pretrained=True)
    checkpoint = synthetic_official_checkpoint("rednet26")
    path = tmp_path / "rednet26.pth"
    torch.save(checkpoint, path)
    model = timm.create_model("rednet26", pretrained=True,
                              pretrained_cfg_overlay={"file": str(path)})
    assert torch.equal(model.stem[0][0].weight,
                       checkpoint["state_dict"]["backbone.stem.0.conv.weight"])
