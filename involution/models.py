"""RedNet, its ResNet baselines, DedNet and DenseNet, and their registry entries.

RedNet is "torchvision's ResNet with involution in the bottleneck and a
different stem", so that is how it is built here: torchvision's
:class:`~torchvision.models.ResNet` with Bottleneck blocks, whose 3x3
convolution (``conv2``) is replaced by a 7x7 :class:`~involution.Involution2d`
with the block's stride, and whose 7x7 stem convolution is replaced by the
official involution stem. Everything else (stage widths, strides,
projection shortcuts, zero-initialised last BN of each block) is torchvision's.

Every model has timm's interface (``forward_features``, ``forward_head``,
``reset_classifier``, ``num_features``, ``feature_info``, ``pretrained_cfg``)
and registers its children in the order its forward runs them, so
torchvision's ``IntermediateLayerGetter``/``BackboneWithFPN`` and timm's
``features_only`` work. Use the registry::

    >>> from involution.models import create_model, list_models
    >>> model = create_model("rednet26", num_classes=257)
    >>> list_models("rednet*")
    ['rednet101', 'rednet152', 'rednet26', 'rednet38', 'rednet50']

Each model's facts (family, label, options, reported figures, official
weights) are in its record: ``model_info("rednet26")``. ``import
involution.timm_support`` registers the RedNets with timm.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import Bottleneck
from torchvision.ops import Conv2dNormActivation

from .functional import is_positive_int
from .layers import Involution2d, recompute_in_backward, recomputing
from .pretrained import OFFICIAL_MODEL_ZOO, convert_official_state_dict, load_official_checkpoint, load_pretrained
from .registry import OfficialWeights, Reported, list_models, model_info, register_model

__all__ = [
    "ResNet", "RedNet", "DenseNet", "DedNet", "STAGE_BLOCKS", "create_model", "list_models",
    "model_info", "load_official_checkpoint", "convert_official_state_dict",
    "rednet26", "rednet38", "rednet50", "rednet101", "rednet152",
    "resnet26", "resnet38", "resnet50", "resnet101", "resnet152",
    "dednet121", "densenet121", "test_rednet", "test_resnet", "OFFICIAL_MODEL_ZOO",
]

# Bottleneck blocks per stage for each depth (depth = 3 * blocks + 2).
STAGE_BLOCKS = {
    14: (1, 1, 1, 1),  # the tiny test models
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def _check_num_classes(num_classes) -> None:
    # nn.Linear accepts 0 outputs and fails on -1 with a tensor error: say what is wrong instead.
    if not is_positive_int(num_classes):
        raise ValueError("num_classes must be a positive int (257 for Caltech-256, 1000 for "
                         f"ImageNet), got {num_classes!r}")


def _kaiming_init(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, for the modules RedNet adds."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _in_execution_order(module: nn.Module, names: list[str]) -> None:
    """Re-register ``module``'s children in the order its forward runs them.

    torchvision's IntermediateLayerGetter and timm's feature extraction run a
    model's children one after another in registration order, so that order
    must be the forward pass's.
    """
    children = dict(module.named_children())
    if sorted(children) != sorted(names):
        raise RuntimeError(f"execution order {names} does not name the children {list(children)}")
    for name in names:
        delattr(module, name)
        setattr(module, name, children[name])


class _TimmInterface:
    """timm's classifier interface, over torchvision's module names.

    A subclass sets ``classifier_name``, ``num_features``, ``feature_info``
    and the ``avgpool``/``dropout`` modules, and defines ``forward_features``.
    """

    classifier_name = "fc"

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pooling, dropout and the classifier (``pre_logits``: stop before it)."""
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes``; 0 removes it (the model returns pooled
        features), as in timm."""
        if num_classes != 0:
            _check_num_classes(num_classes)
        head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        setattr(self, self.classifier_name, head)


def _stage_info(planes: int, stem: dict) -> list[dict]:
    """timm's ``feature_info``: the stem's output, then each stage's channels and stride."""
    return [stem] + [{"num_chs": 4 * planes * 2 ** i, "reduction": 4 * 2 ** i,
                      "module": f"layer{i + 1}"} for i in range(4)]


