"""Notebook 02's experiment: which runs, their command lines, how long they take, where results come from.

Each (model, seed) is one run of the data's recipe (:data:`RECIPES`) under
``<runs>/<model>_<kind>_seed<seed>/<version>/``. Before training,
:func:`estimate_time` times a few real training steps on this machine and
extrapolates to the whole schedule; a plan over :data:`LONG_RUN_MINUTES`
starts only when the notebook says so. :func:`train_and_test` resumes an
interrupted run from its ``last.ckpt`` (a Colab disconnect) and reuses a
finished one. Where no runs exist, :func:`find_comparison` falls back to the
committed copies in ``slides/data/runs`` and says so.
"""
from __future__ import annotations

import functools
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import yaml
from torch.nn import functional as F

from involution.analysis.complexity import count_complexity
from involution.data import DEFAULT_SPLIT, Caltech256DataModule
from involution.models import create_model
from involution.ops.functional import default_precision, mixed_precision_dtype
from involution.train.cli import run_cli
from involution.train.configs import compose_configs
from involution.train.runs import RESULTS_FILE, Run, find_runs, newest_version_folder, options_for
from involution.workbook.data_choice import DataChoice
from involution.workbook.notebook import Workbook

__all__ = ["FAST_TRAINER_ARGS", "FAST_IMAGE_SIZE", "RECIPES", "KERNEL_RUN_NAMES", "LONG_RUN_MINUTES",
           "comparison_run_name", "training_args", "TimeEstimate", "estimate_time", "TrainingSpeed",
           "training_speed", "train_and_test", "model_options", "recipe_settings", "recipe_image_size", "variant_table",
           "Comparison", "find_comparison", "exported_runs", "planned_epochs"]

# Fast mode's training: two training steps and one validation batch per run, and
# a test of the whole test split (only that becomes a run's test score). Enough
# to exercise the whole path (fit, checkpoints, results, test).
FAST_TRAINER_ARGS = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                     "--trainer.limit_val_batches", "1", "--data.num_workers", "0")
FAST_IMAGE_SIZE = 32
# The training recipe (config) of each kind of data; the model is chosen on the command line.
RECIPES = {"sample": "quick_sample", "shapes": "shapes", "folder": "shapes",
           "caltech256": "caltech256_course"}
# Longer plans than this start only with ALLOW_LONG_RUN = True in the notebook.
LONG_RUN_MINUTES = 60  # an hour: the shipped shapes plans (notebooks 02 and 04) run as they are on 2 CPU cores
CALTECH256_IMAGES = 30_607  # Griffin, Holub and Perona (2007): the count before it is downloaded


def comparison_run_name(model: str, kind: str, seed: int | None = None) -> str:
    """The folder name notebook 02 gives a run: ``rednet26_shapes_seed0``, ``resnet26_caltech256_course``."""
    name = f"{model}_caltech256_course" if kind == "caltech256" else f"{model}_{kind}"
    return name if seed is None else f"{name}_seed{seed}"


# Where notebook 03 looks for a trained RedNet, best first: notebook 02's seed-0
# run on Caltech-256, on another image folder, on the shapes set, on the sample set.
KERNEL_RUN_NAMES = tuple(comparison_run_name("rednet26", kind, seed=0)
                         for kind in ("caltech256", "folder", "shapes", "sample"))


