"""Official ImageNet weights: finding, downloading and loading them into our models.

The official RedNet checkpoints are mmcls files, linked from the official
repository's model zoo (no direct download): pass the downloaded file as
``pretrained=PATH``. torchvision's ResNet-50/101/152 weights have direct URLs
whose file names carry their SHA-256 prefix: ``pretrained=True`` downloads
them once into torch.hub's cache and checks that hash, as torchvision does.
Where each model's weights are is in its record (:func:`~involution.models.registry.model_info`).
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from involution.models.registry import ModelInfo, list_models, model_info

__all__ = ["OFFICIAL_MODEL_ZOO", "convert_official_state_dict", "load_official_checkpoint",
           "load_pretrained", "download_official_weights"]

OFFICIAL_MODEL_ZOO = (
    "https://github.com/d-li14/involution#model-zoo (ImageNet RedNet checkpoints in mmcls "
    "format, linked from the official repository's README)"
)


def load_pretrained(model: nn.Module, info: ModelInfo, pretrained) -> nn.Module:
    """Load ``pretrained`` (True for the official download, or a path or dict) into ``model``."""
    if info.weights is None:
        raise ValueError(f"{info.name} has no official weights to load; models with them: "
                         f"{_models_with_weights()}. Load other weights with "
                         "model.load_state_dict()")
    channels = info.weights.input_size[0]
    if getattr(model, "in_chans", channels) != channels:
        raise ValueError(f"{info.name}'s official weights are for {channels}-channel images but the model "
                         f"takes {model.in_chans}: build it with in_chans={channels} to load them, or load "
                         "other weights with model.load_state_dict()")
    if pretrained is True:
        pretrained = download_official_weights(info)
    return load_official_checkpoint(model, pretrained)


def _models_with_weights() -> str:
    return ", ".join(name for name in list_models() if model_info(name).weights is not None)


def download_official_weights(info: ModelInfo, progress: bool = True) -> Path:
    """The official weights file of ``info``'s model, downloaded (with a hash check) if needed.

    Files go to torch.hub's cache (``$TORCH_HOME/hub/checkpoints``), as
    torchvision's do. A model without a direct download gets an error that
    says where to get its weights and how to pass them.
    """
    weights = info.weights
    if weights.url is None:
        raise ValueError(
            f"{info.name}'s official weights have no direct download: get the {info.label} "
            f"checkpoint from {weights.page}, then pass its path: "
            f"create_model({info.name!r}, pretrained='path/to/{info.name}.pth')")
    path = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(weights.url, os.fspath(path),
                                           hash_prefix=weights.hash_prefix, progress=progress)
        except RuntimeError as error:  # torch's "invalid hash value (expected ..., got ...)"
            raise ValueError(f"the download of {weights.url} is corrupt ({error}); nothing was "
                             "kept: try again") from None
        except OSError as error:  # no network, or the address is gone (urllib's URLError)
            raise ValueError(
                f"could not download {info.name}'s official weights from {weights.url} "
                f"({getattr(error, 'reason', error)}): download the file yourself and pass "
                f"its path: create_model({info.name!r}, pretrained='path/to/file.pth')") from None
    return path


# Official (mmcls) names -> ours, applied in order. mmcls wraps conv+BN(+ReLU)
# in a "ConvModule" with .conv/.bn children; torchvision's
# Conv2dNormActivation is a Sequential with children 0 (conv) and 1 (BN).
# torchvision's own checkpoints already have our names and pass unchanged.
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
    # A pickle that calls a function torch blocks outright (os.system, eval, ...) is no checkpoint
    # whatever its source: it is refused, with no advice to load it some other way.
    blocked = re.search(r"unsupported GLOBAL ([\w.]+) whose module [\w.]+ is blocked", reason)
    if blocked:
        return (f"{path} was refused: loading it would call {blocked.group(1)}, which no checkpoint needs "
                "and which could run any command. Do not load it with weights_only=False; get the weights "
                f"again from {OFFICIAL_MODEL_ZOO}")
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


def load_official_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    """Load an official ImageNet checkpoint into ``model``: RedNet's mmcls files, torchvision's.

    Args:
        model: a model of the checkpoint's architecture and depth.
        checkpoint: a path, or an already loaded dict, in the official mmcls
            format (``{"state_dict": {"backbone.*": ..., "head.fc.*": ...}}``;
            a bare state_dict works too).

    Every backbone tensor must match by name and shape. If the checkpoint's
    classifier has another number of classes than ``model`` (e.g. 1000 vs
    257), the classifier keeps its fresh initialisation and a warning says so;
    a model built without one (``num_classes=0``) takes none.
    A classifier weight without its bias, a checkpoint of this package's own
    training and a file that is no checkpoint at all each raise a
    ``ValueError`` that says so.
    """
    state = convert_official_state_dict(_read_checkpoint(checkpoint))
    _check_classifier_is_whole(state)
    own = model.state_dict()
    head = set(_CLASSIFIER)
    if not head & set(own):  # built without a classifier, on purpose
        state = {k: v for k, v in state.items() if k not in head}
    elif "fc.weight" not in state:
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
            "checkpoint does not fit this model (is it the same depth, kernel size and group "
            f"size?): {len(missing)} missing tensors {missing[:5]}, {len(unexpected)} unexpected "
            f"{unexpected[:5]}, {len(wrong_shape)} of another shape {wrong_shape[:5]}")
    model.load_state_dict(state, strict=False)
    return model
