"""Notebook 04's small-scale test of the course project's overfitting finding.

The course project reported that ResNet-26 without weight decay overfitted on Caltech-256
(its validation loss rose) and that weight decay cured it. On the shapes set a model sees
4,000 fresh training images and does not overfit in a few epochs, so this experiment makes
the conditions for it: notebook 02's recipe and model variant on a *fixed small* training
set (``--data.train_per_class``: the same few images every epoch), trained long enough to
fit them, once with the recipe's weight decay and once without, over several seeds. What
would show the finding: the validation loss rising from its minimum while the training loss
keeps falling, and weight decay making that rise smaller or the test accuracy higher, each
judged by a 95% interval over seeds (:func:`involution.workbook.results.compare_means`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from involution.data.shapes import SHAPE_CLASSES
from involution.train.runs import RESULTS_FILE, Run, model_label, newest_version_folder
from involution.workbook import experiments
from involution.workbook.data_choice import DataChoice
from involution.workbook.notebook import Workbook
from involution.workbook.results import MeanDifference, SeedSpread, compare_means, plateau_gain, seed_spread

__all__ = ["Plan", "run_name", "extra_args", "estimate", "train", "load", "LossCurve", "read_loss_curve", "format_runs",
           "compare", "chance_reading", "findings"]


@dataclass(frozen=True)
class Plan:
    """The experiment: one model, a fixed small training set, weight decay off and on, several seeds.

    Validation covers the whole split every epoch: the split is read in order, so its first
    batches alone would hold only the first classes (8 batches of 32 were circles, triangles
    and squares), and their loss would not be the model's on new images.
    """

    model: str = "resnet26"
    train_per_class: int = 40
    epochs: int = 30
    batch_size: int = 32
    seeds: tuple[int, ...] = (0, 1, 2)
    weight_decays: tuple[float, ...] = (0.0, 0.05)  # off, and AdamW's usual 0.05 (above the recipe's)

    def label(self, weight_decay: float) -> str:
        return "no weight decay" if weight_decay == 0 else f"weight decay {weight_decay:g}"


def run_name(plan: Plan, weight_decay: float, seed: int, kind: str) -> str:
    """``overfitting-resnet26-wd0-shapes-seed0``."""
    return f"overfitting-{plan.model}-wd{weight_decay:g}-{kind}-seed{seed}"


def extra_args(plan: Plan, weight_decay: float) -> list[str]:
    """What a run sets on top of notebook 02's recipe: the small fixed training set and its weight decay."""
    return ["--data.train_per_class", str(plan.train_per_class),
            "--model.optimizer.weight_decay", str(weight_decay),
            # An epoch is a dozen steps here: log each epoch's steps (Lightning warns otherwise).
            "--trainer.log_every_n_steps", "4"]


def estimate(book: Workbook, data: DataChoice, plan: Plan) -> experiments.TimeEstimate:
    """The plan's training time on this machine (validation counted in full, so an upper bound)."""
    # As many classes as the shapes set (and the sample set) has; the last, partial batch is dropped.
    steps_per_epoch = plan.train_per_class * len(SHAPE_CLASSES) // plan.batch_size
    return experiments.estimate_time(book, data, [plan.model], list(plan.seeds) * len(plan.weight_decays),
                                     epochs=plan.epochs, batch_size=plan.batch_size,
                                     train_batches=max(1, steps_per_epoch))


def train(book: Workbook, data: DataChoice, plan: Plan) -> dict[float, list[Run]]:
    """Train and test every run (finished ones are reused); ``{weight decay: [run per seed]}``."""
    runs: dict[float, list[Run]] = {decay: [] for decay in plan.weight_decays}
    for seed in plan.seeds:
        for decay in plan.weight_decays:
            print(f"-- {model_label(plan.model)}, {plan.label(decay)}, seed {seed}", flush=True)
            runs[decay].append(experiments.train_and_test(
                book, data, plan.model, seed, epochs=plan.epochs, batch_size=plan.batch_size,
                run_name=run_name(plan, decay, seed, data.kind), extra_args=extra_args(plan, decay)))
    return runs


def load(runs_dir, kind: str, plan: Plan) -> dict[float, list[Run]]:
    """The plan's finished runs in ``runs_dir`` (``{weight decay: [run per seed]}``), without training.

    Raises FileNotFoundError naming the first run that is missing.
    """
    runs: dict[float, list[Run]] = {decay: [] for decay in plan.weight_decays}
    for decay in plan.weight_decays:
        for seed in plan.seeds:
            name = run_name(plan, decay, seed, kind)
            folder = newest_version_folder(runs_dir, name)
            if folder is None or not (folder / RESULTS_FILE).is_file():
                raise FileNotFoundError(f"no finished run {name} in {runs_dir}: run notebook 04 to train it")
            runs[decay].append(Run.load(folder))
    return runs


@dataclass(frozen=True)
class LossCurve:
    """What a run's validation loss did: its lowest point and where it ended."""

    lowest: float
    lowest_epoch: int  # 1-based
    final: float
    final_train: float

    @property
    def rise(self) -> float:
        """How far the validation loss climbed back from its lowest point (0: it never rose)."""
        return self.final - self.lowest


