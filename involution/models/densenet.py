"""DenseNet-121 and DedNet-121, the course project's involution DenseNet."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from involution.layers import Involution2d
from involution.models.common import (
    ClassifierInterface,
    check_num_classes,
    in_execution_order,
    kaiming_init,
    torchvision_record,
)
from involution.models.registry import register_model

__all__ = ["DenseNet", "DedNet", "densenet121", "dednet121"]


class DenseNet(ClassifierInterface, tvm.DenseNet):
    """torchvision's DenseNet-121 with dropout before the classifier and timm's interface.

    (torchvision's own ``drop_rate`` is dropout inside every dense layer; this
    one, as for the ResNets, acts on the pooled features.)
    """

    classifier_name = "classifier"

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0):
        check_num_classes(num_classes)
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = self.classifier.in_features
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "features.relu0"}] + [
            {"num_chs": channels, "reduction": 4 * 2 ** i, "module": f"features.denseblock{i + 1}"}
            for i, channels in enumerate((256, 512, 1024, 1024))]
        in_execution_order(self, ["features", "avgpool", "dropout", "classifier"])

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
                kaiming_init(module.conv2)


# torchvision's DenseNet-121 file has old-style names ("norm.1") that torchvision renames
# on loading: its figures are recorded, its weights are not offered here.
@register_model(family="densenet", label="DenseNet-121", depth=121, architecture=DenseNet,
                reported=torchvision_record(tvm.DenseNet121_Weights.IMAGENET1K_V1)["reported"])
def densenet121(num_classes: int = 1000, **options) -> DenseNet:
    """torchvision's DenseNet-121, the baseline of DedNet-121."""
    return DenseNet(num_classes, **options)


@register_model(family="dednet", label="DedNet-121", depth=121, architecture=DedNet)
def dednet121(num_classes: int = 1000, **options) -> DedNet:
    """DedNet-121: DenseNet-121 with involution in its dense layers (see :class:`DedNet`)."""
    return DedNet(num_classes, **options)
