"""What every model family here shares: timm's model conventions over torchvision's
module names, torchvision's initialisation, the stage layout, and argument checks."""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torchvision import models as tvm

from involution.layers import recompute_in_backward, recomputing
from involution.models.registry import OfficialWeights, Reported
from involution.ops.geometry import is_positive_int

__all__ = ["STAGE_BLOCKS", "GLOBAL_POOLS", "TimmConventions", "check_head", "feature_indices",
           "run_recomputing", "kaiming_init", "in_execution_order", "stage_info", "torchvision_record"]

# Bottleneck blocks per stage for each depth (depth = 3 * blocks + 2).
STAGE_BLOCKS = {
    14: (1, 1, 1, 1),  # the tiny test models
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

# The global pooling a model can have: average pooling, or none ("": the head gets the map).
GLOBAL_POOLS = ("avg", "")


def check_head(num_classes, in_chans, global_pool) -> None:
    """Refuse a head or an input that cannot be built, saying what is wrong and what works."""
    # nn.Linear accepts 0 outputs and fails on -1 with a tensor error: say what is wrong instead.
    if not (is_positive_int(num_classes) or (type(num_classes) is int and num_classes == 0)):
        raise ValueError("num_classes must be a positive int (257 for Caltech-256, 1000 for "
                         f"ImageNet) or 0 for no classifier, got {num_classes!r}")
    if not is_positive_int(in_chans):
        raise ValueError(f"in_chans must be a positive int (3 for RGB images), got {in_chans!r}")
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be 'avg' or '' (no pooling), got {global_pool!r}")
    if not global_pool and num_classes:
        raise ValueError(f"global_pool='' (no pooling) leaves a feature map, which a linear classifier "
                         f"cannot take: use num_classes=0 to get the map, or global_pool='avg' to "
                         f"classify into {num_classes} classes")


def feature_indices(count: int, indices: int | Sequence[int] | None) -> list[int]:
    """Which of ``count`` feature maps ``indices`` names, as timm reads it: None all of
    them, an int n the last n, a sequence those it lists (negative ones from the end)."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"indices={indices} asks for the last {indices} feature maps, of {count}: "
                             f"use 1 to {count}")
        return list(range(count - indices, count))
    chosen = []
    for index in indices:
        if not -count <= index < count:
            raise ValueError(f"feature index {index} is out of range: the model has {count} feature "
                             f"maps, 0 to {count - 1} (or -{count} to -1 from the end)")
        chosen.append(index % count)
    if not chosen:
        raise ValueError(f"indices names no feature map: give at least one of 0 to {count - 1}")
    return chosen


def run_recomputing(modules: Iterable[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Run ``modules`` one after the other; one whose ``recompute`` flag is set (by
    ``set_grad_checkpointing``) keeps only its input for backward and runs again there."""
    for module in modules:
        x = recompute_in_backward(module, x) if recomputing(module) else module(x)
    return x


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


class TimmConventions:
    """timm's model conventions, over torchvision's module names (docs/timm.md).

    A subclass checks the standard arguments (:func:`check_head`), builds its network
    with torchvision, sets ``num_features`` and the ``avgpool``/``dropout`` modules,
    then calls :meth:`_finish_head`. It names its ``classifier_name`` and
    ``first_conv``, sets ``feature_info``, and defines :meth:`feature_stages` (the
    forward pass cut at the ``feature_info`` maps), ``set_grad_checkpointing`` and
    ``group_matcher``.
    """

    classifier_name = "fc"
    first_conv = "conv1"  # the name of the convolution that takes the image
    grad_checkpointing = False

    def _finish_head(self, num_classes: int, in_chans: int, global_pool: str) -> None:
        """The standard arguments (checked by :func:`check_head`), after torchvision built a
        pooled head with a classifier."""
        if not global_pool:
            self.avgpool = nn.Identity()
        if not num_classes:
            setattr(self, self.classifier_name, nn.Identity())
        self.num_classes, self.in_chans, self.global_pool = num_classes, in_chans, global_pool
        self.head_hidden_size = self.num_features  # no layer between the pooling and the classifier

    # -- the head ---------------------------------------------------------------------------

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pooling, dropout and the classifier (``pre_logits``: stop before it)."""
        x = self.avgpool(x)
        if self.global_pool:
            x = torch.flatten(x, 1)
        x = self.dropout(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        return self.classifier_name if name_only else getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes``, on the model's device, in its dtype and its
        training mode; 0 removes it (the model returns its pooled features), as in timm.

        ``global_pool``: ``"avg"``, or ``""`` for none (with ``num_classes=0``: the
        model returns its feature map). None keeps the model's pooling, or brings
        average pooling back when a model without one gets a classifier again.
        """
        if global_pool is None:
            global_pool = self.global_pool or ("avg" if num_classes else "")
        check_head(num_classes, self.in_chans, global_pool)
        reference = next(self.parameters())  # the stem's first weight
        head = (nn.Linear(self.num_features, num_classes, device=reference.device, dtype=reference.dtype)
                if num_classes else nn.Identity())
        # New modules start in training mode: give them the model's, as timm's model tests check.
        self.avgpool = (nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()).train(self.training)
        setattr(self, self.classifier_name, head.train(self.training))
        self.num_classes, self.global_pool = num_classes, global_pool

    # -- features ---------------------------------------------------------------------------

    def feature_stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """The forward pass up to the last ``feature_info`` map, cut at each of them:
        stage i takes map i - 1 (the image for the first) and returns map i."""
        raise NotImplementedError

    def features_end(self, x: torch.Tensor) -> torch.Tensor:
        """What follows the last ``feature_info`` map in ``forward_features`` (a final norm)."""
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling."""
        for stage in self.feature_stages():
            x = stage(x)
        return self.features_end(x)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """timm's feature API: the ``feature_info`` maps that ``indices`` names, with the output.

        Args:
            indices: None for every map, an int n for the last n, or a sequence of map
                indices (negative ones from the end).
            norm: give the last map the final norm of ``forward_features``, where the
                model has one (DenseNet); the ResNets have none.
            stop_early: end the forward pass at the last map asked for; the output is
                then that map, not the final features.
            output_fmt: ``"NCHW"``, the only layout these models have.
            intermediates_only: return only the list of maps.

        Returns:
            ``(final features, [maps])``, or ``[maps]`` with ``intermediates_only``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt {output_fmt!r} is not available: these models give only 'NCHW' maps")
        stages = self.feature_stages()
        last = len(stages) - 1
        taken = feature_indices(len(stages), indices)
        if stop_early:
            stages = stages[:max(taken) + 1]
        intermediates = []
        for index, stage in enumerate(stages):
            x = stage(x)
            if index in taken:
                intermediates.append(self.features_end(x) if norm and index == last else x)
        if intermediates_only:
            return intermediates
        return (self.features_end(x) if len(stages) == last + 1 else x), intermediates

    # -- sharing ----------------------------------------------------------------------------

    def save_pretrained(self, folder, label_names: Sequence[str] | None = None):
        """Save the model to ``folder``: ``model.safetensors`` and ``config.json`` (its name, options,
        class names and preprocessing); :func:`involution.models.hub.save_pretrained`."""
        from involution.models.hub import save_pretrained
        return save_pretrained(self, folder, label_names=label_names)

    @classmethod
    def from_pretrained(cls, source, **kwargs):
        """The model saved in ``source`` (a folder, or a Hugging Face Hub id):
        :func:`involution.models.hub.from_pretrained`; it must be one of this class."""
        from involution.models.hub import from_pretrained
        model = from_pretrained(source, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{source} holds a {type(model).__name__} ({model.pretrained_cfg['architecture']}), "
                            f"not a {cls.__name__}: load it with involution.from_pretrained")
        return model

    # -- optimisation -----------------------------------------------------------------------

    def no_weight_decay(self) -> set[str]:
        """Parameters to spare from weight decay besides the 1-D ones (biases, norms), which
        timm's optimiser factory spares anyway: none here (no embeddings, no tokens)."""
        return set()


def stage_info(planes: int, stem: dict, small_input: bool = False) -> list[dict]:
    """timm's ``feature_info``: the stem's output, then each stage's channels and stride
    (the first stage at a 4th of the image, or at half of it without the stem's max pool)."""
    first = 2 if small_input else 4
    return [stem] + [{"num_chs": 4 * planes * 2 ** i, "reduction": first * 2 ** i,
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