def read_loss_curve(run: Run) -> LossCurve:
    """A run's validation loss at its lowest and at its end, and its last training loss, from metrics.csv."""
    metrics = run.metrics()
    losses = [(loss, epoch) for loss, epoch in zip(metrics["val/loss"], metrics["epoch"]) if not math.isnan(loss)]
    lowest, epoch = min(losses)
    train = [loss for loss in metrics["train/loss_epoch"] if not math.isnan(loss)]
    return LossCurve(lowest, int(epoch) + 1, losses[-1][0], train[-1])


def format_runs(plan: Plan, runs: Mapping[float, Sequence[Run]]) -> str:
    """One line per run: the losses, the plateau check and test top-1."""
    lines = [f"{'setting':<18} {'seed':>4} {'train loss':>10} {'lowest val loss':>15} {'at epoch':>8} "
             f"{'final val loss':>14} {'rise':>6} {'val gain, last quarter':>22} {'test top-1':>10}"]
    for decay, seed_runs in runs.items():
        for run in seed_runs:
            curve = read_loss_curve(run)
            lines.append(f"{plan.label(decay):<18} {run.seed:>4} {curve.final_train:>10.3f} {curve.lowest:>15.3f} "
                         f"{curve.lowest_epoch:>8} {curve.final:>14.3f} {curve.rise:>+6.3f} "
                         f"{plateau_gain(run.metrics()):>+21.1f}  {run.results.percent('test_top1'):>9.1f}%")
    return "\n".join(lines)


def compare(plan: Plan, runs: Mapping[float, Sequence[Run]]) -> dict[str, MeanDifference]:
    """Weight decay on minus off: test top-1 (points) and the validation loss's rise, each with its interval."""
    off, on = (runs[decay] for decay in plan.weight_decays[:2])
    rise = {decay: SeedSpread(plan.label(decay), tuple(read_loss_curve(run).rise for run in runs[decay]), unit="")
            for decay in plan.weight_decays[:2]}
    top1 = {decay: SeedSpread(plan.label(decay), seed_spread(seed_runs).values)
            for decay, seed_runs in ((plan.weight_decays[0], off), (plan.weight_decays[1], on))}
    on_decay, off_decay = plan.weight_decays[1], plan.weight_decays[0]
    return {"test top-1": compare_means(top1[on_decay], top1[off_decay]),
            "rise of the validation loss": compare_means(rise[on_decay], rise[off_decay])}


def _at_chance(runs: Mapping[float, Sequence[Run]], margin: float) -> tuple[list[Run], list[Run], float]:
    """(every run, those whose test top-1 is within ``margin`` points of guessing, the chance level in %)."""
    every = [run for seed_runs in runs.values() for run in seed_runs]
    chance = 100 / every[0].results.dataset["num_classes"]
    return every, [run for run in every if run.results.percent("test_top1") < chance + margin], chance


def chance_reading(runs: Mapping[float, Sequence[Run]], margin: float = 2.0) -> str:
    """One sentence: whether the runs' test top-1 is within ``margin`` points of guessing."""
    every, at_chance, chance = _at_chance(runs, margin)
    if len(at_chance) == len(every):
        return (f"Every run's test top-1 is within {margin:g} points of chance ({chance:.0f}%): the models learned "
                "nothing that carries over to new images, so these runs cannot say whether weight decay cures the "
                "overfitting of a model that learns.")
    return (f"{len(every) - len(at_chance)} of {len(every)} runs score more than {margin:g} points above chance "
            f"({chance:.0f}%) on the test images.")


def findings(plan: Plan, runs: Mapping[float, Sequence[Run]], data_label: str) -> dict:
    """What the experiment found, as plain values for the slides."""
    differences = compare(plan, runs)
    rows = []
    for decay, seed_runs in runs.items():
        curves = [read_loss_curve(run) for run in seed_runs]
        rows.append({"setting": plan.label(decay), "seeds": len(seed_runs),
                     "rose": sum(curve.rise > 0 for curve in curves),
                     "rise": str(SeedSpread(plan.label(decay), tuple(c.rise for c in curves), unit="")),
                     "test_top1": str(seed_spread(seed_runs)),
                     # The largest validation gain over the last quarter of the epochs: under 1, all flat.
                     "plateau_gain": max(plateau_gain(run.metrics()) for run in seed_runs)})
    first = next(iter(runs.values()))[0]
    return {"data": data_label, "model": model_label(plan.model),
            "train_images": (first.results.dataset or {}).get("images", {}).get("train"),
            "epochs": plan.epochs, "rows": rows, "chance": chance_reading(runs),
            "all_at_chance": len(_at_chance(runs, 2.0)[1]) == sum(map(len, runs.values())),
            "verdicts": {what: {"text": str(difference), "verdict": difference.verdict, "higher": difference.higher}
                         for what, difference in differences.items()}}
