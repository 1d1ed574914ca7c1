"""Results of runs as tables and sentences: one row per run, spreads over seeds, honest comparisons.

Everything here reads :class:`~involution.train.runs.reader.Run` objects (their
:class:`~involution.train.runs.record.RunResults`); the notebooks print these, the figures
of :mod:`involution.workbook.figures` and the deck draw from the same rows.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from involution.data import SAMPLE_SET_DESCRIPTION
from involution.data.constants import DATA_KINDS
from involution.train.runs import Run, RunResults
from involution.workbook.reference import COURSE_PROJECT_RESULTS, COURSE_PROJECT_SOURCE

# The accuracies a run records (fractions in results.json, % in tables).
SCORES = tuple(name for name in RunResults.__dataclass_fields__ if name.endswith(("_top1", "_top5")))

__all__ = ["SCORES", "results_rows", "reference_rows", "format_results_table", "format_epoch_table",
           "runs_data_statement", "SeedSpread", "seed_spread", "compare_spreads", "format_seed_table"]


# -- results tables -----------------------------------------------------------------------


def results_rows(runs: Iterable[Run]) -> list[dict]:
    """One row per run, accuracies in %, for tables and figures."""
    rows = []
    for run in runs:
        r = run.results
        rows.append({
            "label": run.label, "model": run.model, "params": r.params,
            "params_m": r.params / 1e6, "epochs": r.epochs_trained,
            "image_size": run.image_size, "data": run.data_label,
            **{score: r.percent(score) for score in SCORES},
            "best_epoch": r.best_epoch,
            "machine": run.machine(), "run": run.name + "/" + run.version, "seed": run.seed,
        })
    return rows


def reference_rows() -> list[dict]:
    """The course project's reported results, as rows shaped like :func:`results_rows`."""
    return [{"label": row["model"], "params_m": row["params_m"], "epochs": row["epochs"],
             "best_val_top1": row["val_top1"], "data": "Caltech-256",
             "source": COURSE_PROJECT_SOURCE} for row in COURSE_PROJECT_RESULTS]


def format_results_table(runs: Iterable[Run], reference: bool = True) -> str:
    """A plain-text table of runs and, as a table of its own, the course project's reported figures."""
    def fmt(value, spec=".1f"):
        return "-" if value is None else format(value, spec)

    header = (f"{'model':<10} {'params':>11} {'epochs':>6} {'image':>5} {'best val top-1':>14} "
              f"{'top-5':>6} {'test top-1':>10} {'top-5':>6}  data")
    lines = [header]
    for row in results_rows(runs):
        lines.append(f"{row['label']:<10} {row['params']:>11,} {fmt(row['epochs'], 'd'):>6} "
                     f"{fmt(row['image_size'], 'd'):>5} {fmt(row['best_val_top1']):>13}% "
                     f"{fmt(row['best_val_top5']):>5}% {fmt(row['test_top1']):>9}% "
                     f"{fmt(row['test_top5']):>5}%  {row['data']} (this project"
                     + (f", seed {row['seed']})" if row["seed"] is not None else ")"))
    if reference:  # another data set: a table of its own, never rows under our columns
        rows = reference_rows()
        lines += ["", "Caltech-256 (reported, not ours): " + rows[0]["source"] + ".",
                  f"{'model':<10} {'params':>11} {'epochs':>6} {'best val top-1':>14}"]
        lines += [f"{row['label']:<10} {row['params_m']:>10.1f}M {row['epochs']:>6} "
                  f"{row['best_val_top1']:>13.2f}%" for row in rows]
    return "\n".join(lines)


def format_epoch_table(metrics: Mapping[str, Sequence[float]]) -> str:
    """One line per epoch: training and validation loss and accuracy, from :func:`read_metrics`."""
    columns = [("train/loss_epoch", "train loss", 1, ".3f"), ("train/top1", "train top-1", 100, ".1f"),
               ("val/loss", "val loss", 1, ".3f"), ("val/top1", "val top-1", 100, ".1f"),
               ("val/top5", "val top-5", 100, ".1f")]
    present = [c for c in columns if c[0] in metrics]
    lines = [f"{'epoch':>5} " + " ".join(f"{title:>11}" for _, title, _, _ in present)]
    for index, epoch in enumerate(metrics["epoch"]):
        cells = []
        for key, _, scale, spec in present:
            value = metrics[key][index]
            cells.append(f"{'-' if math.isnan(value) else format(value * scale, spec):>11}")
        lines.append(f"{int(epoch) + 1:>5} " + " ".join(cells))
    return "\n".join(lines)


