"""RedNet (Li et al., CVPR 2021): ResNet with involution, built as the official models.

RedNet is "torchvision's ResNet with involution in the bottleneck and a
different stem", so that is how it is built here: torchvision's
:class:`~torchvision.models.ResNet` with Bottleneck blocks, whose 3x3
convolution (``conv2``) is replaced by a 7x7 :class:`~involution.layers.involution.Involution2d`
with the block's stride, and whose 7x7 stem convolution is replaced by the
official involution stem. Everything else (stage widths, strides,
projection shortcuts, zero-initialised last BN of each block) is torchvision's.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from involution.layers import Involution2d, recompute_in_backward, recomputing
from involution.models.common import STAGE_BLOCKS, check_head, in_execution_order, kaiming_init
from involution.models.pretrained import OFFICIAL_MODEL_ZOO
from involution.models.registry import OfficialWeights, Reported, register_model
from involution.models.resnet import ResNet

__all__ = ["RedNet", "rednet26", "rednet38", "rednet50", "rednet101", "rednet152", "test_rednet"]


class RedNet(ResNet):
    """RedNet (Li et al., CVPR 2021): ResNet with involution.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[26]``.
        num_classes, drop_rate, zero_init_residual, planes, in_chans, global_pool, small_input: as
            for :class:`ResNet`.
        kernel_size: K of the bottleneck involutions (official: 7).
        group_channels: channels per involution group (official: 16).
        reduction_ratio: channel reduction in the kernel generator (official: 4).
        recompute: in training, keep less for backward and recompute it there:
            every involution's generated kernels (see :class:`Involution2d`)
            and the stem's 112x112 maps up to its last convolution. Exact
            gradients and the same parameter names; the docs' Performance page
            says what it saves and costs. timm's ``set_grad_checkpointing``
            switches it too.
    """

    first_conv = "stem.0.0"
    stem_pattern = r"^stem\."

    def __init__(self, layers, num_classes: int = 1000, kernel_size: int = 7,
                 group_channels: int = 16, reduction_ratio: int = 4, drop_rate: float = 0.0,
                 zero_init_residual: bool = True, planes: int = 64, recompute: bool = False,
                 in_chans: int = 3, global_pool: str = "avg", small_input: bool = False):
        check_head(num_classes, in_chans, global_pool)
        # (ResNet's stem, which takes the image, is replaced below.)
        super().__init__(layers, num_classes, drop_rate, zero_init_residual, planes,
                         global_pool=global_pool, small_input=small_input)
        self.in_chans = in_chans
        involution = dict(group_channels=group_channels, reduction_ratio=reduction_ratio)
        # The official stem: a strided 3x3 conv, a 3x3 involution and a 3x3 conv
        # instead of ResNet's single 7x7 conv. The max pool is kept.
        del self.conv1, self.bn1, self.relu
        self.stem = nn.Sequential(
            Conv2dNormActivation(in_chans, 32, kernel_size=3, stride=2),
            Involution2d(32, kernel_size=3, **involution),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            Conv2dNormActivation(32, 64, kernel_size=3),
        )
        kaiming_init(self.stem)
        self.feature_info[0] = {"num_chs": 64, "reduction": 2, "module": "stem"}
        in_execution_order(self, ["stem", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                   "avgpool", "dropout", "fc"])
        for block in self.bottlenecks():
            # torchvision puts a block's stride on its 3x3 conv: so does RedNet.
            block.conv2 = Involution2d(block.conv2.in_channels, kernel_size,
                                       stride=block.conv2.stride[0], **involution)
            kaiming_init(block.conv2)
        self.set_recompute(recompute)

    def set_recompute(self, recompute: bool) -> None:
        """Turn recomputation in backward on or off (the ``recompute`` option)."""
        self.recompute = self.grad_checkpointing = recompute
        for block in self.bottlenecks():
            block.conv2.recompute = recompute
        # The stem's involution is recomputed with the rest of its span (stem_forward).

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's name for the ``recompute`` option (:meth:`set_recompute`)."""
        self.set_recompute(enable)

    # Of the stem's 112x112 maps, with recomputation, only the last convolution's input and
    # output are kept for backward (that convolution is the costly one to run again); the
    # others, the stem involution's kernels among them, are recomputed. The batch norm to
    # protect in the last span is that convolution's (stem[4]); maxpool has none.
    _KEEP_IN_STEM = (torch.ops.aten.convolution.default,)

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not recomputing(self):
            return self.maxpool(self.stem(x))
        x = recompute_in_backward(self.stem[:4], x)
        return recompute_in_backward(self.stem[4], x, forward=self._stem_tail, keep=self._KEEP_IN_STEM)

    def stem_unpooled(self, x: torch.Tensor) -> torch.Tensor:
        if not recomputing(self):
            return self.stem(x)
        x = recompute_in_backward(self.stem[:4], x)
        return recompute_in_backward(self.stem[4], x, keep=self._KEEP_IN_STEM)

    def _stem_tail(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.stem[4](x))


_PAPER = "reported by Li et al. (CVPR 2021), official model zoo, ImageNet-1k"
_REDNET_WEIGHTS = OfficialWeights(page=OFFICIAL_MODEL_ZOO, checkpoint_format="mmcls")


def _paper(params: int, params_m: float, gflops: float, top1: float, top5: float) -> dict:
    """The official model zoo's row for a RedNet; ``params`` is the exact count of the
    official architecture with a 1000-class head."""
    return {"reported": Reported("paper", _PAPER, params_m, gflops, top1, top5, params),
            "weights": _REDNET_WEIGHTS}


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


# A tiny model for fast tests, as timm's test_* models: one block per stage, a quarter
# of the width.
@register_model(family="rednet", label="RedNet (test)", depth=14, architecture=RedNet)
def test_rednet(num_classes: int = 1000, **options) -> RedNet:
    """A tiny RedNet for tests: one bottleneck per stage, a quarter of the width."""
    return RedNet(STAGE_BLOCKS[14], num_classes, **{"planes": 16, **options})
