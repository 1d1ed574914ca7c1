"""The original course project's runs (defined in :mod:`involution.workbook.course_sets`), run by
named sets side by side, with one results table per set.

Each course run is the course recipe (``caltech256_course``) composed with one
small overrides file, ``involution/train/configs/course/<run>.yaml``, holding only
what that run changed (model, weight decay, dropout, clipping, epochs,
learning rate). What the course project reported for it lives in
:data:`involution.workbook.reference.COURSE_PROJECT_RUNS` under the same name.

A *set* groups the runs that answer one question (:data:`~involution.workbook.course_sets.COURSE_SETS`). Its
runs share the set's name in their folders (``<runs>/<set>-<run>-<data>/``),
its W&B group (``WANDB_RUN_GROUP``) and one results table, read from the
runs' ``results.json``::

    python -m involution course list
    python -m involution course run ablation --data shapes       # small scale, offline
    python -m involution course run ablation --print-commands    # Caltech-256 lines for a cluster

On Caltech-256 a run is the course recipe exactly. On the shapes set (or the
sample set) it is scaled down (:class:`~involution.workbook.course_sets.Scale`): smaller images, fewer
epochs in the same 130:150 proportion, optionally a capped number of training
steps per epoch, and the light augmentations (the course's 45-degree rotations
would turn the shapes). At that scale the overrides compose on the shapes
recipe, whose AdamW learns there while the course's SGD at lr 0.1 does not
(``SMALL_SCALE``); a set about the course optimiser itself keeps the
course recipe (``CourseSet.keeps_course_recipe``).
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
from pathlib import Path
from typing import Sequence

import yaml

from involution.data.constants import DATA_KINDS
from involution.train.callbacks import NonFiniteLossError
from involution.train.configs import list_configs
from involution.train.runs import METRICS_FILE, RESULTS_FILE, Run, RunResults, model_label, newest_version_folder
from involution.workbook import experiments
from involution.workbook.course_sets import (
    COURSE_SETS,
    FULL_SCALE,
    RECIPE_DATA_ROOT,
    SMALL_SCALE,
    CourseRun,
    Scale,
    course_set,
)
from involution.workbook.data_choice import DataChoice, choose_data
from involution.workbook.experiments import train_and_test, training_args
from involution.workbook.notebook import Workbook, fast_mode, gpu_name
from involution.workbook.reference import COURSE_PROJECT_SOURCE

__all__ = ["course_run_name", "fit_commands", "run_set", "load_set", "results_table", "set_rows",
           "kernel_growth", "step_losses", "estimate_sets_time", "describe_sets", "reported_table", "course_data",
           "main"]

def course_run_name(set_name: str, run: CourseRun, kind: str) -> str:
    """``ablation-rednet26_nowd-shapes``: the set first, so a set's runs sit side by side."""
    return f"{set_name}-{run.name}-{kind}"


def _plan(set_name: str, book: Workbook, data: DataChoice, scale: Scale, model: str | None = None,
          only: Sequence[str] | None = None) -> list:
    """``(run, keyword arguments of train_and_test)`` for each run of the set (or those in ``only``)."""
    chosen = course_set(set_name)
    return [(run, dict(model=model or run.model, seed=None, configs=run.configs_on(chosen.recipe_at(scale)),
                       run_name=course_run_name(set_name, run, data.kind),
                       image_size=scale.image_size, batch_size=scale.batch_size,
                       epochs=scale.epochs_of(run) if scale.epochs is not None else None,
                       extra_args=scale.args(chosen.watch_kernels)))
            for run in chosen.runs if only is None or run.name in only]


def _group(set_name: str) -> str:
    return f"course-{set_name}"


def fit_commands(set_name: str, book: Workbook, data: DataChoice, scale: Scale = FULL_SCALE) -> list[str]:
    """One ``python -m involution fit ...`` line per run, after the W&B group's ``export``."""
    lines = [f"export WANDB_RUN_GROUP={_group(set_name)}"]
    for _, kwargs in _plan(set_name, book, data, scale):
        args = training_args("fit", book, data, **kwargs)
        # The lines run in another shell, maybe elsewhere: the runs folder as the user gave it.
        args[args.index("--trainer.default_root_dir") + 1] = str(book.workdir / "runs")
        lines.append(shlex.join(["python", "-m", "involution", *args]))
    return lines


