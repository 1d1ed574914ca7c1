"""Involution and RedNet (Li et al., CVPR 2021), fast and explained.

The package's face: the operator :func:`involution2d`, the layer
:class:`Involution2d` (with its :class:`KernelGenerator`), and the model
registry (:func:`create_model`, :func:`list_models`,
:func:`load_official_checkpoint`). Everything else lives in a folder per
role: ``ops``, ``layers``, ``models``, ``data``, ``analysis``, ``train``
(Lightning) and ``workbook`` (what the notebooks call). Importing this needs
only torch and torchvision.
"""
from involution.layers import Involution2d, KernelGenerator
from involution.models import create_model, list_models, load_official_checkpoint
from involution.ops import involution2d

__all__ = ["involution2d", "Involution2d", "KernelGenerator", "create_model", "list_models",
           "load_official_checkpoint"]
__version__ = "0.1.0"