def training_args(command: str, book: Workbook, data: DataChoice, model: str, image_size: int | None,
                  epochs: int | None = None, batch_size: int | None = None,
                  ckpt_path: str | os.PathLike | None = None, seed: int | None = None,
                  configs: Sequence[str] | None = None, run_name: str | None = None,
                  extra_args: Sequence[str] = ()) -> list[str]:
    """Command-line arguments of one run of notebook 02, for :func:`involution.train.cli.run_cli`.

    The data's shipped recipe (:data:`RECIPES`: ``shapes`` for the shapes set,
    the course project's ``caltech256_course`` for Caltech-256) is used as it is; only the model, the data
    (:class:`DataChoice`) and the seed are set, and the image size, the epochs
    and the batch size where they are not None, and, in fast mode,
    :data:`FAST_TRAINER_ARGS` cut every run to a couple of steps. ``python -m
    involution`` followed by these arguments runs the same thing.

    Other experiments (:mod:`involution.workbook.course`) give their own ``configs``
    (composed in order, replacing the data's recipe), ``run_name`` and
    ``extra_args`` (added before the fast-mode limits, which still win).
    """
    if command not in ("fit", "validate", "test", "predict"):
        raise ValueError(f"command must be fit, validate, test or predict; got {command!r}")
    configs = [RECIPES[data.kind]] if configs is None else list(configs)
    args = [command, *(arg for name in configs for arg in ("--config", name)),
            "--model.model_name", model,
            "--trainer.default_root_dir", str(book.runs_dir),
            "--run_name", run_name or comparison_run_name(model, data.kind, seed),
            *data.cli_args(),
            # Notebooks print one line per epoch instead of a progress bar, which
            # would stay frozen in the saved notebook.
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    if image_size is not None:
        args += ["--data.image_size", str(image_size)]
    if command in ("validate", "test"):
        args += ["--print_results", "false"]  # the notebook prints the result itself
    if seed is not None:
        args += ["--seed_everything", str(seed)]
    args += list(extra_args)
    if book.fast:
        args += list(FAST_TRAINER_ARGS)  # these set the epochs and workers too
    elif epochs is not None and command == "fit":
        args += ["--trainer.max_epochs", str(epochs)]
    if batch_size is not None:
        args += ["--data.batch_size", str(batch_size)]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    return args


# -- how long it will take ----------------------------------------------------------------


def recipe_settings(data: DataChoice, configs: Sequence[str] | None = None) -> dict:
    """The settings a run starts from: ``configs`` composed, else the data's recipe."""
    return compose_configs(list(configs) if configs is not None else [RECIPES[data.kind]])


def model_options(model_name: str, data: DataChoice, configs: Sequence[str] | None = None) -> dict:
    """The options a run of this plan builds ``model_name`` with (``planes``, ``small_input``...):
    the recipe's model settings that the model accepts (its registry record says which)."""
    return options_for(model_name, recipe_settings(data, configs).get("model") or {})


def recipe_image_size(data: DataChoice) -> int:
    """The image side, in pixels, that the data's recipe trains at."""
    return recipe_settings(data)["data"]["image_size"]


def variant_table(models: Sequence[str], data: DataChoice, num_classes: int,
                  image_size: int | None = None) -> str:
    """Each model as the official ImageNet model and as this plan trains it, side by side.

    Parameters, multiply-adds per image, and the side of each stage's map (the first to
    the deepest): what the plan's architecture options (:func:`model_options`) change.
    """
    size = image_size or recipe_image_size(data)
    lines = [f"{'model':<10} {'as':<34} {'image':>5} {'classes':>7} {'params':>11} {'mult-adds (M)':>13}  "
             "stage maps (first to deepest)"]
    for name in models:
        options = model_options(name, data)
        for label, kwargs, pixels, classes in (("official (ImageNet)", {}, 224, 1000),
                                               ("trained here: " + _describe_options(options), options,
                                                size, num_classes)):
            model = create_model(name, num_classes=classes, **kwargs)
            counted = count_complexity(model, input_size=(3, pixels, pixels))
            maps = " ".join(f"{math.ceil(pixels / info['reduction'])}x{math.ceil(pixels / info['reduction'])}"
                            for info in model.feature_info[1:])
            lines.append(f"{name:<10} {label:<34} {pixels:>5} {classes:>7} {counted.params:>11,} "
                         f"{counted.gmacs * 1e3:>13,.0f}  {maps}")
    return "\n".join(lines)


def _describe_options(options: dict) -> str:
    parts = []
    if "planes" in options:
        parts.append(f"planes {options['planes']}")
    if options.get("small_input"):
        parts.append("no stem max pool")
    parts += [f"{key} {value}" for key, value in options.items() if key not in ("planes", "small_input")]
    return ", ".join(parts) or "the official model"


def planned_epochs(book: Workbook, data: DataChoice, model: str, epochs: int | None,
                   configs: Sequence[str] | None = None) -> int:
    """The epochs a run of this plan trains: fast mode's 1, the setting, or the recipe's (or configs')."""
    return 1 if book.fast else epochs or recipe_settings(data, configs)["trainer"]["max_epochs"]


@dataclass(frozen=True)
class TimeEstimate:
    """Measured seconds per training step, extrapolated to a whole plan of runs."""

    seconds_per_step: float
    steps: int  # training steps of the whole plan, validation and test batches counted as 1/3
    device: str

    @property
    def minutes(self) -> float:
        return self.seconds_per_step * self.steps / 60

    @property
    def too_long(self) -> bool:
        return self.minutes > LONG_RUN_MINUTES

    def __str__(self) -> str:
        minutes = self.minutes
        duration = (f"{minutes * 60:.0f} seconds" if minutes < 1 else f"{minutes:.0f} minutes"
                    if minutes < 120 else f"{minutes / 60:.1f} hours")
        return (f"Time estimate: {self.seconds_per_step:.2f} s per training step measured on this "
                f"{self.device} x {self.steps:,} steps = about {duration} for the whole plan"
                + (f", over {LONG_RUN_MINUTES} minutes: it starts only with ALLOW_LONG_RUN = True "
                   "in the settings cell." if self.too_long else "."))


def _split_sizes(data: DataChoice, datamodule: Caltech256DataModule) -> tuple[int, int, int]:
    if data.download:  # not on disk yet: Caltech-256's published size and our split
        return tuple(round(CALTECH256_IMAGES * share) for share in DEFAULT_SPLIT)
    datamodule.setup()
    return tuple(len(d) for d in (datamodule.train_dataset, datamodule.val_dataset,
                                  datamodule.test_dataset))


def estimate_time(book: Workbook, data: DataChoice, models: Sequence[str], seeds: Sequence[int | None],
                  image_size: int | None = None, epochs: int | None = None,
                  batch_size: int | None = None, measured_steps: int = 3,
                  configs: Sequence[str] | None = None, train_batches: int | None = None) -> TimeEstimate:
    """Time ``measured_steps`` training steps (after one warm-up) of each model, and extrapolate.

    The steps run on random images of the plan's batch and image size (the
    time of a step does not depend on the pixels), on the GPU when there is
    one, under mixed precision there as in training. Each validation and test
    batch is counted as a third of a training step (forward only). ``configs``
    replaces the data's recipe (as in :func:`training_args`); ``train_batches``
    caps the training steps of an epoch (``--trainer.limit_train_batches``).
    """
    device = "cuda" if torch.cuda.is_available() else "cpu"
    total_steps, seconds = 0, []
    for model_name in models:
        data_settings = recipe_settings(data, configs)["data"]
        size = FAST_IMAGE_SIZE if book.fast else image_size or data_settings["image_size"]
        batch = batch_size or data_settings["batch_size"]
        datamodule = Caltech256DataModule(data.root, image_size=size, batch_size=batch,
                                          num_workers=0, download=False)
        train, val, test = _split_sizes(data, datamodule)
        per_epoch = (2, 1 / 3) if book.fast else (min(math.ceil(train / batch), train_batches or math.inf),
                                                   math.ceil(val / batch) / 3)
        runs = len(seeds)
        total_steps += round(runs * (planned_epochs(book, data, model_name, epochs, configs) * sum(per_epoch)
                                     + (1 if book.fast else math.ceil(test / batch)) / 3))
        seconds.append(_seconds_per_step(model_name, datamodule.num_classes, batch, size, device,
                                         measured_steps, tuple(model_options(model_name, data, configs).items())))
    return TimeEstimate(statistics.mean(seconds), total_steps,
                        "GPU" if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)")


class TrainingSpeed(NamedTuple):
    images_per_s: float
    image_size: int
    batch_size: int


def training_speed(book: Workbook, data: DataChoice, model_name: str, num_classes: int,
                   image_size: int | None = None, batch_size: int | None = None,
                   measured_steps: int = 3) -> TrainingSpeed:
    """Training images per second of ``model_name`` on this machine at the plan's batch and image size.

    The same measurement as :func:`estimate_time`'s (and, with the same arguments, the
    same number: it is measured once per process).
    """
    settings = recipe_settings(data, None)["data"]
    size = FAST_IMAGE_SIZE if book.fast else image_size or settings["image_size"]
    batch = batch_size or settings["batch_size"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seconds = _seconds_per_step(model_name, num_classes, batch, size, device, measured_steps,
                                tuple(model_options(model_name, data).items()))
    return TrainingSpeed(batch / seconds, size, batch)


@functools.lru_cache(maxsize=None)  # one measurement per model and shape in a process
def _seconds_per_step(model_name: str, num_classes: int, batch: int, size: int, device: str,
                      steps: int, options: tuple = ()) -> float:
    # As training runs it: the recipe's architecture options, channels-last (ImageClassifier's
    # default), and 16-bit autocast where the command line would train in it.
    mixed = default_precision() != "32-true"
    model = create_model(model_name, num_classes=num_classes, **dict(options)).to(device).train()
    model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # timing only: the weights stay
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(num_classes, (batch,), device=device)
    times = []
    for _ in range(steps + 1):  # the first step pays one-off costs (allocation, kernel choice)
        start = time.perf_counter()
        with torch.autocast(device, dtype=mixed_precision_dtype(device), enabled=mixed):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


# -- training, resuming, reusing ------------------------------------------------------------


def train_and_test(book: Workbook, data: DataChoice, model: str, seed: int | None,
                   image_size: int | None = None, epochs: int | None = None,
                   batch_size: int | None = None, configs: Sequence[str] | None = None,
                   run_name: str | None = None, extra_args: Sequence[str] = ()) -> Run:
    """One run of the plan, tested once on held-out images; says what it did.

    The newest run of this name decides: finished with the planned epochs and
    tested, it is reused (finished but untested, as after an extension that
    moved its best checkpoint, its best checkpoint is tested); interrupted (a ``last.ckpt`` but no finished fit,
    or fewer epochs than planned), it resumes from ``last.ckpt``; otherwise a
    new run starts. So a notebook re-run after a Colab disconnect picks up
    where the run stopped (keep runs on Drive: ``RUNS_ON_DRIVE = True``). A run
    at another image size, or finished with more epochs than planned, is
    another experiment: a new run starts beside it.
    ``configs``, ``run_name`` and ``extra_args`` are :func:`training_args`'s.
    """
    def args(command, **extra):
        return training_args(command, book, data, model, image_size, epochs, batch_size, seed=seed,
                             configs=configs, run_name=run_name, extra_args=extra_args, **extra)
    epochs_planned = planned_epochs(book, data, model, epochs, configs)
    size_planned = _planned_image_size(args("fit"), data, configs)
    latest = newest_version_folder(book.runs_dir, run_name or comparison_run_name(model, data.kind, seed))
    run = Run.load(latest) if latest and (latest / RESULTS_FILE).is_file() else None
    # A run of another image size, or finished with more epochs, is another experiment: never
    # reused nor resumed (a resume at another size is refused anyway).
    size_trained = _trained_image_size(latest) if latest else None
    same_plan = size_trained in (None, size_planned) and not (
        run and run.finished and run.results.epochs_trained > epochs_planned)
    if same_plan and run and run.finished and run.results.epochs_trained == epochs_planned:
        if run.tested:
            print(f"Reusing the finished run {run.path} (delete it to train again).")
            return run
        # Finished but untested: never tested, or an extension replaced the tested best.ckpt.
        print(f"Testing the finished run {run.path}: its best checkpoint has no test result yet.")
        run_cli(args("test", ckpt_path=run.best_checkpoint))
        return Run.load(run.path)
    if same_plan and latest and (latest / "checkpoints" / "last.ckpt").is_file():
        print(f"Resuming {latest} from its last checkpoint.")
        command = args("fit", ckpt_path=latest / "checkpoints" / "last.ckpt")
    else:
        if latest and not same_plan:
            epochs_trained = run.results.epochs_trained if run and run.finished else "?"
            print(f"Not reusing {latest}: it was trained at {size_trained} px for {epochs_trained} epochs, "
                  f"this plan is {size_planned} px for {epochs_planned} epochs. A new run starts beside it.")
        command = args("fit")
    print("python -m involution " + " ".join(command))
    run = Run.load(run_cli(command).trainer.log_dir)
    run_cli(args("test", ckpt_path=run.best_checkpoint))
    return Run.load(run.path)  # re-read: now with the test result


def _planned_image_size(fit_args: Sequence[str], data: DataChoice, configs: Sequence[str] | None) -> int:
    """The image size a fit with these arguments trains at: the last ``--data.image_size``, else the recipe's."""
    given = [fit_args[i + 1] for i, arg in enumerate(fit_args[:-1]) if arg == "--data.image_size"]
    return int(given[-1]) if given else recipe_settings(data, configs)["data"]["image_size"]


def _trained_image_size(folder: Path) -> int | None:
    """The image size of a run folder: from its results.json, else its config.yaml (an interrupted run)."""
    size = Run.load(folder).image_size if (folder / RESULTS_FILE).is_file() else None
    if size:
        return size
    config = folder / "config.yaml"
    if config.is_file():
        return ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("image_size")
    return None


# -- notebook 02's runs, or the committed ones ----------------------------------------------


@dataclass
class Comparison:
    """Tested runs ``{model: [one run per seed]}`` on one kind of data, and where they came from."""

    runs: dict[str, list[Run]]
    source: str

    @property
    def all_runs(self) -> list[Run]:
        return [run for seed_runs in self.runs.values() for run in seed_runs]

    @property
    def committed(self) -> bool:
        return self.source.startswith("Results: the committed")


def _by_model_and_seed(runs: Sequence[Run], models, kinds) -> dict[str, list[Run]] | None:
    """``{model: [newest run of each seed]}`` on the first kind of data every model has; newest first in."""
    for kind in kinds:
        chosen = {}
        for model in models:
            newest_per_seed: dict[int | None, Run] = {}
            for run in runs:
                if run.model == model and run.kind == kind and run.tested:
                    newest_per_seed.setdefault(run.seed, run)
            if newest_per_seed:
                chosen[model] = [newest_per_seed[seed] for seed in sorted(newest_per_seed, key=str)]
        if len(chosen) == len(models):
            return chosen
    return None


def exported_runs(folder: str | os.PathLike) -> list[Run]:
    """The exported runs in ``folder`` (``slides/data/runs/<key>/results.json``)."""
    folder = Path(folder)
    return [Run.load(path) for path in sorted(folder.iterdir()) if (path / RESULTS_FILE).is_file()] \
        if folder.is_dir() else []


def find_comparison(book: Workbook, models: Sequence[str] = ("rednet26", "resnet26"),
                    kinds: Sequence[str] = ("caltech256", "folder", "shapes", "sample")) -> Comparison:
    """Notebook 02's tested runs in this work directory, else the committed copies in slides/data/runs.

    The first kind of ``kinds`` for which every model has at least one tested
    run wins (Caltech-256 first); for each (model, seed) the newest run counts.
    """
    own = _by_model_and_seed([run for run in find_runs(book.runs_dir) if any(
        run.name.startswith(comparison_run_name(run.model, kind)) for kind in kinds)], models, kinds)
    if own:
        return Comparison(own, f"Results: notebook 02's runs in {book.runs_dir}.")
    committed = _by_model_and_seed(exported_runs(book.committed_runs_dir), models, kinds)
    if committed:
        return Comparison(committed, (
            f"Results: the committed copies in {book.committed_runs_dir} (made by ./run.sh and "
            f"the appendix notebook), since {book.runs_dir} holds no tested runs of {', '.join(models)}: "
            "run notebooks/02_train_rednet.ipynb to train your own."))
    raise FileNotFoundError(f"no trained and tested runs of {list(models)} under {book.runs_dir} "
                            f"or {book.committed_runs_dir}: run notebooks/02_train_rednet.ipynb first")