def runs_data_statement(runs: Iterable[Run]) -> str:
    """One line saying which data and machine a set of runs used."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs given")
    machines = sorted({run.machine() for run in runs})
    kinds = {run.kind for run in runs}
    if kinds == {"sample"}:
        data = f"{SAMPLE_SET_DESCRIPTION}; its accuracies say nothing about Caltech-256"
    elif kinds == {"shapes"}:
        data = ("the built-in shapes set (generated offline, NOT Caltech-256; train, validation "
                "and test images from disjoint photographs)")
    elif kinds == {"caltech256"}:
        data = "Caltech-256 (this project's stratified split)"
    elif len(kinds) == 1:
        data = DATA_KINDS[kinds.pop()].label
    else:
        data = f"a MIX of {', '.join(sorted(DATA_KINDS[k].label for k in kinds))} (compare with care)"
    return f"Training data: {data}. Machine: {'; '.join(machines)}."


# -- several seeds ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSpread:
    """One model's metric over its seeds: mean, standard deviation, range, and the values."""

    label: str
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single run."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        spread = f" +- {self.std:.1f}" if len(self.values) > 1 else ""
        return (f"{self.mean:.1f}%{spread} (n={len(self.values)}, "
                f"range {min(self.values):.1f}-{max(self.values):.1f})")


def seed_spread(runs: Sequence[Run], key: str = "test_top1") -> SeedSpread:
    """The spread of a score (one of :data:`SCORES`, in %) over the runs of one model."""
    if key not in SCORES:
        raise ValueError(f"{key!r} is not a score of a run; use one of {SCORES}")
    values = tuple(run.results.percent(key) for run in runs if run.results.percent(key) is not None)
    if not values:
        raise ValueError(f"none of the {len(runs)} run(s) has {key!r} in its results")
    return SeedSpread(runs[0].label, values)


def compare_spreads(first: SeedSpread, second: SeedSpread) -> str:
    """Whether two models differ by more than their seed-to-seed spread, in one honest sentence.

    Only when every run of one model beats every run of the other (the ranges
    do not overlap) is one called ahead; with 3 seeds that is the most such a
    comparison supports. Otherwise the difference is within the spread.
    """
    if len(first.values) < 2 or len(second.values) < 2:
        return (f"{first.label} {first.mean:.1f}% vs {second.label} {second.mean:.1f}%: one run each "
                "gives no spread, so no winner can be called.")
    difference = first.mean - second.mean
    ahead, behind = (first, second) if difference > 0 else (second, first)
    if min(ahead.values) > max(behind.values):
        return (f"{ahead.label} is ahead by {abs(difference):.1f} points on average, and every one "
                f"of its {len(ahead.values)} runs beats every run of {behind.label}: a difference "
                "larger than the seed-to-seed spread (on this data and schedule).")
    return (f"The means differ by {abs(difference):.1f} points ({ahead.label} higher), but the runs' "
            f"ranges overlap ({first.label} {min(first.values):.1f}-{max(first.values):.1f}%, "
            f"{second.label} {min(second.values):.1f}-{max(second.values):.1f}%): the difference is "
            "within the seed-to-seed spread, so neither model can be called better here.")


def format_seed_table(runs_by_model: Mapping[str, Sequence[Run]]) -> str:
    """Per model: best validation and test top-1 over seeds (mean +- sd and range), parameters."""
    lines = [f"{'model':<10} {'params':>11} {'seeds':>5}  {'best val top-1':<34} test top-1"]
    for runs in runs_by_model.values():
        seeds = ",".join(str(run.seed) for run in runs)
        lines.append(f"{runs[0].label:<10} {runs[0].results.params:>11,} {seeds:>5}  "
                     f"{str(seed_spread(runs, 'best_val_top1')):<34} {seed_spread(runs)}")
    return "\n".join(lines)
