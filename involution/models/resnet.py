"""The ResNet baselines: torchvision's bottleneck ResNet with timm's interface.

RedNet's stage layouts with 3x3 convolutions (ResNet-26/38) and torchvision's
ResNet-50/101/152, whose official ImageNet weights load directly.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models import resnet as torchvision_resnet

from involution.layers import recompute_in_backward, recomputing
from involution.models.common import (
    STAGE_BLOCKS,
    TimmConventions,
    check_head,
    in_execution_order,
    kaiming_init,
    stage_info,
    torchvision_record,
)
from involution.models.registry import register_model
from involution.ops.geometry import is_positive_int

__all__ = ["ResNet", "Bottleneck", "resnet26", "resnet38", "resnet50", "resnet101", "resnet152", "test_resnet"]


class Bottleneck(torchvision_resnet.Bottleneck):
    """torchvision's bottleneck block, which can recompute its activations in backward.

    ``recompute`` (set by :meth:`ResNet.set_grad_checkpointing`): keep only the
    block's input for backward and run the block again there, with exactly the
    gradients and running statistics of the plain forward.
    """

    recompute = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if recomputing(self):
            return recompute_in_backward(self, x, forward=super().forward)
        return super().forward(x)


class ResNet(TimmConventions, tvm.ResNet):
    """torchvision's bottleneck ResNet with optional dropout before the classifier.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[50]``.
        num_classes: size of the linear classifier (0: none, the model returns
            its pooled features).
        drop_rate: dropout probability applied to the pooled features.
        zero_init_residual: start every block's last BN at zero, so each
            residual block begins as the identity (the official RedNet and
            mmcls ResNet recipe; torchvision's default is False).
        planes: bottleneck width of the first stage (64 in every published
            ResNet and RedNet; each stage doubles it, and a block's output
            has 4x as many channels). The tiny test models use 16.
        in_chans: channels of the input images (3 for RGB).
        global_pool: ``"avg"``, or ``""`` for none (with ``num_classes=0``: the model
            returns its feature map), as in timm.
        small_input: for small images (64 px and below): drop the stem's max pool, so
            the stages run at twice the resolution (a 64 px image leaves the last stage
            at 4x4 instead of 2x2). Everything else is unchanged; the official models
            keep the pool (False).
    """

    stem_pattern = r"^(?:conv1|bn1)\."  # the stem's parameters, for group_matcher

    def __init__(self, layers, num_classes: int = 1000, drop_rate: float = 0.0,
                 zero_init_residual: bool = True, planes: int = 64, in_chans: int = 3,
                 global_pool: str = "avg", small_input: bool = False):
        check_head(num_classes, in_chans, global_pool)
        if not isinstance(small_input, bool):
            raise ValueError(f"small_input must be True or False, got {small_input!r}")
        if not is_positive_int(planes):
            raise ValueError(f"planes must be a positive int (64 in published models), "
                             f"got {planes!r}")
        self._planes = planes  # read by _make_layer, which torchvision's __init__ calls
        # (A model without a classifier gets it removed by _finish_head.)
        super().__init__(Bottleneck, list(layers), num_classes=num_classes or 1000,
                         zero_init_residual=zero_init_residual)
        if self.fc.in_features != self.inplanes:  # torchvision sizes fc for 64 planes
            self.fc = nn.Linear(self.inplanes, num_classes or 1000)
        if in_chans != 3:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            kaiming_init(self.conv1)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = self.fc.in_features
        self._finish_head(num_classes, in_chans, global_pool)
        if small_input:
            self.maxpool = nn.Identity()
        self.small_input = small_input
        self.feature_info = stage_info(planes, {"num_chs": 64, "reduction": 2, "module": "relu"},
                                       small_input)
        in_execution_order(self, self._stem_names() + [
            "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "dropout", "fc"])

    def _stem_names(self) -> list[str]:
        return ["conv1", "bn1", "relu"]

    def _make_layer(self, block, planes: int, *args, **kwargs) -> nn.Sequential:
        # torchvision asks for 64, 128, 256 and 512 planes: scale them to this model's width.
        return super()._make_layer(block, planes * self._planes // 64, *args, **kwargs)

    def stem_unpooled(self, x: torch.Tensor) -> torch.Tensor:
        """The stem up to its max pool: the first ``feature_info`` map."""
        return self.relu(self.bn1(self.conv1(x)))

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and its max pool: the input of the first stage."""
        return self.maxpool(self.stem_unpooled(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling."""
        x = self.stem_forward(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def feature_stages(self) -> list:
        return [self.stem_unpooled, lambda x: self.layer1(self.maxpool(x)),
                self.layer2, self.layer3, self.layer4]

    def bottlenecks(self) -> list[Bottleneck]:
        return [m for m in self.modules() if isinstance(m, Bottleneck)]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for recomputation in backward: each bottleneck block keeps only its
        input for backward and runs again there (exact gradients and running statistics)."""
        for block in self.bottlenecks():
            block.recompute = enable
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups, in forward order: the stem, then each stage (``coarse``)
        or each block; the rest (the classifier) comes last. For layer-wise lr decay."""
        return {"stem": self.stem_pattern, "blocks": r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"}


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