def _diverged(folder: Path | None) -> bool:
    """Whether NonFiniteLossGuard stopped this run (it leaves ``nonfinite-*.ckpt``)."""
    return folder is not None and any((folder / "checkpoints").glob("nonfinite-*.ckpt"))


def run_set(set_name: str, book: Workbook, data: DataChoice, scale: Scale = FULL_SCALE,
            model: str | None = None, only: Sequence[str] | None = None) -> dict[str, Run | None]:
    """Train and test every run of the set in turn; ``{run name: Run}``.

    Finished runs are reused and interrupted ones resumed (:func:`train_and_test`).
    A run that diverges (NaN loss) is part of the lesson, not a failure: it
    is reported and kept, and not retried on the next call. ``model``
    replaces every run's model (the tests use a tiny one); ``only`` names
    the runs to train (a notebook's smoke test), the others are only read.
    """
    os.environ["WANDB_RUN_GROUP"] = _group(set_name)  # wandb.init groups the set's runs
    for run, kwargs in _plan(set_name, book, data, scale, model, only):
        folder = newest_version_folder(book.runs_dir, kwargs["run_name"])
        if _diverged(folder):
            print(f"Reusing {folder}: it diverged (delete it to train again).")
            continue
        recipe = kwargs["configs"][0]  # what the run's overrides compose on at this scale
        print(f"-- {set_name}: {run.name} ({run.recipe(recipe)})", flush=True)
        try:
            train_and_test(book, data, **kwargs)
        except NonFiniteLossError as error:
            print(f"Diverged (kept: a result of the set, not an error): {error}")
    return load_set(set_name, book.runs_dir, data.kind)


def load_set(set_name: str, runs_dir: str | os.PathLike, kind: str) -> dict[str, Run | None]:
    """The newest run of each of the set's runs on this kind of data (None where there is none).

    A run that diverged in its first epoch stopped before writing results.json:
    it is read with an empty record (its model from its config.yaml), so that
    it still shows, as diverged, with its metrics.csv.
    """
    found = {}
    for run in course_set(set_name).runs:
        folder = newest_version_folder(Path(runs_dir), course_run_name(set_name, run, kind))
        if folder and (folder / RESULTS_FILE).is_file():
            found[run.name] = Run.load(folder)
        elif _diverged(folder):
            config = yaml.safe_load((folder / "config.yaml").read_text())
            found[run.name] = Run(folder, RunResults(model=config["model"]["model_name"]))
        else:
            found[run.name] = None
    return found


def _status(run: Run | None) -> str:
    if run is None:
        return "not run"
    if _diverged(run.path):
        return "diverged (NaN)"
    return "tested" if run.tested else "finished" if run.finished else "interrupted"


def _percent(run: Run | None, key: str) -> str:
    value = None if run is None else run.results.percent(key)
    return "-" if value is None else f"{value:.1f}%"


def _reported(run: CourseRun) -> str:
    reported = run.reported
    if reported is None:
        return "(our control: no such run)"
    top1 = "" if reported["val_top1"] is None else f"{reported['val_top1']:.2f}%"
    return "; ".join(part for part in (top1, reported["outcome"]) if part) or "-"


TABLE_COLUMNS = ("course run", "model", "epochs", "best val top-1", "test top-1", "status")


def set_rows(set_name: str, runs: dict[str, Run | None]) -> list[dict[str, str]]:
    """One row per run of the set, our columns (:data:`TABLE_COLUMNS`) and the course project's report."""
    rows = []
    for course_run in course_set(set_name).runs:
        run = runs.get(course_run.name)
        epochs = "-" if run is None or run.results.epochs_trained is None else str(run.results.epochs_trained)
        values = (course_run.name, model_label(run.model) if run else model_label(course_run.model), epochs,
                  _percent(run, "best_val_top1"), _percent(run, "test_top1"), _status(run))
        rows.append({**dict(zip(TABLE_COLUMNS, values)), "reported": _reported(course_run)})
    return rows


