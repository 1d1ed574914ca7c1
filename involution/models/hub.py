"""Share a model: ``save_pretrained(folder)`` / ``from_pretrained(folder or hub id)``.

A saved model is a folder of two files, the layout of the Hugging Face Hub and
of timm's ``push_to_hub``:

* ``model.safetensors``: the weights (safetensors: no pickled code runs on loading);
* ``config.json``: what builds the model again and how it takes images:
  ``architecture`` (a :func:`~involution.models.registry.list_models` name), ``num_classes``,
  ``in_chans``, ``global_pool``, ``model_args`` (the builder's other options, such as
  ``planes`` or ``small_input``), ``label_names`` (the class names, in output order)
  and ``pretrained_cfg`` (input size, mean and std, interpolation, crop fraction: what
  :func:`~involution.inference.transforms_for` turns into the evaluation transform).

This is a small layer of its own rather than huggingface_hub's
``PyTorchModelHubMixin``: the models are built by name from the registry, not by
their classes' constructors, and the library needs only torch and safetensors. Where
huggingface_hub is installed, :func:`from_pretrained` also accepts a hub id
(``"owner/name"``) and ``huggingface_hub.upload_folder`` publishes a saved folder.

:func:`model_from_checkpoint` builds the model of a training run's checkpoint
(``runs/<name>/<version>/checkpoints/best.ckpt``) with its class names and its
evaluation preprocessing, which is what ``python -m involution export`` saves.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from involution._extras import require_extra
from involution.data.constants import EVAL_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "save_pretrained", "from_pretrained", "model_from_checkpoint",
           "model_from_source"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
# The pretrained_cfg entries that say how the model takes images (timm's data config), kept in config.json.
DATA_CONFIG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")
# The entries of the registry's pretrained_cfg that describe the model, not its weights.
DESCRIPTION_KEYS = ("architecture", "label", "family", "first_conv", "classifier", "fixed_input_size")


def _require_safetensors() -> None:
    require_extra("hub", "safetensors", feature="Saving and loading shared models (save_pretrained, from_pretrained)")


def _architecture(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture")
    if not name or not hasattr(model, "build_options"):
        raise ValueError(f"save_pretrained needs a model built by name, with involution.create_model(NAME, ...); "
                         f"this {type(model).__name__} was built by its class, so its name and options are unknown")
    return name


def _plain(value):
    """JSON's types: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _library_version() -> str | None:
    """The installed package's version (None for a checkout that is not installed)."""
    try:
        return importlib.metadata.version("involution")
    except importlib.metadata.PackageNotFoundError:
        return None


def model_config(model: nn.Module) -> dict:
    """What ``config.json`` records of ``model`` (see the module's description)."""
    name = _architecture(model)
    cfg = model.pretrained_cfg
    labels = cfg.get("label_names")
    if labels is not None and len(labels) != model.num_classes:
        raise ValueError(f"the model has {model.num_classes} classes but {len(labels)} label names")
    data = {key: cfg[key] for key in DATA_CONFIG_KEYS if key in cfg}
    return _plain({
        "architecture": name,
        "num_classes": model.num_classes,
        "in_chans": model.in_chans,
        "global_pool": model.global_pool,
        "num_features": model.num_features,
        "model_args": dict(model.build_options),
        "label_names": list(labels) if labels is not None else None,
        "pretrained_cfg": {**{key: cfg[key] for key in DESCRIPTION_KEYS if key in cfg}, **data,
                           "num_classes": model.num_classes},
        "library": "involution",
        "library_version": _library_version(),
        "format_version": FORMAT_VERSION,
    })


def save_pretrained(model: nn.Module, folder: str | os.PathLike, *,
                    label_names: Sequence[str] | None = None) -> Path:
    """Save ``model`` to ``folder`` (made if needed): ``model.safetensors`` and ``config.json``.

    ``label_names`` (the class names, in output order) replaces the model's own
    (``model.pretrained_cfg["label_names"]``). Files of the same names in ``folder``
    are replaced. Returns the folder.
    """
    _require_safetensors()
    from safetensors.torch import save_file

    if label_names is not None:
        model.pretrained_cfg = {**model.pretrained_cfg, "label_names": list(label_names)}
    config = model_config(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors stores plain, contiguous tensors (channels-last weights are made contiguous).
    weights = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "library": "involution"})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    umask = os.umask(0)  # safetensors writes a private file: give both the user's usual permissions
    os.umask(umask)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        (folder / name).chmod(0o666 & ~umask)
    return folder


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and "\\" not in source


def _download(repo_id: str, revision: str | None) -> Path:
    require_extra("hub", "huggingface_hub", feature=f"Loading {repo_id!r} from the Hugging Face Hub")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))


