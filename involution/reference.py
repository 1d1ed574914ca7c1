"""Figures reported by others, kept apart from anything this project measures.

Every number here is *reported*, not ours: cite the source beside it wherever
it is shown (the tables and slides built from this module do).
"""

OFFICIAL_REDNET_SOURCE = "reported by Li et al. (CVPR 2021), official model zoo, ImageNet-1k"

# depth -> params (M), FLOPs (G), ImageNet top-1 / top-5 (%)
OFFICIAL_REDNET = {
    26: {"params_m": 9.23, "gflops": 1.73, "top1": 75.96, "top5": 93.19},
    38: {"params_m": 12.39, "gflops": 2.22, "top1": 77.48, "top5": 93.57},
    50: {"params_m": 15.54, "gflops": 2.71, "top1": 78.35, "top5": 94.13},
    101: {"params_m": 25.65, "gflops": 4.74, "top1": 78.92, "top5": 94.35},
    152: {"params_m": 33.99, "gflops": 6.79, "top1": 79.12, "top5": 94.38},
}

# Exact parameter counts of the official architecture with a 1000-class head.
OFFICIAL_REDNET_PARAMS = {26: 9_233_166, 38: 12_386_986, 50: 15_540_806,
                          101: 25_652_950, 152: 33_984_582}

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
