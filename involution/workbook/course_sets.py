"""What the original course project's runs are: each run's overrides, the sets that group them,
and the scales they run at (the course recipe on Caltech-256, cut down on the offline sets).

:mod:`involution.workbook.course` runs them and tables their results.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from involution.train.configs import compose_configs
from involution.workbook.reference import COURSE_PROJECT_RUNS

__all__ = ["RECIPE", "RECIPE_DATA_ROOT", "FULL_EPOCHS", "CourseRun", "CourseSet", "COURSE_SETS", "course_set",
           "Scale", "FULL_SCALE", "SMALL_SCALE"]

RECIPE = "caltech256_course"  # every course run is this recipe plus its overrides
RECIPE_DATA_ROOT = "data/caltech256"  # the course recipe's data.root (a test checks they agree)
FULL_EPOCHS = 150  # the course recipe's; shorter course runs keep their proportion when scaled


@dataclass(frozen=True)
class CourseRun:
    """One course run: the overrides file ``configs/course/<name>.yaml`` on the course recipe."""

    name: str

    @property
    def configs(self) -> tuple[str, str]:
        return self.configs_on(RECIPE)

    def configs_on(self, recipe: str) -> tuple[str, str]:
        """The overrides composed on ``recipe`` (the course recipe, or a small scale's)."""
        return (recipe, f"course/{self.name}")

    @property
    def settings(self) -> dict:
        """The composed configuration (course recipe, then overrides)."""
        return self.settings_on(RECIPE)

    def settings_on(self, recipe: str) -> dict:
        return compose_configs(list(self.configs_on(recipe)))

    @property
    def model(self) -> str:
        return self.settings["model"]["model_name"]

    @property
    def epochs(self) -> int:
        return self.settings["trainer"]["max_epochs"]

    @property
    def reported(self) -> dict | None:
        """What the course project reported on Caltech-256; None for our own controls."""
        return COURSE_PROJECT_RUNS.get(self.name)

    def recipe(self, on: str = RECIPE) -> str:
        """The settings that differ between course runs, in one line (composed on the recipe ``on``)."""
        settings = self.settings_on(on)
        optimizer, clip = settings["model"]["optimizer"], settings["trainer"].get("gradient_clip_val")
        return (f"{optimizer.get('name', 'sgd')} lr {optimizer['lr']:g}, wd {optimizer.get('weight_decay', 0):g}, "
                f"dropout {settings['model'].get('drop_rate', 0):g}, "
                f"clip {'none' if clip is None else format(clip, 'g')}, {self.epochs} epochs")


@dataclass(frozen=True)
class CourseSet:
    """Runs that answer one question together. ``watch_kernels``: record kernel stats every step."""

    question: str
    runs: tuple[CourseRun, ...]
    watch_kernels: bool = False
    # Small scales compose the overrides on their own recipe, except for a set whose point is
    # the course optimiser itself (SGD at lr 0.8 diverging needs no learning to show).
    keeps_course_recipe: bool = False

    def recipe_at(self, scale: "Scale") -> str:
        return RECIPE if self.keeps_course_recipe else scale.recipe


def _runs(*names: str) -> tuple[CourseRun, ...]:
    return tuple(CourseRun(name) for name in names)


#: The sets, by name: each groups the runs that answer one question together.
COURSE_SETS = {
    "ablation": CourseSet("RedNet-26's recipe, one change at a time",
                          _runs("rednet26_nowd", "rednet26_wd_dropout", "rednet26_clip", "rednet26_150")),
    "overfitting": CourseSet("ResNet-26 without and with weight decay",
                             _runs("resnet26_nowd", "resnet26_wd", "resnet26_150")),
    "instability": CourseSet("RedNet-50 at lr 0.8: without, then with weight decay and clipping; "
                             "ResNet-50 at lr 0.8 as the control",
                             _runs("rednet50_lr08", "rednet50_lr08_wd_clip", "resnet50_lr08"), watch_kernels=True,
                             keeps_course_recipe=True),
    "dednet": CourseSet("DedNet-121 (involution) against DenseNet-121 (convolution)",
                        _runs("dednet121", "densenet121")),
}


def course_set(name: str) -> CourseSet:
    """The set called ``name``; an unknown name is an error that lists the sets."""
    if name not in COURSE_SETS:
        raise ValueError(f"unknown course set {name!r}; the sets are {', '.join(COURSE_SETS)} "
                         "(python -m involution course list shows their runs)")
    return COURSE_SETS[name]


@dataclass(frozen=True)
class Scale:
    """How a course run is cut down for a small data set; ``None`` fields keep the recipe's.

    ``epochs`` is what a 150-epoch course run trains; a 130-epoch run trains
    ``round(epochs * 130 / 150)``. ``train_batches`` caps the training steps
    of an epoch (a fresh random subset of the training images each epoch).
    """

    recipe: str = RECIPE  # what the overrides compose on
    image_size: int | None = None
    epochs: int | None = None
    train_batches: int | None = None
    batch_size: int | None = None
    transforms: str | None = None
    extra_args: tuple[str, ...] = field(default=())

    def epochs_of(self, run: CourseRun) -> int:
        if self.epochs is None:
            return run.epochs
        return max(1, round(self.epochs * run.epochs / FULL_EPOCHS))

    def args(self, watch_kernels: bool) -> list[str]:
        args = list(self.extra_args)
        if self.train_batches is not None:
            args += ["--trainer.limit_train_batches", str(self.train_batches)]
        if self.transforms is not None:
            args += ["--data.transforms", self.transforms]
        if watch_kernels and self != FULL_SCALE:  # every step, on short runs only: it costs a little
            args += ["--kernel_stats_every_n_steps", "1", "--trainer.log_every_n_steps", "1"]
        return args


FULL_SCALE = Scale()  # Caltech-256: the course recipe as it is
# The command line's default on the shapes or sample set: about a minute per RedNet-26 run on 2 CPU cores.
# Its recipe is the shapes set's (AdamW, warm-up): the course recipe's SGD at lr 0.1 does not learn
# the shapes set at this scale (measured: RedNet-26, 32 px, 6 epochs of 125 steps, even with a
# warm-up epoch: 10.8% validation top-1, chance for 10 classes; the shapes recipe: 30% by epoch 3).
SMALL_SCALE = Scale(recipe="shapes", image_size=32, epochs=6, train_batches=None, batch_size=32,
                    transforms="light", extra_args=("--data.num_workers", "0"))