def read_config(folder: str | os.PathLike) -> dict:
    """``folder``'s ``config.json``, or an error naming what is missing."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {CONFIG_FILE}: it is not a folder written by save_pretrained "
                                "(or python -m involution export)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(config, dict) or "architecture" not in config:
        raise ValueError(f"{path} names no architecture: it was not written by involution's save_pretrained")
    return config


def from_pretrained(source: str | os.PathLike, *, revision: str | None = None,
                    device: torch.device | str | None = None) -> nn.Module:
    """The model saved by :func:`save_pretrained` in a folder, or on the Hugging Face Hub.

    Args:
        source: a folder holding ``config.json`` and ``model.safetensors``, or a hub id
            (``"owner/name"``, where no such folder exists; needs huggingface_hub).
        revision: the hub revision (branch, tag or commit); ignored for a folder.
        device: where to put the model (default: the CPU).

    Returns:
        The model, in eval mode, with the saved class names and preprocessing in its
        ``pretrained_cfg`` (``label_names``, ``input_size``, ...).
    """
    _require_safetensors()
    from safetensors.torch import load_file

    from involution.models.factory import create_model

    folder = Path(source).expanduser()
    if not folder.is_dir():
        if isinstance(source, str) and _is_hub_id(source) and not folder.exists():
            folder = _download(source, revision)
        else:
            raise FileNotFoundError(f"{source} is not a folder written by save_pretrained"
                                    + (" (it does not exist)" if not folder.exists() else ""))
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} holds {CONFIG_FILE} but no {WEIGHTS_FILE}")
    model = create_model(config["architecture"], num_classes=config.get("num_classes", 1000),
                         in_chans=config.get("in_chans", 3), global_pool=config.get("global_pool", "avg"),
                         **(config.get("model_args") or {}))
    model.load_state_dict(load_file(str(weights)), strict=True)
    saved = config.get("pretrained_cfg") or {}
    model.pretrained_cfg = _with_data_config(model.pretrained_cfg, saved, config.get("label_names"))
    return model.to(device).eval() if device is not None else model.eval()


def _with_data_config(cfg: dict, data: dict, label_names: Sequence[str] | None) -> dict:
    """The registry's ``cfg`` with the data config of trained weights: their preprocessing and class
    names, without the official weights' facts (url, reported accuracy), which are no longer true."""
    kept = {key: cfg[key] for key in DESCRIPTION_KEYS if key in cfg}
    new = {key: tuple(value) if isinstance(value, list) else value
           for key, value in data.items() if key in DATA_CONFIG_KEYS}
    result = {**kept, **{key: cfg[key] for key in DATA_CONFIG_KEYS if key in cfg}, **new,
              "has_weights": True, "label_names": list(label_names) if label_names is not None else None}
    size = result.get("input_size", (3, 224, 224))
    result["pool_size"] = tuple(-(-side // 32) for side in size[1:])
    result["num_classes"] = data.get("num_classes", cfg.get("num_classes"))
    return result


# -- a training run's checkpoint ----------------------------------------------------------

# ImageClassifier's options that are the model builder's (None: the model's default).
_CHECKPOINT_MODEL_OPTIONS = ("kernel_size", "group_channels", "reduction_ratio", "recompute", "planes",
                             "small_input", "zero_init_residual", "drop_rate")
_DATA_STATE = "Caltech256DataModule"  # the key of the data module's state in a checkpoint


def checkpoint_data_config(checkpoint: dict) -> dict[str, Any]:
    """The preprocessing and class names a training checkpoint's run evaluated with: the data
    module's evaluation transform (resize to ``image_size * 256 / 224``, centre crop, ImageNet
    statistics), as ``test`` rebuilds it from the checkpoint's data settings."""
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    size = data.get("image_size", 224)
    return {"input_size": (3, size, size), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
            "interpolation": "bilinear", "crop_pct": EVAL_CROP_PCT, "crop_mode": "center",
            "label_names": (checkpoint.get(_DATA_STATE) or {}).get("class_names")}


def model_from_checkpoint(path: str | os.PathLike, device: torch.device | str | None = None) -> nn.Module:
    """The model of a training checkpoint (``python -m involution fit``'s ``best.ckpt``), in eval mode,
    with the run's class names and evaluation preprocessing in its ``pretrained_cfg``.

    Raises FileNotFoundError for a missing file, and the checkpoint module's CheckpointError for a
    damaged one (both name the file).
    """
    from involution.models.checkpoint_file import read_checkpoint
    from involution.models.factory import create_model

    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "model_name" not in hparams or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a checkpoint of python -m involution fit (it names no model_name)")
    options = {key: hparams[key] for key in _CHECKPOINT_MODEL_OPTIONS if hparams.get(key) is not None}
    model = create_model(hparams["model_name"], num_classes=hparams.get("num_classes", 257), **options)
    prefix = "model."
    state = {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}
    model.load_state_dict(state, strict=True)
    data = checkpoint_data_config(checkpoint)
    labels = data.pop("label_names")
    model.pretrained_cfg = _with_data_config(model.pretrained_cfg, {**data, "num_classes": model.num_classes},
                                             labels)
    return model.to(device).eval() if device is not None else model.eval()


def model_from_source(source, device: torch.device | str | None = None) -> nn.Module:
    """A model given as itself, a training checkpoint file or a :func:`save_pretrained` folder (or hub id)."""
    if isinstance(source, nn.Module):
        return source.to(device) if device is not None else source
    path = Path(source).expanduser()
    checkpoint_like = path.suffix in (".ckpt", ".pt", ".pth")
    if path.is_dir() or (isinstance(source, str) and _is_hub_id(source) and not path.exists() and not checkpoint_like):
        return from_pretrained(source, device=device)
    return model_from_checkpoint(path, device=device)
