"""DenseNet-121 and DedNet-121, the course project's involution DenseNet."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from involution.layers import Involution2d
from involution.models.common import (
    TimmConventions,
    check_head,
    in_execution_order,
    kaiming_init,
    run_recomputing,
    torchvision_record,
)
from involution.models.registry import register_model

__all__ = ["DenseNet", "DedNet", "densenet121", "dednet121"]

# timm orders parameter groups by the numbers their pattern matched, then by this suffix,
# which puts a group into the one before it (timm's MATCH_PREV_GROUP): in DenseNet's
# group_matcher, transition i joins the last layer of dense block i.
JOIN_THE_GROUP_BEFORE = (99999,)


class DenseNet(TimmConventions, tvm.DenseNet):
    """torchvision's DenseNet-121 with dropout before the classifier and timm's conventions.

    (torchvision's own ``drop_rate`` is dropout inside every dense layer; this
    one, as for the ResNets, acts on the pooled features.) ``num_classes``,
    ``in_chans`` and ``global_pool`` are as for :class:`~involution.models.resnet.ResNet`.
    """

    classifier_name = "classifier"
    first_conv = "features.conv0"

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0, in_chans: int = 3,
                 global_pool: str = "avg"):
        check_head(num_classes, in_chans, global_pool)
        # (A model without a classifier gets it removed by _finish_head.)
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes or 1000)
        if in_chans != 3:
            self.features.conv0 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.features.conv0.weight)  # as torchvision initialises it
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = self.classifier.in_features
        self._finish_head(num_classes, in_chans, global_pool)
        self.feature_info = [{"num_chs": 64, "reduction": 2, "module": "features.relu0"}] + [
            {"num_chs": channels, "reduction": 4 * 2 ** i, "module": f"features.denseblock{i + 1}"}
            for i, channels in enumerate((256, 512, 1024, 1024))]
        in_execution_order(self, ["features", "avgpool", "dropout", "classifier"])

    def feature_stages(self) -> list:
        # Each feature_info map is the output of one of features' children: cut there.
        names = [name for name, _ in self.features.named_children()]
        ends = [names.index(f["module"].removeprefix("features.")) + 1 for f in self.feature_info]
        return [functools.partial(run_recomputing, self.features[start:end])
                for start, end in zip([0] + ends[:-1], ends)]

    def features_end(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm, and the ReLU torchvision applies after it."""
        return F.relu(self.features.norm5(x))

    def dense_blocks(self) -> list[nn.Module]:
        return [m for m in self.features if isinstance(m, tvm.densenet._DenseBlock)]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for recomputation in backward: each dense block keeps only its input
        for backward and runs again there (exact gradients and running statistics; torchvision's
        ``memory_efficient`` would update the running statistics twice)."""
        for block in self.dense_blocks():
            block.recompute = enable
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups, in forward order: the stem, then each dense block with its
        transition (``coarse``) or each dense layer, the last one of a block with the transition
        after it; the rest (the final norm, the classifier) comes last. For layer-wise lr decay."""
        blocks = r"^features\.(?:denseblock|transition)(\d+)\." if coarse else [
            (r"^features\.denseblock(\d+)\.denselayer(\d+)\.", None),
            (r"^features\.transition(\d+)\.", JOIN_THE_GROUP_BEFORE)]
        return {"stem": r"^features\.(?:conv0|norm0)\.", "blocks": blocks}


class DedNet(DenseNet):
    """DedNet-121, the course project's experiment: DenseNet-121 whose dense
    layers use a KxK involution (plus a 1x1 conv to the growth rate) instead
    of their 3x3 convolution.

    Involution keeps the channel count, while the 3x3 conv it replaces also
    maps bn_size*growth_rate channels to growth_rate; the 1x1 conv does that.
    """

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0, kernel_size: int = 7,
                 in_chans: int = 3, global_pool: str = "avg"):
        super().__init__(num_classes, drop_rate, in_chans, global_pool)
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
