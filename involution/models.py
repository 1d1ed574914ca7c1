"""RedNet, its ResNet baselines, DedNet, and official-checkpoint loading.

RedNet is "torchvision's ResNet with involution in the bottleneck and a
different stem", so that is how it is built here: torchvision's
:class:`~torchvision.models.ResNet` with Bottleneck blocks, whose 3x3
convolution (``conv2``) is replaced by a 7x7 :class:`~involution.Involution2d`
with the block's stride, and whose 7x7 stem convolution is replaced by the
official involution stem. Everything else (stage widths, strides,
projection shortcuts, zero-initialised last BN of each block) is torchvision's.

Use the registry::

    >>> from involution.models import create_model, list_models
    >>> model = create_model("rednet26", num_classes=257)
    >>> list_models()
    ['dednet121', 'densenet121', 'rednet101', 'rednet152', 'rednet26', ...]
"""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import Bottleneck
from torchvision.ops import Conv2dNormActivation

from .functional import is_positive_int
from .layers import Involution2d

__all__ = [
    "ResNet", "RedNet", "STAGE_BLOCKS", "create_model", "list_models",
    "load_official_checkpoint", "convert_official_state_dict",
    "rednet26", "rednet38", "rednet50", "rednet101", "rednet152",
    "resnet26", "resnet38", "resnet50", "resnet101", "resnet152",
    "dednet121", "densenet121", "OFFICIAL_MODEL_ZOO",
]

