"""The models: RedNet, its ResNet baselines, DedNet and DenseNet, by name.

One file per family (``rednet``, ``resnet``, ``densenet``), each registering
its builders with the registry (``registry``: one record of facts per model,
importing no family); ``factory.create_model`` builds a model by name and
``pretrained`` loads official weights. Every model follows timm's model
conventions (``common``: ``num_classes``/``in_chans``/``global_pool``/``device``/
``dtype`` at construction, ``forward_features``, ``forward_head``,
``forward_intermediates``, ``reset_classifier``, ``set_grad_checkpointing``,
``group_matcher``, ``num_features``, ``feature_info``, ``pretrained_cfg``; see
docs/timm.md) and registers its children in the order its forward runs them, so
torchvision's ``IntermediateLayerGetter``/``BackboneWithFPN`` and timm's
``features_only`` work::

    >>> from involution.models import create_model, list_models
    >>> model = create_model("rednet26", num_classes=257)
    >>> list_models("rednet*")
    ['rednet101', 'rednet152', 'rednet26', 'rednet38', 'rednet50']

Each model's facts (family, label, options, reported figures, official
weights) are in its record: ``model_info("rednet26")``. ``import
involution.models.timm_support`` registers the RedNets with timm.
"""
# Importing the families registers their builders.
from involution.models.common import STAGE_BLOCKS
from involution.models.densenet import DedNet, DenseNet, dednet121, densenet121
from involution.models.factory import create_model
from involution.models.pretrained import OFFICIAL_MODEL_ZOO, convert_official_state_dict, load_official_checkpoint
from involution.models.rednet import RedNet, rednet26, rednet38, rednet50, rednet101, rednet152, test_rednet
from involution.models.registry import ModelInfo, list_models, model_info
from involution.models.resnet import ResNet, resnet26, resnet38, resnet50, resnet101, resnet152, test_resnet

__all__ = [
    "ResNet", "RedNet", "DenseNet", "DedNet", "STAGE_BLOCKS", "create_model", "list_models",
    "model_info", "ModelInfo", "load_official_checkpoint", "convert_official_state_dict",
    "rednet26", "rednet38", "rednet50", "rednet101", "rednet152",
    "resnet26", "resnet38", "resnet50", "resnet101", "resnet152",
    "dednet121", "densenet121", "test_rednet", "test_resnet", "OFFICIAL_MODEL_ZOO",
]