class ResNet(_TimmInterface, tvm.ResNet):
    """torchvision's bottleneck ResNet with optional dropout before the classifier.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[50]``.
        num_classes: size of the linear classifier.
        drop_rate: dropout probability applied to the pooled features.
        zero_init_residual: start every block's last BN at zero, so each
            residual block begins as the identity (the official RedNet and
            mmcls ResNet recipe; torchvision's default is False).
        planes: bottleneck width of the first stage (64 in every published
            ResNet and RedNet; each stage doubles it, and a block's output
            has 4x as many channels). The tiny test models use 16.
    """

    def __init__(self, layers, num_classes: int = 1000, drop_rate: float = 0.0,
                 zero_init_residual: bool = True, planes: int = 64):
        _check_num_classes(num_classes)
        if not is_positive_int(planes):
            raise ValueError(f"planes must be a positive int (64 in published models), "
                             f"got {planes!r}")
        self._planes = planes  # read by _make_layer, which torchvision's __init__ calls
        super().__init__(Bottleneck, list(layers), num_classes=num_classes,
                         zero_init_residual=zero_init_residual)
        if self.fc.in_features != self.inplanes:  # torchvision sizes fc for 64 planes
            self.fc = nn.Linear(self.inplanes, num_classes)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = self.fc.in_features
        self.feature_info = _stage_info(planes, {"num_chs": 64, "reduction": 2, "module": "relu"})
        _in_execution_order(self, self._stem_names() + [
            "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "dropout", "fc"])

    def _stem_names(self) -> list[str]:
        return ["conv1", "bn1", "relu"]

    def _make_layer(self, block, planes: int, *args, **kwargs) -> nn.Sequential:
        # torchvision asks for 64, 128, 256 and 512 planes: scale them to this model's width.
        return super()._make_layer(block, planes * self._planes // 64, *args, **kwargs)

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling."""
        x = self.stem_forward(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def bottlenecks(self) -> list[Bottleneck]:
        return [m for m in self.modules() if isinstance(m, Bottleneck)]


class RedNet(ResNet):
    """RedNet (Li et al., CVPR 2021): ResNet with involution.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[26]``.
        num_classes, drop_rate, zero_init_residual, planes: as for :class:`ResNet`.
        kernel_size: K of the bottleneck involutions (official: 7).
        group_channels: channels per involution group (official: 16).
        reduction_ratio: channel reduction in the kernel generator (official: 4).
        recompute: in training, keep less for backward and recompute it there:
            every involution's generated kernels (see :class:`Involution2d`)
            and the stem's 112x112 maps up to its last convolution. Exact
            gradients and the same parameter names; see the README's "Speed
            and memory" for what it saves and costs.
    """

    def __init__(self, layers, num_classes: int = 1000, kernel_size: int = 7,
                 group_channels: int = 16, reduction_ratio: int = 4, drop_rate: float = 0.0,
                 zero_init_residual: bool = True, planes: int = 64, recompute: bool = False):
        super().__init__(layers, num_classes, drop_rate, zero_init_residual, planes)
        involution = dict(group_channels=group_channels, reduction_ratio=reduction_ratio)
        # The official stem: a strided 3x3 conv, a 3x3 involution and a 3x3 conv
        # instead of ResNet's single 7x7 conv. The max pool is kept.
        del self.conv1, self.bn1, self.relu
        self.stem = nn.Sequential(
            Conv2dNormActivation(3, 32, kernel_size=3, stride=2),
            Involution2d(32, kernel_size=3, **involution),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            Conv2dNormActivation(32, 64, kernel_size=3),
        )
        _kaiming_init(self.stem)
        self.feature_info[0] = {"num_chs": 64, "reduction": 2, "module": "stem"}
        _in_execution_order(self, ["stem", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                   "avgpool", "dropout", "fc"])
        for block in self.bottlenecks():
            # torchvision puts a block's stride on its 3x3 conv: so does RedNet.
            block.conv2 = Involution2d(block.conv2.in_channels, kernel_size,
                                       stride=block.conv2.stride[0], **involution)
            _kaiming_init(block.conv2)
        self.set_recompute(recompute)

    def set_recompute(self, recompute: bool) -> None:
        """Turn recomputation in backward on or off (the ``recompute`` option)."""
        self.recompute = recompute
        for block in self.bottlenecks():
            block.conv2.recompute = recompute
        # The stem's involution is recomputed with the rest of its span (stem_forward).

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not recomputing(self):
            return self.maxpool(self.stem(x))
        # Of the stem's 112x112 maps only the last convolution's input and output are
        # kept for backward (that convolution is the costly one to run again); the
        # others, the stem involution's kernels among them, are recomputed.
        x = recompute_in_backward(self.stem[:4], x)
        # The batch norm to protect is the last convolution's (stem[4]); maxpool has none.
        return recompute_in_backward(self.stem[4], x, forward=self._stem_tail,
                                     keep=(torch.ops.aten.convolution.default,))

    def _stem_tail(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.stem[4](x))


class DenseNet(_TimmInterface, tvm.DenseNet):
    """torchvision's DenseNet-121 with dropout before the classifier and timm's interface.

    (torchvision's own ``drop_rate`` is dropout inside every dense layer; this
    one, as for the ResNets, acts on the pooled features.)
    """

    classifier_name = "classifier"

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0):
        _check_num_classes(num_classes)
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = self.classifier.in_features
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "features.relu0"}] + [
            {"num_chs": channels, "reduction": 4 * 2 ** i, "module": f"features.denseblock{i + 1}"}
            for i, channels in enumerate((256, 512, 1024, 1024))]
        _in_execution_order(self, ["features", "avgpool", "dropout", "classifier"])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling (torchvision applies a ReLU after norm5)."""
        return F.relu(self.features(x))


class DedNet(DenseNet):
    """DedNet-121, the course project's experiment: DenseNet-121 whose dense
    layers use a KxK involution (plus a 1x1 conv to the growth rate) instead
    of their 3x3 convolution.

    Involution keeps the channel count, while the 3x3 conv it replaces also
    maps bn_size*growth_rate channels to growth_rate; the 1x1 conv does that.
    """

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0, kernel_size: int = 7):
        super().__init__(num_classes, drop_rate)
        for module in self.modules():
            if isinstance(module, tvm.densenet._DenseLayer):
                conv = module.conv2
                module.conv2 = nn.Sequential(
                    Involution2d(conv.in_channels, kernel_size),
                    nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=1, bias=False),
                )
                _kaiming_init(module.conv2)


# -- the registry: one builder and one record per model ---------------------------------

_PAPER = "reported by Li et al. (CVPR 2021), official model zoo, ImageNet-1k"
_REDNET_WEIGHTS = OfficialWeights(page=OFFICIAL_MODEL_ZOO, checkpoint_format="mmcls")


def _paper(params: int, params_m: float, gflops: float, top1: float, top5: float) -> dict:
    """The official model zoo's row for a RedNet; ``params`` is the exact count of the
    official architecture with a 1000-class head."""
    return {"reported": Reported("paper", _PAPER, params_m, gflops, top1, top5, params),
            "weights": _REDNET_WEIGHTS}


def _torchvision(weights: tvm.WeightsEnum) -> dict:
    """The record of a model whose official weights are torchvision's, read from their meta."""
    meta = weights.meta
    accuracy = meta["_metrics"]["ImageNet-1K"]
    citation = f"reported in torchvision's {type(weights).__name__}.{weights.name} metadata"
    return {"reported": Reported("torchvision", citation, meta["num_params"] / 1e6, meta["_ops"],
                                 accuracy["acc@1"], accuracy["acc@5"], meta["num_params"]),
            "weights": OfficialWeights(page=f"torchvision.models.{type(weights).__name__}",
                                       checkpoint_format="torchvision", url=weights.url)}


@register_model(family="rednet", label="RedNet-26", depth=26, architecture=RedNet,
                **_paper(9_233_166, 9.23, 1.73, 75.96, 93.19))
def rednet26(num_classes: int = 1000, **options) -> RedNet:
    """RedNet-26: stages (1, 2, 4, 1)."""
    return RedNet(STAGE_BLOCKS[26], num_classes, **options)


@register_model(family="rednet", label="RedNet-38", depth=38, architecture=RedNet,
                **_paper(12_386_986, 12.39, 2.22, 77.48, 93.57))
def rednet38(num_classes: int = 1000, **options) -> RedNet:
    """RedNet-38: stages (2, 3, 5, 2)."""
    return RedNet(STAGE_BLOCKS[38], num_classes, **options)


@register_model(family="rednet", label="RedNet-50", depth=50, architecture=RedNet,
                **_paper(15_540_806, 15.54, 2.71, 78.35, 94.13))
def rednet50(num_classes: int = 1000, **options) -> RedNet:
    """RedNet-50: stages (3, 4, 6, 3)."""
    return RedNet(STAGE_BLOCKS[50], num_classes, **options)


@register_model(family="rednet", label="RedNet-101", depth=101, architecture=RedNet,
                **_paper(25_652_950, 25.65, 4.74, 78.92, 94.35))
def rednet101(num_classes: int = 1000, **options) -> RedNet:
    """RedNet-101: stages (3, 4, 23, 3)."""
    return RedNet(STAGE_BLOCKS[101], num_classes, **options)


@register_model(family="rednet", label="RedNet-152", depth=152, architecture=RedNet,
                **_paper(33_984_582, 33.99, 6.79, 79.12, 94.38))
def rednet152(num_classes: int = 1000, **options) -> RedNet:
    """RedNet-152: stages (3, 8, 36, 3)."""
    return RedNet(STAGE_BLOCKS[152], num_classes, **options)


@register_model(family="resnet", label="ResNet-26", depth=26, architecture=ResNet)
def resnet26(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-26 baseline: RedNet-26's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[26], num_classes, **options)


@register_model(family="resnet", label="ResNet-38", depth=38, architecture=ResNet)
def resnet38(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-38 baseline: RedNet-38's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[38], num_classes, **options)


@register_model(family="resnet", label="ResNet-50", depth=50, architecture=ResNet,
                **_torchvision(tvm.ResNet50_Weights.IMAGENET1K_V1))
def resnet50(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-50 (torchvision's, V1.5: stride on the 3x3 conv)."""
    return ResNet(STAGE_BLOCKS[50], num_classes, **options)


@register_model(family="resnet", label="ResNet-101", depth=101, architecture=ResNet,
                **_torchvision(tvm.ResNet101_Weights.IMAGENET1K_V1))
def resnet101(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-101 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[101], num_classes, **options)


@register_model(family="resnet", label="ResNet-152", depth=152, architecture=ResNet,
                **_torchvision(tvm.ResNet152_Weights.IMAGENET1K_V1))
def resnet152(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-152 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[152], num_classes, **options)


# torchvision's DenseNet-121 file has old-style names ("norm.1") that torchvision renames
# on loading: its figures are recorded, its weights are not offered here.
@register_model(family="densenet", label="DenseNet-121", depth=121, architecture=DenseNet,
                reported=_torchvision(tvm.DenseNet121_Weights.IMAGENET1K_V1)["reported"])
def densenet121(num_classes: int = 1000, **options) -> DenseNet:
    """torchvision's DenseNet-121, the baseline of DedNet-121."""
    return DenseNet(num_classes, **options)


@register_model(family="dednet", label="DedNet-121", depth=121, architecture=DedNet)
def dednet121(num_classes: int = 1000, **options) -> DedNet:
    """DedNet-121: DenseNet-121 with involution in its dense layers (see :class:`DedNet`)."""
    return DedNet(num_classes, **options)


# Tiny models for fast tests, as timm's test_* models: one block per stage, a quarter
# of the width.
@register_model(family="rednet", label="RedNet (test)", depth=14, architecture=RedNet)
def test_rednet(num_classes: int = 1000, **options) -> RedNet:
    """A tiny RedNet for tests: one bottleneck per stage, a quarter of the width."""
    return RedNet(STAGE_BLOCKS[14], num_classes, **{"planes": 16, **options})


@register_model(family="resnet", label="ResNet (test)", depth=14, architecture=ResNet)
def test_resnet(num_classes: int = 1000, **options) -> ResNet:
    """A tiny ResNet for tests: one bottleneck per stage, a quarter of the width."""
    return ResNet(STAGE_BLOCKS[14], num_classes, **{"planes": 16, **options})


def create_model(name: str, num_classes: int = 1000,
                 pretrained: bool | str | Path | Mapping | None = None, **options) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: one of :func:`list_models`.
        num_classes: classifier size (1000 for ImageNet, 257 for Caltech-256).
        pretrained: the official ImageNet weights: ``True`` downloads them
            where a direct download exists (torchvision's ResNets) and
            otherwise says where to get them; a path (or loaded dict) loads
            that file (the official RedNet mmcls checkpoints, see
            ``model_info(name).weights``). With another ``num_classes`` the
            classifier is re-initialised.
        **options: model options, ``model_info(name).options`` (e.g.
            ``kernel_size``, ``group_channels``, ``reduction_ratio``,
            ``drop_rate``, ``zero_init_residual``); others are refused.
    """
    info = model_info(name)
    model = info.builder(num_classes=num_classes, **options)
    if pretrained is not None and pretrained is not False:
        load_pretrained(model, info, pretrained)
    return model