def results_table(set_name: str, runs: dict[str, Run | None], kind: str) -> str:
    """Our runs of the set beside what the course project reported, in separate, labelled columns."""
    ours = f"ours: {DATA_KINDS[kind].label}"
    header = (f"{TABLE_COLUMNS[0]:<22} {TABLE_COLUMNS[1]:<12} {TABLE_COLUMNS[2]:>6} {TABLE_COLUMNS[3]:>14} "
              f"{TABLE_COLUMNS[4]:>10} {TABLE_COLUMNS[5]:<14} | reported val top-1")
    lines = [f"{'':<83}| {COURSE_PROJECT_SOURCE.split(':')[0]}",
             f"{ours:<83}| (Caltech-256, full recipe)", header, "-" * len(header)]
    for row in set_rows(set_name, runs):
        name, label, epochs, val, test, status = (row[column] for column in TABLE_COLUMNS)
        lines.append(f"{name:<22} {label:<12} {epochs:>6} {val:>14} {test:>10} {status:<14} | {row['reported']}")
    return "\n".join(lines)


def reported_table() -> str:
    """Every course run with what the course project reported for it on Caltech-256 (its numbers, not ours)."""
    lines = [COURSE_PROJECT_SOURCE + ":",
             f"{'set':<12} {'course run':<22} {'model':<13} {'reported val top-1':>18}  outcome"]
    for name, chosen in COURSE_SETS.items():
        for run in chosen.runs:
            reported = run.reported
            if reported is None:
                continue  # our own controls: the course project had no such run
            top1 = "-" if reported["val_top1"] is None else f"{reported['val_top1']:.2f}%"
            lines.append(f"{name:<12} {run.name:<22} {reported['model']:<13} {top1:>18}  {reported['outcome'] or '-'}")
    return "\n".join(lines)


def describe_sets() -> str:
    """Every set, its question and its runs with their composed recipes."""
    lines = []
    for name, chosen in COURSE_SETS.items():
        lines.append(f"{name}: {chosen.question}")
        lines += [f"  {run.name:<22} {model_label(run.model):<12} {run.recipe()}" for run in chosen.runs]
    return "\n".join(lines)


def kernel_growth(run: Run) -> dict[str, list[float]]:
    """Per logged training step: the largest absolute value of any generated kernel, and the loss.

    KernelStatsMonitor logs each involution layer's ``kernels/<layer>/absmax``
    at the steps it records (every step in the instability set); the
    epoch-level reader :func:`involution.train.runs.reader.read_metrics` leaves these
    step-level columns out, so they are read here from the same metrics.csv.
    """
    growth: dict[str, list[float]] = {"step": [], "kernel_absmax": [], "train_loss": []}
    with open(run.path / METRICS_FILE, newline="") as file:
        for row in csv.DictReader(file):
            values = [float(value) for key, value in row.items()
                      if key.startswith("kernels/") and key.endswith("/absmax") and value]
            if values:
                growth["step"].append(int(row["step"]))
                growth["kernel_absmax"].append(max(values))
                growth["train_loss"].append(float(row.get("train/loss_step") or "nan"))
    return growth


def step_losses(run: Run) -> dict[str, list[float]]:
    """The training loss at every logged step (``train/loss_step``), for any model.

    Unlike :func:`kernel_growth` this needs no involution, so a convolutional
    control run plots beside the RedNets.
    """
    losses: dict[str, list[float]] = {"step": [], "train_loss": []}
    with open(run.path / METRICS_FILE, newline="") as file:
        for row in csv.DictReader(file):
            if row.get("train/loss_step"):
                losses["step"].append(int(row["step"]))
                losses["train_loss"].append(float(row["train/loss_step"]))
    return losses


