"""The model registry: one record of facts per model.

Each registered builder carries a :class:`ModelInfo`: its family, depth and
label, the options it accepts, the figures others reported for it and where
its official weights are. This is the role of timm's ``pretrained_cfg`` and
of torchvision's ``Weights.meta``; code that needs a fact about a model looks
it up here (:func:`model_info`) instead of parsing the model's name.

The builders themselves live in :mod:`involution.models`, which registers
them with :func:`register_model` when it is imported.
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
import inspect
import math
from dataclasses import asdict, dataclass, fields
from typing import Callable, Sequence

import torch
from torch import nn

from involution.data.constants import EVAL_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD

__all__ = ["Reported", "OfficialWeights", "ModelInfo", "STANDARD_ARGUMENTS", "register_model", "model_info",
           "list_models"]

# What every model takes, besides its own options (timm's convention): the classifier's
# size (0: none), the input's channels, the global pooling ("avg", or "" for none), and
# the device and dtype to build it on and in.
STANDARD_ARGUMENTS = ("num_classes", "in_chans", "global_pool", "device", "dtype")
# Every model here halves the image five times (a strided stem, a pool, three strided
# stages): its last map is a 32nd of the image in each direction.
FEATURE_STRIDE = 32


@dataclass(frozen=True)
class Reported:
    """Figures someone else reported for a model: never this project's measurements.

    ``source`` is a short key (``"paper"``, ``"torchvision"``) and ``citation``
    the words to show beside the numbers. ``params_m`` and ``gflops`` are as
    reported, ``gflops`` in the reporter's own convention (the paper counted
    with mmcv, torchvision counts multiply-adds); ``params`` is the exact
    count with a 1000-class head, where known. ``top1``/``top5`` are the
    ImageNet-1k accuracies (%) of the official weights.
    """

    source: str
    citation: str
    params_m: float
    gflops: float
    top1: float | None = None
    top5: float | None = None
    params: int | None = None


@dataclass(frozen=True)
class OfficialWeights:
    """Where a model's official ImageNet-1k weights are, and how they expect images.

    ``url`` is set only where a direct download exists; its file name ends in
    the first hex digits of the file's SHA-256 (torch.hub's convention), which
    the download checks. Otherwise ``page`` says where to get the file.
    ``checkpoint_format`` is ``"mmcls"`` (the official RedNet files) or
    ``"torchvision"`` (already in this package's names).
    """

    page: str
    checkpoint_format: str
    url: str | None = None
    num_classes: int = 1000
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = EVAL_CROP_PCT

    # The fields above that say how images are prepared and how many classes the head has
    # (timm's data config); their defaults are ImageNet's, for models without weights too.
    DATA_CONFIG = ("num_classes", "input_size", "mean", "std", "interpolation", "crop_pct")

    @property
    def hash_prefix(self) -> str | None:
        """The SHA-256 prefix in a torch.hub file name (``resnet50-0676ba61.pth`` -> ``0676ba61``)."""
        if self.url is None:
            return None
        stem = self.url.rsplit("/", 1)[-1].split(".")[0]
        return stem.rsplit("-", 1)[-1] if "-" in stem else None


@dataclass(frozen=True)
class ModelInfo:
    """The facts about one registered model."""

    name: str
    family: str  # "rednet", "resnet", "dednet" or "densenet"
    label: str  # for people: "RedNet-26"
    depth: int
    builder: Callable[..., nn.Module]
    options: tuple[str, ...]  # keyword options the builder accepts besides STANDARD_ARGUMENTS
    reported: Reported | None = None
    weights: OfficialWeights | None = None
    architecture: type[nn.Module] | None = None  # the class the builder makes

    def check_options(self, options: Sequence[str]) -> None:
        """Refuse options this model does not take, naming them and the ones it does (a
        TypeError, as Python's for an unexpected keyword, and timm's convention)."""
        unknown = sorted(set(options) - set(self.options) - set(STANDARD_ARGUMENTS))
        if unknown:
            raise TypeError(
                f"{self.name} does not accept the option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}; it accepts {', '.join(self.options)} "
                f"(and {', '.join(STANDARD_ARGUMENTS)})")

    def pretrained_cfg(self) -> dict:
        """A timm-style ``pretrained_cfg`` dict: how the model takes images (the official
        weights' data config, or ImageNet's), the size of its final map at that input
        (``pool_size``), the names of its first convolution and classifier, its official
        weights and the reported accuracy."""
        weights = self.weights
        data = {field.name: getattr(weights, field.name) if weights else field.default
                for field in fields(OfficialWeights) if field.name in OfficialWeights.DATA_CONFIG}
        cfg = {"architecture": self.name, "label": self.label, "family": self.family,
               "has_weights": weights is not None, **data,
               "pool_size": tuple(math.ceil(size / FEATURE_STRIDE) for size in data["input_size"][1:]),
               "fixed_input_size": False}
        if self.architecture is not None:
            cfg.update(first_conv=self.architecture.first_conv, classifier=self.architecture.classifier_name)
        if weights is not None:
            cfg.update(asdict(weights))
            cfg["hash_prefix"] = weights.hash_prefix
        if self.reported is not None:
            cfg.update({"reported_top1": self.reported.top1, "reported_top5": self.reported.top5,
                        "reported_by": self.reported.citation})
        return cfg


_REGISTRY: dict[str, ModelInfo] = {}

# Arguments a builder's architecture takes that are not a model's own options.
_NOT_OPTIONS = {"self", "layers", *STANDARD_ARGUMENTS}


def register_model(*, family: str, label: str, depth: int, architecture: type[nn.Module],
                   reported: Reported | None = None, weights: OfficialWeights | None = None):
    """Register a builder ``fn(num_classes, **options)`` under its function name.

    The options a model accepts are read from ``architecture``'s signature,
    so the record cannot drift from the code. The registered builder checks
    its options, builds the model on ``device`` and in ``dtype`` and gives it
    its ``pretrained_cfg`` and its ``build_options`` (the options it was given).
    """
    signature = inspect.signature(architecture)
    options = tuple(name for name in signature.parameters if name not in _NOT_OPTIONS)

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        @functools.wraps(builder)
        def build(num_classes: int = 1000, *, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None, **kwargs) -> nn.Module:
            info.check_options(kwargs)
            # Parameters are made on the device itself: no copy, and nothing at all on "meta".
            with torch.device(device) if device is not None else contextlib.nullcontext():
                model = builder(num_classes=num_classes, **kwargs)
            if dtype is not None:
                model.to(dtype=dtype)
            model.pretrained_cfg = info.pretrained_cfg()
            # The builder's own options, as given: save_pretrained writes them to build the model again.
            model.build_options = {key: value for key, value in kwargs.items()
                                   if key not in ("in_chans", "global_pool")}
            return model

        info = ModelInfo(builder.__name__, family, label, depth, build, options, reported, weights,
                         architecture)
        _REGISTRY[info.name] = info
        return build

    return decorate


def model_info(name: str) -> ModelInfo:
    """The record of a registered model."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown model {name!r}; {hint}choose one of {list_models()}")
    return _REGISTRY[name]


def list_models(pattern: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()) -> list[str]:
    """Registered model names matching a wildcard pattern (or any of several), as in timm.

    ``list_models("rednet*")`` lists the RedNets; ``exclude="test_*"`` leaves
    out the tiny models the tests use.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    excluded = [exclude] if isinstance(exclude, str) else list(exclude)
    return sorted(name for name in _REGISTRY
                  if any(fnmatch.fnmatchcase(name, p) for p in patterns)
                  and not any(fnmatch.fnmatchcase(name, p) for p in excluded))
