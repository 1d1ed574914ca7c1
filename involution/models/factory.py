"""Build a registered model by name: the one entry point, as timm's ``create_model``."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from torch import nn

from involution.models.pretrained import load_pretrained
from involution.models.registry import model_info

__all__ = ["create_model"]


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
