"""Involution and RedNet (Li et al., CVPR 2021), fast and explained.

The operator :func:`involution2d`, the layer :class:`Involution2d`, the model
registry :func:`create_model`, and (in submodules) complexity counting,
Caltech-256 data, Lightning training and kernel visualisation.
"""
from involution.layers import Involution2d, KernelGenerator
from involution.models import create_model, list_models, load_official_checkpoint
from involution.ops.functional import involution2d

__all__ = ["involution2d", "Involution2d", "KernelGenerator", "create_model", "list_models",
           "load_official_checkpoint"]
__version__ = "0.1.0"
