"""Figures reported by others, kept apart from anything this project measures.

Every number here is *reported*, not ours: cite the source beside it wherever
it is shown (the tables and slides built from this module do).

The figures of the models this package builds (the official RedNet model
zoo, torchvision's weights) live in each model's registry record,
``involution.models.registry.model_info(name).reported``; ``OFFICIAL_REDNET`` below is
a by-depth view of those records for tables and slides. What stays here is
about results no registered model reproduces: the original course project.
"""
from involution.models.registry import list_models, model_info


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

#: Every run of the course project, keyed by the name of its overrides file
#: (involution/train/configs/course/<name>.yaml, composed on caltech256_course): what
#: it reported on Caltech-256, the one place in code where each figure is written.
#: val_top1 (%) is None where it reported an outcome instead of an accuracy, or
#: nothing that this workbook keeps (DedNet-121 and DenseNet-121).
COURSE_PROJECT_RUNS = {
    "resnet26_nowd": {"model": "ResNet-26", "recipe": "SGD lr 0.1, cosine, no weight decay, 130 epochs",
                      "val_top1": None, "outcome": "overfits: validation loss rises"},
    "resnet26_wd": {"model": "ResNet-26", "recipe": "+ weight decay 1e-4", "val_top1": 57.03, "outcome": ""},
    "resnet26_150": {"model": "ResNet-26", "recipe": "same, 150 epochs", "val_top1": 57.59, "outcome": "",
                     "params_m": 11.7, "epochs": 150},
    "rednet26_nowd": {"model": "RedNet-26", "recipe": "SGD lr 0.1, cosine, no weight decay, 130 epochs",
                      "val_top1": 50.6, "outcome": "unstable validation loss"},
    "rednet26_wd_dropout": {"model": "RedNet-26", "recipe": "+ weight decay 1e-4, dropout 10%",
                            "val_top1": 55.00, "outcome": ""},
    "rednet26_clip": {"model": "RedNet-26", "recipe": "+ gradient clipping 1.0", "val_top1": 57.3,
                      "outcome": ""},
    "rednet26_150": {"model": "RedNet-26", "recipe": "same, 150 epochs", "val_top1": 60.05, "outcome": "",
                     "params_m": 8.0, "epochs": 150},
    "rednet50_lr08": {"model": "RedNet-50", "recipe": "SGD lr 0.8, no weight decay, no clipping",
                      "val_top1": None, "outcome": "NaN: activations exploded"},
    # Its results slides reported DedNet's training as unstable, the involution instability
    # "exaggerated in densenets"; no accuracy of either run was kept.
    "dednet121": {"model": "DedNet-121", "recipe": "the course recipe", "val_top1": None,
                  "outcome": "unstable (\"exaggerated in densenets\", its slides); no accuracy kept"},
    "densenet121": {"model": "DenseNet-121", "recipe": "the course recipe", "val_top1": None,
                    "outcome": "DedNet-121's baseline; no accuracy kept"},
}

# The course project's best runs (batch 16, SGD nesterov 0.9, lr 0.1, cosine,
# wd 1e-4, 150 epochs; RedNet-26 also with dropout 10% and grad clipping 1.0).
COURSE_PROJECT_RESULTS = [
    {"model": COURSE_PROJECT_RUNS[name]["model"], "val_top1": COURSE_PROJECT_RUNS[name]["val_top1"],
     "params_m": COURSE_PROJECT_RUNS[name]["params_m"], "epochs": COURSE_PROJECT_RUNS[name]["epochs"]}
    for name in ("resnet26_150", "rednet26_150")]

# What the course project reported learning on Caltech-256, step by step (its
# README and slides): the recipe ablation, overfitting and instability.
COURSE_PROJECT_FINDINGS = [
    {key: COURSE_PROJECT_RUNS[name][key] for key in ("model", "recipe", "val_top1", "outcome")}
    for name in ("resnet26_nowd", "resnet26_wd", "resnet26_150", "rednet26_nowd", "rednet26_wd_dropout",
                 "rednet26_clip", "rednet26_150", "rednet50_lr08")]
