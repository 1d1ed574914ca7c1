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
        num_classes: classifier size (1000 for ImageNet, 257 for Caltech-256); 0 for
            none: the model returns its pooled features (or, with ``global_pool=""``,
            its feature map).
        pretrained: the official ImageNet weights: ``True`` downloads them
            where a direct download exists (torchvision's ResNets) and
            otherwise says where to get them; a path (or loaded dict) loads
            that file (the official RedNet mmcls checkpoints, see
            ``model_info(name).weights``). With another ``num_classes`` the
            classifier is re-initialised.
        **options: what every model takes besides ``num_classes``: ``in_chans``
            (3), ``global_pool`` (``"avg"``, or ``""`` for none), ``device`` and
            ``dtype`` (to build it there and in that type, as timm's models);
            and the model's own options, ``model_info(name).options`` (e.g.
            ``kernel_size``, ``group_channels``, ``reduction_ratio``,
            ``drop_rate``, ``zero_init_residual``). Others are refused with a
            TypeError that names them.
    """
    info = model_info(name)
    model = info.builder(num_classes=num_classes, **options)
    if pretrained is not None and pretrained is not False:
        load_pretrained(model, info, pretrained)
    return model
