"""The ResNet baselines: torchvision's bottleneck ResNet with timm's interface.

RedNet's stage layouts with 3x3 convolutions (ResNet-26/38) and torchvision's
ResNet-50/101/152, whose official ImageNet weights load directly.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import Bottleneck

from involution.models.common import (
    STAGE_BLOCKS,
    ClassifierInterface,
    check_num_classes,
    in_execution_order,
    stage_info,
    torchvision_record,
)
from involution.models.registry import register_model
from involution.ops.geometry import is_positive_int

__all__ = ["ResNet", "resnet26", "resnet38", "resnet50", "resnet101", "resnet152", "test_resnet"]


class ResNet(ClassifierInterface, tvm.ResNet):
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
        check_num_classes(num_classes)
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
        self.feature_info = stage_info(planes, {"num_chs": 64, "reduction": 2, "module": "relu"})
        in_execution_order(self, self._stem_names() + [
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


@register_model(family="resnet", label="ResNet-26", depth=26, architecture=ResNet)
def resnet26(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-26 baseline: RedNet-26's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[26], num_classes, **options)


@register_model(family="resnet", label="ResNet-38", depth=38, architecture=ResNet)
def resnet38(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-38 baseline: RedNet-38's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[38], num_classes, **options)


@register_model(family="resnet", label="ResNet-50", depth=50, architecture=ResNet,
                **torchvision_record(tvm.ResNet50_Weights.IMAGENET1K_V1))
def resnet50(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-50 (torchvision's, V1.5: stride on the 3x3 conv)."""
    return ResNet(STAGE_BLOCKS[50], num_classes, **options)


@register_model(family="resnet", label="ResNet-101", depth=101, architecture=ResNet,
                **torchvision_record(tvm.ResNet101_Weights.IMAGENET1K_V1))
def resnet101(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-101 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[101], num_classes, **options)


@register_model(family="resnet", label="ResNet-152", depth=152, architecture=ResNet,
                **torchvision_record(tvm.ResNet152_Weights.IMAGENET1K_V1))
def resnet152(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-152 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[152], num_classes, **options)


# Tiny models for fast tests, as timm's test_* models: one block per stage, a quarter
@register_model(family="resnet", label="ResNet (test)", depth=14, architecture=ResNet)
def test_resnet(num_classes: int = 1000, **options) -> ResNet:
    """A tiny ResNet for tests: one bottleneck per stage, a quarter of the width."""
    return ResNet(STAGE_BLOCKS[14], num_classes, **{"planes": 16, **options})