def estimate_sets_time(set_names: Sequence[str], book: Workbook, data: DataChoice, scale: Scale,
                  only: Sequence[str] | None = None) -> experiments.TimeEstimate:
    """The sets' training time on this machine: each model's measured step time x its runs' steps.

    Runs that diverge stop early, so this is an upper bound for the instability set.
    """
    seconds, steps, device = 0.0, 0, "CPU"
    for set_name in set_names:
        for run, kwargs in _plan(set_name, book, data, scale, only=only):
            estimate = experiments.estimate_time(
                book, data, [kwargs["model"]], [None], image_size=kwargs["image_size"],
                epochs=kwargs["epochs"], batch_size=kwargs["batch_size"], measured_steps=2,
                configs=kwargs["configs"], train_batches=scale.train_batches)
            seconds += estimate.seconds_per_step * estimate.steps
            steps, device = steps + estimate.steps, estimate.device
    return experiments.TimeEstimate(seconds / max(steps, 1), steps, device)


# -- the command line -----------------------------------------------------------------------


def course_data(value: str, fast: bool = False) -> DataChoice:
    """``--data``: shapes, sample, caltech256 (the course recipe's data/caltech256) or a folder."""
    if value == "caltech256" and not fast:
        root = RECIPE_DATA_ROOT
        present = (Path(root) / "256_ObjectCategories").is_dir()
        return DataChoice(root, not present, "caltech256", f"Data: Caltech-256 in {root}.")
    return choose_data(value, fast=fast, gpu=gpu_name() is not None, option="--data")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m involution course",
        description="The original course project's runs (Caltech-256 recipe plus one overrides file "
                    "each), run by named sets: " + ", ".join(COURSE_SETS) + ".")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the sets, their runs and recipes, and the override files")
    run = commands.add_parser("run", help="train and test a set's runs in turn, or print their commands")
    run.add_argument("set", help=f"one of {', '.join(COURSE_SETS)}")
    run.add_argument("--data", default="caltech256",
                     help="caltech256 (the course recipe exactly; default), shapes or sample "
                          "(scaled down, offline), or a folder holding 256_ObjectCategories")
    run.add_argument("--print-commands", action="store_true",
                     help="print one `python -m involution fit` line per run instead of training")
    run.add_argument("--workdir", default=".", help="runs go to WORKDIR/runs (default: ./runs)")
    for option, help_text in (("--image-size", "pixels"), ("--epochs", "epochs of a 150-epoch run"),
                              ("--train-batches", "training steps per epoch at most")):
        run.add_argument(option, type=int, default=None,
                         help=f"small scale: {help_text} (default on shapes/sample: the small scale's)")
    return parser


def _scale(args, data: DataChoice, parser) -> Scale:
    overrides = {"image_size": args.image_size, "epochs": args.epochs, "train_batches": args.train_batches}
    if data.kind == "caltech256":
        given = [f"--{key.replace('_', '-')}" for key, value in overrides.items() if value is not None]
        if given:
            parser.error(f"{', '.join(given)} only scale runs on small data; on Caltech-256 the course "
                         "recipe is run exactly. Use --data shapes to run it small.")
        return FULL_SCALE
    for key, value in overrides.items():
        if value is not None and value < 1:
            parser.error(f"--{key.replace('_', '-')} must be a positive whole number; got {value}")
    return Scale(**{**SMALL_SCALE.__dict__, **{k: v for k, v in overrides.items() if v is not None}})


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m involution course list`` and ``python -m involution course run SET``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        print(describe_sets())
        print("\nOverride files (compose on the recipe: --config caltech256_course --config course/NAME): "
              + ", ".join(list_configs("course")))
        return
    if args.set not in COURSE_SETS:
        parser.error(f"unknown set {args.set!r}; choose one of {', '.join(COURSE_SETS)} "
                     "(see: python -m involution course list)")
    # $INVOLUTION_FAST makes the runs smoke tests; printed commands are for real runs elsewhere.
    fast = fast_mode() and not args.print_commands
    try:
        data = course_data(args.data, fast)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))  # it names --data and the value
    scale = _scale(args, data, parser)
    workdir = Path(args.workdir)
    book = Workbook(root=workdir, fast=fast, workdir=workdir, colab=False, gpu=gpu_name())
    if args.print_commands:
        print("\n".join(fit_commands(args.set, book, data, scale)))
        return
    runs = run_set(args.set, book, data, scale)
    print(results_table(args.set, runs, data.kind))