# Bottleneck blocks per stage for each depth (depth = 3 * blocks + 2).
STAGE_BLOCKS = {
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

OFFICIAL_MODEL_ZOO = (
    "https://github.com/d-li14/involution#model-zoo (ImageNet RedNet checkpoints in mmcls "
    "format, linked from the official repository's README)"
)


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


class ResNet(tvm.ResNet):
    """torchvision's bottleneck ResNet with optional dropout before the classifier.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[50]``.
        num_classes: size of the linear classifier.
        drop_rate: dropout probability applied to the pooled features.
        zero_init_residual: start every block's last BN at zero, so each
            residual block begins as the identity (the official RedNet and
            mmcls ResNet recipe; torchvision's default is False).
    """

    def __init__(self, layers, num_classes: int = 1000, drop_rate: float = 0.0,
                 zero_init_residual: bool = True):
        _check_num_classes(num_classes)
        super().__init__(Bottleneck, list(layers), num_classes=num_classes,
                         zero_init_residual=zero_init_residual)
        self.dropout = nn.Dropout(drop_rate)

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global pooling."""
        x = self.stem_forward(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.fc(self.dropout(features))

    def bottlenecks(self) -> list[Bottleneck]:
        return [m for m in self.modules() if isinstance(m, Bottleneck)]


class RedNet(ResNet):
    """RedNet (Li et al., CVPR 2021): ResNet with involution.

    Args:
        layers: bottleneck blocks per stage, e.g. ``STAGE_BLOCKS[26]``.
        num_classes, drop_rate, zero_init_residual: as for :class:`ResNet`.
        kernel_size: K of the bottleneck involutions (official: 7).
        group_channels: channels per involution group (official: 16).
        reduction_ratio: channel reduction in the kernel generator (official: 4).
    """

    def __init__(self, layers, num_classes: int = 1000, kernel_size: int = 7,
                 group_channels: int = 16, reduction_ratio: int = 4, drop_rate: float = 0.0,
                 zero_init_residual: bool = True):
        super().__init__(layers, num_classes, drop_rate, zero_init_residual)
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
        for block in self.bottlenecks():
            # torchvision puts a block's stride on its 3x3 conv: so does RedNet.
            block.conv2 = Involution2d(block.conv2.in_channels, kernel_size,
                                       stride=block.conv2.stride[0], **involution)
            _kaiming_init(block.conv2)

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.stem(x))


def _dense_involution(dense_layer: nn.Module, kernel_size: int) -> nn.Module:
    """Involution over a dense layer's bottleneck, then a 1x1 conv to the growth rate.

    Involution keeps the channel count, while the 3x3 conv it replaces also
    maps bn_size*growth_rate channels to growth_rate; the 1x1 conv does that.
    """
    conv = dense_layer.conv2
    replacement = nn.Sequential(
        Involution2d(conv.in_channels, kernel_size),
        nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=1, bias=False),
    )
    _kaiming_init(replacement)
    return replacement


def _densenet(num_classes: int, drop_rate: float, involution_kernel_size: int | None):
    _check_num_classes(num_classes)
    model = tvm.densenet121(num_classes=num_classes)
    if involution_kernel_size is not None:
        for module in model.modules():
            if isinstance(module, tvm.densenet._DenseLayer):
                module.conv2 = _dense_involution(module, involution_kernel_size)
    model.classifier = nn.Sequential(nn.Dropout(drop_rate), model.classifier)
    return model


# -- the registry ------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def _register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[builder.__name__] = builder
    return builder


@_register
def rednet26(num_classes: int = 1000, **kwargs) -> RedNet:
    """RedNet-26: stages (1, 2, 4, 1); 9,233,166 parameters with 1000 classes."""
    return RedNet(STAGE_BLOCKS[26], num_classes, **kwargs)


@_register
def rednet38(num_classes: int = 1000, **kwargs) -> RedNet:
    """RedNet-38: stages (2, 3, 5, 2); 12,386,986 parameters with 1000 classes."""
    return RedNet(STAGE_BLOCKS[38], num_classes, **kwargs)


@_register
def rednet50(num_classes: int = 1000, **kwargs) -> RedNet:
    """RedNet-50: stages (3, 4, 6, 3); 15,540,806 parameters with 1000 classes."""
    return RedNet(STAGE_BLOCKS[50], num_classes, **kwargs)


@_register
def rednet101(num_classes: int = 1000, **kwargs) -> RedNet:
    """RedNet-101: stages (3, 4, 23, 3); 25,652,950 parameters with 1000 classes."""
    return RedNet(STAGE_BLOCKS[101], num_classes, **kwargs)


@_register
def rednet152(num_classes: int = 1000, **kwargs) -> RedNet:
    """RedNet-152: stages (3, 8, 36, 3); 33,984,582 parameters with 1000 classes."""
    return RedNet(STAGE_BLOCKS[152], num_classes, **kwargs)


@_register
def resnet26(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-26 baseline: RedNet-26's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[26], num_classes, **kwargs)


@_register
def resnet38(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-38 baseline: RedNet-38's stage layout with 3x3 convolutions."""
    return ResNet(STAGE_BLOCKS[38], num_classes, **kwargs)


@_register
def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50 (torchvision's, V1.5: stride on the 3x3 conv)."""
    return ResNet(STAGE_BLOCKS[50], num_classes, **kwargs)


@_register
def resnet101(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-101 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[101], num_classes, **kwargs)


@_register
def resnet152(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-152 (torchvision's)."""
    return ResNet(STAGE_BLOCKS[152], num_classes, **kwargs)


@_register
def densenet121(num_classes: int = 1000, drop_rate: float = 0.0) -> nn.Module:
    """torchvision's DenseNet-121, the baseline of DedNet-121."""
    return _densenet(num_classes, drop_rate, involution_kernel_size=None)


@_register
def dednet121(num_classes: int = 1000, drop_rate: float = 0.0, kernel_size: int = 7) -> nn.Module:
    """DedNet-121, the course project's experiment: DenseNet-121 whose dense
    layers use a KxK involution (plus a 1x1 conv to the growth rate) instead
    of their 3x3 convolution."""
    return _densenet(num_classes, drop_rate, involution_kernel_size=kernel_size)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 1000, pretrained: str | Path | None = None,
                 **kwargs) -> nn.Module:
    """Build a model by name.

    Args:
        name: one of :func:`list_models`.
        num_classes: classifier size (1000 for ImageNet, 257 for Caltech-256).
        pretrained: path to an official RedNet ImageNet checkpoint (mmcls
            format, see :data:`OFFICIAL_MODEL_ZOO`); with another
            ``num_classes`` the classifier is re-initialised.
        **kwargs: model options (``kernel_size``, ``group_channels``,
            ``reduction_ratio``, ``drop_rate``, ``zero_init_residual``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    model = _REGISTRY[name](num_classes=num_classes, **kwargs)
    if pretrained is not None:
        if not isinstance(model, RedNet):
            raise ValueError(f"pretrained= loads official RedNet checkpoints; {name!r} is not a "
                             "RedNet. Load other weights with model.load_state_dict().")
        load_official_checkpoint(model, pretrained)
    return model


# -- official checkpoints -----------------------------------------------------

# Official (mmcls) names -> ours, applied in order. mmcls wraps conv+BN(+ReLU)
# in a "ConvModule" with .conv/.bn children; torchvision's
# Conv2dNormActivation is a Sequential with children 0 (conv) and 1 (BN).
_OFFICIAL_KEY_RULES = [
    (r"^backbone\.", ""),
    (r"^head\.fc\.", "fc."),
    # Inside an involution: conv1 = the reducing ConvModule, conv2 = the spanning conv.
    (r"\.conv1\.conv\.", ".kernel_generator.reduce.0."),
    (r"\.conv1\.bn\.", ".kernel_generator.reduce.1."),
    (r"\.conv2\.conv\.", ".kernel_generator.span."),
    # The stem's ConvModules.
    (r"^stem\.(\d+)\.conv\.", r"stem.\1.0."),
    (r"^stem\.(\d+)\.bn\.", r"stem.\1.1."),
]


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official mmcls RedNet state_dict to this package's names."""
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in _OFFICIAL_KEY_RULES:
            key = re.sub(pattern, replacement, key)
        converted[key] = value
    return converted


def _load_file(path: Path):
    """``torch.load`` of tensors only, with a message that says what is wrong with the file.

    torch answers every failure with "re-run with weights_only=False", which
    cannot help a truncated download or an HTML error page saved as .pth.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; official RedNet weights are "
                                f"listed at {OFFICIAL_MODEL_ZOO}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(_unreadable_file_message(path, str(error))) from None


def _unreadable_file_message(path: Path, reason: str) -> str:
    # A pickle that names a Python class is a real checkpoint with extra objects in it.
    python_object = re.search(r"Unsupported global: GLOBAL ([\w.]+)", reason)
    if python_object:
        return (f"{path} holds Python objects besides tensors ({python_object.group(1)}), which "
                "are only loaded from trusted files: if you trust its source, load it with "
                "torch.load(path, weights_only=False) and pass the dict to "
                "load_official_checkpoint")
    size = path.stat().st_size
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", reason)
    if unpickler:
        detail = unpickler.group(1).strip()
    else:  # torch's first sentence; an empty file raises a bare EOFError
        detail = reason.split(". ")[0] or ("the file is empty" if size == 0 else "it ends early")
    return (f"{path} ({size} bytes) is not a PyTorch checkpoint ({detail}): it may be an "
            f"interrupted download or an error page; download it again from {OFFICIAL_MODEL_ZOO}")


def _read_checkpoint(checkpoint) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, (str, Path)):
        checkpoint = _load_file(Path(checkpoint).expanduser())
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if state and all(key.startswith("model.") for key in state):
        raise ValueError(
            "this is a checkpoint of this package's training (its tensors are named 'model.*'), "
            "not an official RedNet checkpoint: resume or evaluate it with --ckpt_path, or get "
            "the network with ImageClassifier.load_from_checkpoint(path).model")
    return state


_CLASSIFIER = {"fc.weight": "weight (head.fc.weight)", "fc.bias": "bias (head.fc.bias)"}


def _check_classifier_is_whole(state: Mapping[str, torch.Tensor]) -> None:
    """A weight without its bias (or the reverse) would load beside a fresh half: refuse it."""
    present = [name for name in _CLASSIFIER if name in state]
    if len(present) == 1:
        (lacking,) = set(_CLASSIFIER) - set(present)
        raise ValueError(
            f"checkpoint has a classifier {_CLASSIFIER[present[0]]} but no "
            f"{_CLASSIFIER[lacking]}: the file is incomplete. Download it again from "
            f"{OFFICIAL_MODEL_ZOO}, or remove both head.fc tensors to train a fresh classifier")


def load_official_checkpoint(model: RedNet, checkpoint) -> RedNet:
    """Load an official RedNet ImageNet checkpoint into ``model``.

    Args:
        model: a :class:`RedNet` of the checkpoint's depth.
        checkpoint: a path, or an already loaded dict, in the official mmcls
            format (``{"state_dict": {"backbone.*": ..., "head.fc.*": ...}}``;
            a bare state_dict works too).

    Every backbone tensor must match by name and shape. If the checkpoint's
    classifier has another number of classes than ``model`` (e.g. 1000 vs
    257), the classifier keeps its fresh initialisation and a warning says so.
    A classifier weight without its bias, a checkpoint of this package's own
    training and a file that is no checkpoint at all each raise a
    ``ValueError`` that says so.
    """
    state = convert_official_state_dict(_read_checkpoint(checkpoint))
    _check_classifier_is_whole(state)
    own = model.state_dict()
    head = set(_CLASSIFIER)
    if "fc.weight" not in state:
        warnings.warn("checkpoint has no classifier (fc): it keeps its fresh initialisation "
                      "and must be trained", UserWarning, stacklevel=2)
    elif state["fc.weight"].shape != own["fc.weight"].shape:
        warnings.warn(
            f"official checkpoint has a {state['fc.weight'].shape[0]}-class head, the model "
            f"{own['fc.weight'].shape[0]} classes: the classifier (fc) is re-initialised and "
            "must be trained", UserWarning, stacklevel=2)
        state = {k: v for k, v in state.items() if k not in head}
    missing = sorted(set(own) - set(state) - head)
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong_shape:
        raise ValueError(
            "checkpoint does not fit this RedNet (is it the same depth, kernel size and group "
            f"size?): {len(missing)} missing tensors {missing[:5]}, {len(unexpected)} unexpected "
            f"{unexpected[:5]}, {len(wrong_shape)} of another shape {wrong_shape[:5]}")
    model.load_state_dict(state, strict=False)
    return model
