"""Involution and RedNet (Li et al., CVPR 2021), fast and explained.

The package's face: the operator :func:`involution2d`, the layer
:class:`Involution2d` (with its :class:`KernelGenerator`), and the model
registry (:func:`create_model`, :func:`list_models`,
:func:`load_official_checkpoint`), and what uses a trained model: :func:`predict`
(the top classes of image files), :func:`transforms_for` (a model's evaluation
transform), :func:`save_pretrained` and :func:`from_pretrained` (a shareable folder
of safetensors weights and a ``config.json``). Everything else lives in a folder per
role: ``ops``, ``layers``, ``models``, ``data``, ``analysis``, ``train``
(Lightning) and ``workbook`` (what the notebooks call). Importing this needs
only torch and torchvision, and registers the package's operators with torch
(which loading a saved ``torch.export`` program needs).
"""
import importlib
import os
import sys

__all__ = ["involution2d", "Involution2d", "KernelGenerator", "create_model", "list_models",
           "load_official_checkpoint", "predict", "transforms_for", "save_pretrained", "from_pretrained"]
__version__ = "0.1.0"

# Where each public name lives.
_HOMES = {"involution2d": "involution.ops", "Involution2d": "involution.layers",
          "KernelGenerator": "involution.layers", "create_model": "involution.models",
          "list_models": "involution.models", "load_official_checkpoint": "involution.models",
          "predict": "involution.inference", "transforms_for": "involution.inference",
          "save_pretrained": "involution.models.hub", "from_pretrained": "involution.models.hub"}


def _starting_the_command_line() -> bool:
    """True while ``python -m involution ...`` or the ``involution`` script imports this package
    on its way to the command line (Python sets ``sys.argv[0]`` to ``-m`` until the module runs).
    The command line imports what its command needs, so ``--help`` and ``--version`` start
    without torch; any other import of the package imports its face at once."""
    return bool(sys.argv) and (sys.argv[0] == "-m" or os.path.basename(sys.argv[0]) == "involution")


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'involution' has no attribute {name!r}")


if not _starting_the_command_line():
    from involution.inference import predict, transforms_for  # noqa: E402
    from involution.layers import Involution2d, KernelGenerator  # noqa: E402
    from involution.models import create_model, list_models, load_official_checkpoint  # noqa: E402
    from involution.models.hub import from_pretrained, save_pretrained  # noqa: E402
    from involution.ops import involution2d  # noqa: E402
