"""Figures reported by others, kept apart from anything this project measures.

Every number here is *reported*, not ours: cite the source beside it wherever
it is shown (the tables and slides built from this module do).

The figures of the models this package builds (the official RedNet model
zoo, torchvision's weights) live in each model's registry record,
``involution.registry.model_info(name).reported``; ``OFFICIAL_REDNET`` below is
a by-depth view of those records for tables and slides. What stays here is
about results no registered model reproduces: the original course project.
"""
from .registry import list_models, model_info


def _official_rednets() -> list:
    rednets = [info for info in map(model_info, list_models())
               if info.family == "rednet" and info.reported is not None
               and info.reported.source == "paper"]
    return sorted(rednets, key=lambda info: info.depth)


OFFICIAL_REDNET_SOURCE = _official_rednets()[0].reported.citation

# depth -> params (M), FLOPs (G), ImageNet top-1 / top-5 (%), as in the official model zoo
OFFICIAL_REDNET = {info.depth: {"params_m": info.reported.params_m, "gflops": info.reported.gflops,
                                "top1": info.reported.top1, "top5": info.reported.top5}
                   for info in _official_rednets()}

# Exact parameter counts of the official architecture with a 1000-class head.
OFFICIAL_REDNET_PARAMS = {info.depth: info.reported.params for info in _official_rednets()}

COURSE_PROJECT_SOURCE = ("reported by the original course project (CS F425, BITS Pilani): "
                         "Caltech-256 from scratch, random 80/20 split, its own RedNet variant")

# The course project's best runs (batch 16, SGD nesterov 0.9, lr 0.1, cosine,
# wd 1e-4, 150 epochs; RedNet-26 also with dropout 10% and grad clipping 1.0).
COURSE_PROJECT_RESULTS = [
    {"model": "ResNet-26", "val_top1": 57.59, "params_m": 11.7, "epochs": 150},
    {"model": "RedNet-26", "val_top1": 60.05, "params_m": 8.0, "epochs": 150},
]

# What the course project reported learning on Caltech-256, step by step (its
# README and slides): the recipe ablation, overfitting and instability. val_top1
# is None where it reported an outcome instead of an accuracy.
COURSE_PROJECT_FINDINGS = [
    {"model": "ResNet-26", "recipe": "SGD lr 0.1, cosine, no weight decay, 130 epochs",
     "val_top1": None, "outcome": "overfits: validation loss rises"},
    {"model": "ResNet-26", "recipe": "+ weight decay 1e-4", "val_top1": 57.03, "outcome": ""},
    {"model": "ResNet-26", "recipe": "same, 150 epochs", "val_top1": 57.59, "outcome": ""},
    {"model": "RedNet-26", "recipe": "SGD lr 0.1, cosine, no weight decay, 130 epochs",
     "val_top1": 50.6, "outcome": "unstable validation loss"},
    {"model": "RedNet-26", "recipe": "+ weight decay 1e-4, dropout 10%", "val_top1": 55.00, "outcome": ""},
    {"model": "RedNet-26", "recipe": "+ gradient clipping 1.0", "val_top1": 57.3, "outcome": ""},
    {"model": "RedNet-26", "recipe": "same, 150 epochs", "val_top1": 60.05, "outcome": ""},
    {"model": "RedNet-50", "recipe": "SGD lr 0.8, no weight decay, no clipping", "val_top1": None,
     "outcome": "NaN: activations exploded"},
]
