"""What every model family here shares: timm's classifier interface over torchvision's
module names, torchvision's initialisation, the stage layout, and argument checks."""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from involution.models.registry import OfficialWeights, Reported
from involution.ops.geometry import is_positive_int

__all__ = ["STAGE_BLOCKS", "ClassifierInterface", "check_num_classes", "kaiming_init", "in_execution_order",
           "stage_info", "torchvision_record"]

# Bottleneck blocks per stage for each depth (depth = 3 * blocks + 2).
STAGE_BLOCKS = {
    14: (1, 1, 1, 1),  # the tiny test models
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def check_num_classes(num_classes) -> None:
    """Refuse a classifier size that is not a positive int, with the usual values in the message."""
    # nn.Linear accepts 0 outputs and fails on -1 with a tensor error: say what is wrong instead.
    if not is_positive_int(num_classes):
        raise ValueError("num_classes must be a positive int (257 for Caltech-256, 1000 for "
                         f"ImageNet), got {num_classes!r}")


def kaiming_init(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, for the modules RedNet adds."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def in_execution_order(module: nn.Module, names: list[str]) -> None:
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


class ClassifierInterface:
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
            check_num_classes(num_classes)
        head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        setattr(self, self.classifier_name, head)


def stage_info(planes: int, stem: dict) -> list[dict]:
    """timm's ``feature_info``: the stem's output, then each stage's channels and stride."""
    return [stem] + [{"num_chs": 4 * planes * 2 ** i, "reduction": 4 * 2 ** i,
                      "module": f"layer{i + 1}"} for i in range(4)]



def torchvision_record(weights: tvm.WeightsEnum) -> dict:
    """The record of a model whose official weights are torchvision's, read from their meta."""
    meta = weights.meta
    accuracy = meta["_metrics"]["ImageNet-1K"]
    citation = f"reported in torchvision's {type(weights).__name__}.{weights.name} metadata"
    return {"reported": Reported("torchvision", citation, meta["num_params"] / 1e6, meta["_ops"],
                                 accuracy["acc@1"], accuracy["acc@5"], meta["num_params"]),
            "weights": OfficialWeights(page=f"torchvision.models.{type(weights).__name__}",
                                       checkpoint_format="torchvision", url=weights.url)}
